"""``bedside log``: every page of the device's flash alarm log (or event log).

The device answers a ``log`` request with up to 16 records and says which record to ask for
next; this reads page after page to the end. Each record carries its boot counter and the
uptime at the event; the wall-clock time is shown where it is known (the device's current
boot, mapped by this link), else the boot and uptime alone (the device has no clock).
"""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from bedside_host.commands._device import (
    Refused,
    UsageError,
    add_port,
    open_link,
    run_guarded,
)
from bedside_host.link.messages import Received

HELP = "read the device's flash alarm log (or event log), every page"
PAGE = 16
PAGE_TIMEOUT_S = 10.0
_META = ("n", "b", "u")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_port(p)
    p.add_argument(
        "--from",
        dest="first",
        type=int,
        default=0,
        metavar="N",
        help="first record number (default 0: the oldest kept)",
    )
    p.add_argument(
        "--which", choices=("alarm", "event"), default="alarm", help="which log (default alarm)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per record")


def uptime(ms: int) -> str:
    s, msec = divmod(int(ms), 1000)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"+{h}:{m:02d}:{sec:02d}.{msec:03d}"


def local_time(wall: float | None) -> str:
    if wall is None:
        return "(time unknown)"
    dt = datetime.datetime.fromtimestamp(wall).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def describe(rec: dict[str, Any]) -> str:
    if "condition" in rec:
        text = f"{rec['condition']} {rec.get('priority')} {rec.get('event')} -> {rec.get('state')}"
        # only what the event has (a communication loss: a timeout limit, no value)
        vals = [f"{k} {rec[k]}" for k in ("value", "limit") if rec.get(k) is not None]
        if vals:
            text += "  " + " ".join(vals)
        return text
    event = str(rec.get("event", "?"))
    if event == "setting":
        by = f" by {rec['by']}" if rec.get("by") else ""
        return f"setting {rec.get('name')} {rec.get('old')} -> {rec.get('value')}{by}"
    rest = " ".join(f"{k}={v}" for k, v in rec.items() if k not in (*_META, "event"))
    return f"{event} {rest}".rstrip()


_ENVELOPE = ("v", "seq", "boot", "type", "t_ms", "log")


def record(msg: dict[str, Any]) -> dict[str, Any] | None:
    """The flash record of a `log` message (protocol v1 sent its fields at the top level)."""
    rec = msg.get("rec")
    if isinstance(rec, dict):
        return rec
    if "n" in msg:
        return {k: v for k, v in msg.items() if k not in _ENVELOPE}
    return None


def _page(
    link: Any, first: int, which: str
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], float | None]]]:
    reply = link.request("log", PAGE_TIMEOUT_S, **{"from": first, "log": which, "count": PAGE})
    got = []
    for x in link.poll():
        if not isinstance(x, Received) or x.msg.get("type") != "log":
            continue
        rec = record(x.msg)
        ok = rec is not None and isinstance(rec.get("n"), int)
        if ok and rec is not None and x.msg.get("log", "alarm") == which:
            got.append((rec, x.wall_time))
    return reply, got


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        if args.first < 0:
            raise UsageError("--from must be a record number (0 or more)")
        link = open_link(args)
        try:
            return _read_all(args, link)
        finally:
            link.close()

    return run_guarded("bedside log", body)


def _read_all(args: argparse.Namespace, link: Any) -> int:
    n = args.first
    shown = 0
    seen: set[int] = set()
    end = None
    while True:
        reply, recs = _page(link, n, args.which)
        count = reply.get("count")
        if isinstance(count, int) and len(recs) < count:  # lost in transit: ask again once
            reply, recs = _page(link, n, args.which)
            if isinstance(count, int) and len(recs) < count:
                raise Refused(f"records {n}.. of the {args.which} log did not arrive whole")
        for rec, wall in sorted(recs, key=lambda r: int(r[0]["n"])):
            if rec["n"] in seen:
                continue
            seen.add(rec["n"])
            shown += 1
            _print(args, rec, wall)
        nxt, end = reply.get("next"), reply.get("end")
        if not isinstance(nxt, int) or not count or (isinstance(end, int) and nxt >= end):
            break
        n = nxt
    if not args.json:
        first = reply.get("first")
        print(
            f"{shown} records of the {args.which} log (kept: {first}..{end} ; "
            f"this boot: {reply.get('boot')})"
        )
    return 0


def _print(args: argparse.Namespace, rec: dict[str, Any], wall: float | None) -> None:
    if args.json:
        utc = (
            datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat(timespec="milliseconds")
            if wall is not None
            else None
        )
        print(json.dumps({"log": args.which, **rec, "wall_time": wall, "wall_utc": utc}))
        return
    print(
        f"#{rec.get('n'):>6}  {local_time(wall):<19}  boot {rec.get('b')} "
        f"{uptime(rec.get('u', 0)):<14} {describe(rec)}"
    )
