"""``bedside hl7``: IHE PCD-01/PCD-04 HL7 v2.6 messages over MLLP to the hospital (docs/hl7.md).

Fed either by MQTT (``--mqtt URL [--site S]``: every chair of the site, as the station sees
them) or by a record file that a recorder is writing (``--db FILE``: its new lines, followed
like ``tail -f``). PCD-01 ORU^R01 every ``--period`` seconds per chair and on each NIBP
result, PCD-04 ORU^R40 on each alarm event; ACK handling, retry with backoff, and a
dead-letter file for what the receiver refused or never acknowledged. SIGINT/SIGTERM stops
(what is still queued goes to the dead-letter file). Exit 0 when stopped, 2 on a bad option.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path
from types import FrameType

HELP = "send IHE PCD-01/PCD-04 HL7 messages over MLLP from MQTT or a record file"
_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mqtt", metavar="URL", help="subscribe to the chairs on this broker")
    src.add_argument("--db", type=Path, metavar="FILE", help="follow this record file")
    p.add_argument("--site", help="--mqtt: only this site; --db: the site name to report")
    p.add_argument("--hl7", required=True, metavar="URL", help="receiver: mllp://HOST:PORT")
    p.add_argument(
        "--dead-letter",
        type=Path,
        default=Path("hl7-dead-letters.jsonl"),
        metavar="FILE",
        help="undeliverable messages, one JSON object a line (default: %(default)s)",
    )
    p.add_argument(
        "--period", type=float, default=60.0, metavar="S", help="PCD-01 period per chair"
    )
    p.add_argument("--attempts", type=int, default=5, metavar="N", help="tries before dead letter")
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: never)"
    )
    p.add_argument("--quiet", action="store_true", help="no status line every 10 s")


def chair_of(device: str, site: str) -> str:
    """A record file's device key as a chair id ``<site>/<chair>``."""
    parts = device.split("/")
    if len(parts) == 2 and all(parts) and not _BAD.search(device.replace("/", "")):
        return device  # recorded from MQTT: already a chair id
    name = _BAD.sub("_", device).strip("_")[:32] or "device"
    return f"{site}/{name}"


class DbFollower:
    """New raw lines of a record file, in the order stored (a recorder writes it)."""

    def __init__(self, path: Path, site: str) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no record file {path}")
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        self.site = site
        row = self.conn.execute("SELECT coalesce(max(id), 0) FROM raw_lines").fetchone()
        self.last = int(row[0])

    def poll(self) -> list[tuple[str, dict[str, object], float]]:
        rows = self.conn.execute(
            "SELECT id, device, rx_time, line, replayed FROM raw_lines WHERE id > ?"
            " ORDER BY id LIMIT 1000",
            (self.last,),
        ).fetchall()
        out = []
        for rid, device, rx, line, replayed in rows:
            self.last = int(rid)
            if replayed:
                continue  # history: not a current observation or alarm state change
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append((chair_of(str(device), self.site), msg, float(rx)))
        return out

    def close(self) -> None:
        self.conn.close()


def run(args: argparse.Namespace) -> int:
    from bedside_host.hl7.bridge import start_bridge
    from bedside_host.hl7.mllp import MllpUrlError, parse_url
    from bedside_host.mqtt import topics

    site = args.site or "local"
    follower: DbFollower | None = None
    try:
        parse_url(args.hl7)
        if args.site is not None:
            topics.check_name("site", args.site)
        if args.mqtt is not None:
            topics.parse_url(args.mqtt)
        if not 1.0 <= args.period <= 86400.0:
            raise ValueError("--period must be 1..86400 s (IHE PCD: at most once a day)")
        if args.attempts < 1:
            raise ValueError("--attempts must be >= 1")
        if args.db is not None:
            follower = DbFollower(args.db, site)
    except (MllpUrlError, topics.ConfigError, ValueError, OSError, sqlite3.Error) as e:
        print(f"bedside hl7: error: {e}", file=sys.stderr)
        return 2
    bridge = start_bridge(
        args.hl7, args.dead_letter, period_s=args.period, max_attempts=args.attempts
    )
    sub = None
    if args.mqtt is not None:
        from bedside_host.mqtt.subscriber import start_feed

        sub = start_feed(args.mqtt, bridge.on_message, site=args.site)
    stopping = [False]

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping[0] = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    start = time.monotonic()
    next_status = start + 10.0
    try:
        while not stopping[0]:
            if follower is not None:
                for chair_id, msg, rx in follower.poll():
                    bridge.on_message(chair_id, msg, rx)
            time.sleep(0.1)
            now = time.monotonic()
            if args.duration and now - start >= args.duration:
                break
            if not args.quiet and now >= next_status:
                next_status = now + 10.0
                print(_status(bridge), file=sys.stderr, flush=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if sub is not None:
            sub.stop()
        if follower is not None:
            follower.close()
        bridge.stop()
    print(_status(bridge), file=sys.stderr)
    return 0


def _status(bridge: object) -> str:
    from bedside_host.hl7.bridge import Hl7Bridge

    assert isinstance(bridge, Hl7Bridge)
    s = bridge.sender
    err = f"; last problem: {s.last_error}" if s.last_error else ""
    if bridge.build_errors:
        err += f"; {bridge.build_errors} messages could not be built ({bridge.last_build_error})"
    return (
        f"HL7: {bridge.sent['pcd01']} PCD-01 and {bridge.sent['pcd04']} PCD-04 delivered,"
        f" {bridge.pending()} queued, {s.retries} retries, {s.dead.count} dead-lettered"
        f" ({s.dead.path}){err}"
    )
