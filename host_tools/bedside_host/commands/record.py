"""``bedside record``: record one or more devices into a record file, losslessly.

One DeviceLink per ``--port`` (it attaches, fetches what the device still holds, replays lost
lines, reads missed alarm events from the flash log and reports what nothing can give as a
gap); every line and gap goes to the store, which commits in batches. SIGINT or SIGTERM stops
cleanly: the links are closed and the last batch is committed. A port that disappears is
reopened by its link; the recorder keeps running. Exit 0 when stopped, 2 on a bad option, a
missing port at start or a file that is not a record file. Not a certified medical device: a
record for review, never an alarm path (the bedside device alarms on its own).

The serial port has one reader: to watch a device and record it at once, use ``bedside monitor
--db FILE``.

``--raw DIR`` also keeps the raw bytes of each port, both directions, with host receive times,
in a host-link capture file per port and run (DIR/<port>-<UTC start>.capture; the format of
bedside_host.sil.capture, docs/records.md "Raw capture"); a new run never overwrites one.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from bedside_host.store import Item, Store, StoreError

HELP = "record devices into a SQLite record file (every message once, gaps explicit)"
STATUS_EVERY_S = 10.0
POLL_S = 0.05  # per loop, shared by the ports


class LinkLike(Protocol):
    """What the recorder needs of a DeviceLink."""

    def poll(self, timeout: float = 0.0) -> Sequence[Item]: ...
    def close(self) -> None: ...


class UsageError(Exception):
    """Reported in one line, exit status 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        action="append",
        metavar="P",
        help="device port or pyserial URL (repeat for more devices)",
    )
    p.add_argument(
        "--mqtt",
        metavar="URL",
        help="instead of ports: record every chair from an MQTT broker (docs/mqtt.md)",
    )
    p.add_argument("--site", help="with --mqtt: only this site's chairs")
    p.add_argument("--db", required=True, type=Path, metavar="FILE", help="record file")
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: never)"
    )
    p.add_argument("--quiet", action="store_true", help="no status line every 10 s")
    p.add_argument(
        "--raw",
        type=Path,
        metavar="DIR",
        help="also keep the raw bytes of each port (both directions, host receive times) in "
        "DIR/<port>-<UTC start>.capture (`bedside replay FILE` prints its timeline)",
    )


