"""``bedside station``: the central station in one process (docs/station.md).

Owns a DeviceLink per ``--port`` (one thread each), records every item in the record file like
``bedside record`` (one store thread), feeds the station model and serves the page (FastAPI +
uvicorn, one asyncio event loop) at ``--http`` (default 127.0.0.1:8080; port 0 picks a free
one). The first line on stdout is ``Bedside station: http://HOST:PORT/ ...``. SIGINT or
SIGTERM stops it cleanly (links closed, last batch committed). Exit 0 when stopped, 1 when the
address cannot be bound, 2 on a bad option. Not a certified medical device: the bedside is the
primary alarm; the station never acknowledges or silences a bedside.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

HELP = "central station: every chair on one page in the browser, recorded (FastAPI, WebSocket)"
DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_DB = "bedside-station.db"
LABEL_MAX = 24


class UsageError(Exception):
    """Reported in one line, exit status 2."""


@dataclass(frozen=True)
class ChairSpec:
    id: str
    label: str
    port: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="P",
        help="device port or pyserial URL, one per chair (repeat)",
    )
    p.add_argument(
        "--chair",
        action="append",
        default=[],
        metavar="NAME",
        help="chair name shown on the tile, in the order of --port (default: Chair 1, 2 ...)",
    )
    p.add_argument(
        "--db",
        type=Path,
        default=Path(DEFAULT_DB),
        metavar="FILE",
        help=f"record file (created if missing; default: {DEFAULT_DB})",
    )
    p.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"address the page is served on (default: {DEFAULT_HTTP}; port 0: any free port)",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: never)"
    )


def parse_http(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--http must be HOST:PORT, not {text!r}")
    try:
        n = int(port)
    except ValueError:
        raise UsageError(f"--http port is not a number: {port!r}") from None
    if not 0 <= n <= 65535:
        raise UsageError(f"--http port out of range: {n}")
    return host.strip("[]"), n


def chair_specs(ports: Sequence[str], names: Sequence[str]) -> list[ChairSpec]:
    from bedside_host.commands.record import UsageError as RecordUsage
    from bedside_host.commands.record import _check_ports

    if not ports:
        raise UsageError("give at least one --port")
    if len(names) > len(ports):
        raise UsageError("more --chair names than --port")
    try:
        _check_ports(ports)
    except RecordUsage as e:
        raise UsageError(str(e)) from None
    out = []
    for i, port in enumerate(ports):
        label = names[i].strip() if i < len(names) else f"Chair {i + 1}"
        if not label or len(label) > LABEL_MAX or not label.isprintable():
            raise UsageError(f"chair name must be 1..{LABEL_MAX} printable characters: {label!r}")
        out.append(ChairSpec(label, label, port))
    if len({c.id for c in out}) != len(out):
        raise UsageError("two chairs have the same name")
    return out


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy address is a clear error (OSError)."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _open_link(url: str) -> Any:
    from bedside_host.link.client import DeviceLink

    return DeviceLink(url)


async def serve(
    chairs: Sequence[ChairSpec],
    db: Path,
    host: str,
    port: int,
    *,
    duration: float = 0.0,
    open_link: Callable[[str], Any] = _open_link,
    announce: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the station until `stop` is set, `duration` passes or the server exits."""
    import uvicorn

    from bedside_host.station import history
    from bedside_host.station.app import Hub, create_app
    from bedside_host.station.links import LinkThread, StoreThread
    from bedside_host.station.model import StationModel

    try:
        sock = bind(host, port)
    except OSError as e:
        print(f"bedside station: error: cannot serve on {host}:{port}: {e}", file=sys.stderr)
        return 1
    model = StationModel()
    for c in chairs:
        model.add_chair(c.id, c.label, device=c.port)
    store_thread = StoreThread(db)
    store_thread.start()
    await asyncio.to_thread(store_thread.ready.wait)
    if store_thread.close_error:
        print(f"bedside station: error: {store_thread.close_error}", file=sys.stderr)
        return 2
    hub = Hub(model, db, name=f"{socket.gethostname()}:{port}")
    app = create_app(hub)
    loop = asyncio.get_running_loop()

    def deliver(
        chair: str, msgs: list[tuple[dict[str, Any], float]], state: str | None, detail: str
    ) -> None:
        if state is not None:
            model.on_link_state(chair, state, detail)
        for msg, rx in msgs:
            model.on_message(chair, msg, rx)

    threads = [LinkThread(c.id, open_link(c.port), loop, deliver, store_thread) for c in chairs]
    for t in threads:
        hub.commanders[t.chair] = t.submit
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stop = stop or asyncio.Event()
    rc = 0
    try:
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if serving.done() or not server.servers:
            print(f"bedside station: error: cannot serve on {host}:{port}", file=sys.stderr)
            rc = 1
            return rc
        bound = server.servers[0].sockets[0].getsockname()[1]
        hub.name = f"{socket.gethostname()}:{bound}"
        shown = f"[{host}]" if ":" in host else host
        announce(
            f"Bedside station: http://{shown}:{bound}/ ({len(chairs)} chairs, record file {db})"
        )
        await asyncio.to_thread(
            history.audit, db, "", "start", {"chairs": [c.id for c in chairs]}, hub.name
        )
        for t in threads:
            t.start()
        waits = [serving, asyncio.create_task(stop.wait())]
        if duration > 0:
            waits.append(asyncio.create_task(asyncio.sleep(duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        for t in threads:
            t.stop()
        for t in threads:
            if t.is_alive():
                await asyncio.to_thread(t.join, 5)
        await asyncio.to_thread(store_thread.stop)
        if not serving.done():
            await serving
        if rc == 0:
            await asyncio.to_thread(history.audit, db, "", "stop", None, hub.name)
    if store_thread.close_error:
        print(f"bedside station: error: {store_thread.close_error}", file=sys.stderr)
        return 1
    return rc


def run(args: argparse.Namespace, open_link: Callable[[str], Any] = _open_link) -> int:
    try:
        host, port = parse_http(args.http)
        chairs = chair_specs(args.port, args.chair)
        if args.duration < 0:
            raise UsageError("--duration must be >= 0")
        from bedside_host.store import Store, StoreError

        try:
            Store(args.db).close()  # create or migrate it now: a bad file is a usage error
        except StoreError as e:
            raise UsageError(str(e)) from None
    except UsageError as e:
        print(f"bedside station: error: {e}", file=sys.stderr)
        return 2
    return run_station(chairs, args.db, host, port, args.duration, open_link)


def run_station(
    chairs: Sequence[ChairSpec],
    db: Path,
    host: str,
    port: int,
    duration: float = 0.0,
    open_link: Callable[[str], Any] = _open_link,
) -> int:
    """Run until SIGINT/SIGTERM (or `duration`); used by ``bedside demo --station`` too."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def _signal(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(stop.set)

        # Our handlers stay in force around uvicorn's (it re-raises a caught signal on exit).
        old = {s: signal.signal(s, _signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return await serve(
                chairs,
                db,
                host,
                port,
                duration=duration,
                open_link=open_link,
                announce=lambda s: print(s, flush=True),
                stop=stop,
            )
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    return asyncio.run(main())