class Recorder:
    """Polls every link, hands each item to the store, commits in batches."""

    def __init__(self, store: Store, links: dict[str, LinkLike]) -> None:
        self.store = store
        self.links = links
        self.stopping = False
        self.items: dict[str, int] = dict.fromkeys(links, 0)
        self.store_error = ""  # the last write problem (the items wait in the buffer)

    def step(self, timeout: float = POLL_S) -> int:
        """Poll each link once; returns the items handed to the store. A store that cannot
        write keeps the items buffered and retries; the error is kept for the status line."""
        n = 0
        each = timeout / max(1, len(self.links))
        for port, link in self.links.items():
            got = link.poll(each)
            for item in got:
                try:
                    self.store.add(item)
                except StoreError as e:
                    self.store_error = str(e)
            self.items[port] += len(got)
            n += len(got)
        try:
            self.store.maybe_flush()
        except StoreError as e:
            self.store_error = str(e)
        return n

    def run(
        self,
        duration: float = 0.0,
        status: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        start = clock()
        next_status = start + STATUS_EVERY_S
        while not self.stopping:
            self.step()
            now = clock()
            if duration and now - start >= duration:
                break
            if status is not None and now >= next_status:
                next_status = now + STATUS_EVERY_S
                status(self.status())

    def status(self) -> str:
        st = self.store.stats
        parts = []
        for port, link in self.links.items():
            state = getattr(link, "state", "")
            parts.append(f"{port}: {self.items[port]} items" + (f" ({state})" if state else ""))
        problem = f"; NOT WRITTEN YET: {self.store_error}" if self.store_error else ""
        return (
            f"recorded {st.stored} messages, {st.duplicates} duplicates dropped, "
            f"{st.gaps} gaps; " + "; ".join(parts) + problem
        )

    def close(self) -> None:
        """Close the links, then commit what is buffered (nothing is lost on a clean stop)."""
        try:
            for link in self.links.values():
                try:
                    link.close()
                except OSError:
                    pass
        finally:
            self.store.close()


def _check_ports(ports: Sequence[str]) -> None:
    if len(set(ports)) != len(ports):
        raise UsageError("a port is given twice")
    for p in ports:
        if "://" not in p and not Path(p).exists():
            raise UsageError(f"no such port: {p}")


def _open_link(url: str) -> LinkLike:
    from bedside_host.link.client import DeviceLink

    return DeviceLink(url)


def raw_path(raw_dir: Path, port: str, start: float) -> Path:
    """DIR/<port name>-<UTC start>.capture (port name: its last path part, URL-safe)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", port.rstrip("/").rsplit("/", 1)[-1]) or "port"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    path = raw_dir / f"{name}-{stamp}.capture"
    n = 1
    while path.exists():  # two runs in one second, or two ports with one name
        n += 1
        path = raw_dir / f"{name}-{stamp}-{n}.capture"
    return path


def _open_raw(raw_dir: Path, links: dict[str, LinkLike]) -> list[Any]:
    """A LinkCaptureWriter per port, hooked to its link's bytes (UsageError if unwritable)."""
    from bedside_host.sil.capture import LinkCaptureWriter

    if raw_dir.exists() and not raw_dir.is_dir():
        raise UsageError(f"--raw {raw_dir} is not a directory")
    writers = []
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
        for port, link in links.items():
            w = LinkCaptureWriter(raw_path(raw_dir, port, time.time()), port)
            link.on_bytes = w.data  # type: ignore[attr-defined]
            writers.append(w)
    except OSError as e:
        for w in writers:
            w.close()
        raise UsageError(f"cannot write --raw {raw_dir}: {e.strerror or e}") from None
    return writers


def run(args: argparse.Namespace, open_link: Callable[[str], LinkLike] = _open_link) -> int:
    if args.mqtt is not None or args.site is not None:
        return _run_mqtt(args)
    ports: list[str] = args.port or []
    try:
        if not ports:
            raise UsageError("give --port (one per device) or --mqtt URL")
        _check_ports(ports)
        if args.duration < 0:
            raise UsageError("--duration must be >= 0")
        try:
            store = Store(args.db)
        except StoreError as e:
            raise UsageError(str(e)) from None
    except UsageError as e:
        print(f"bedside record: error: {e}", file=sys.stderr)
        return 2
    links = {p: open_link(p) for p in ports}
    raw: list[Any] = []
    if getattr(args, "raw", None) is not None:
        try:
            raw = _open_raw(args.raw, links)
        except UsageError as e:
            print(f"bedside record: error: {e}", file=sys.stderr)
            for link in links.values():
                link.close()
            store.close()
            return 2
    rec = Recorder(store, links)

    try:
        error = _run_until_stopped(rec, args)
    finally:
        for w in raw:
            w.close()
    for w in raw:
        lost = f", {w.errors} records NOT WRITTEN" if w.errors else ""
        print(f"raw capture {w.path}: {w.bytes} bytes{lost}", file=sys.stderr)
    print(rec.status(), file=sys.stderr)
    if error:
        print(f"bedside record: error: {error}", file=sys.stderr)
        return 1
    return 0


def _run_mqtt(args: argparse.Namespace) -> int:
    """The recorder subscriber (bedside_host.mqtt.recorder)."""
    from bedside_host.mqtt import topics

    try:
        if args.port:
            raise UsageError("--port and --mqtt exclude each other")
        if args.mqtt is None:
            raise UsageError("--site needs --mqtt")
        if args.duration < 0:
            raise UsageError("--duration must be >= 0")
        topics.parse_url(args.mqtt)
        if args.site is not None:
            topics.check_name("site", args.site)
        store = Store(args.db)
    except (UsageError, topics.ConfigError, StoreError) as e:
        print(f"bedside record: error: {e}", file=sys.stderr)
        return 2
    from bedside_host.mqtt.recorder import MqttRecorder

    rec = MqttRecorder(store, args.mqtt, site=args.site).start()

    error = _run_until_stopped(rec, args)
    print(rec.status(), file=sys.stderr)
    if error:
        print(f"bedside record: error: {error}", file=sys.stderr)
        return 1
    return 0


class _Running(Protocol):
    stopping: bool

    def run(self, duration: float, status: Callable[[str], None] | None) -> Any: ...

    def close(self) -> Any: ...


def _run_until_stopped(rec: _Running, args: argparse.Namespace) -> str:
    """Run a recorder (ports or MQTT) for --duration or until SIGINT/SIGTERM, then close it;
    the record file's error, or ''."""

    def _stop(signum: int, frame: FrameType | None) -> None:
        rec.stopping = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    error = ""
    try:
        status = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        rec.run(args.duration, status)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        try:
            rec.close()
        except StoreError as e:
            error = str(e)
    return error
