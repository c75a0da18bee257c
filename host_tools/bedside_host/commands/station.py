"""``bedside station``: the central station in one process (docs/station.md).

Owns a DeviceLink per ``--port`` (one thread each) and/or subscribes to the chairs an MQTT
broker carries (``--mqtt URL [--site S]``, one persistent session), records every item in the
record file like ``bedside record`` (one store thread), feeds the station model, optionally
sends HL7 PCD-01/PCD-04 to the hospital (``--hl7 mllp://HOST:PORT``) and serves the page
(FastAPI + uvicorn, one asyncio event loop) at ``--http`` (default 127.0.0.1:8080; port 0
picks a free one). The first line on stdout is ``Bedside station: http://HOST:PORT/ ...``.
SIGINT or SIGTERM stops it cleanly (links closed, MQTT session closed, last batch committed,
queued HL7 sent or dead-lettered). Exit 0 when stopped, 1 when the address cannot be bound, 2
on a bad option. Not a certified medical device: the bedside is the
primary alarm; the station never acknowledges or silences a bedside.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bedside_host.station.feeds import MqttOptions
    from bedside_host.station.sessions import ServiceFactory

HELP = "central station: every chair (ports, MQTT) on one page in the browser, recorded, HL7"
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


@dataclass(frozen=True)
class Hl7Options:
    url: str
    dead_letters: Path
    period_s: float = 60.0
    site: str = "local"  # the site of the chairs on ports in their HL7 ids


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
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further name the page is reached by (repeat); the station refuses requests for"
        " any other host (default: the loopback names, the --http address and, bound to all"
        " interfaces, this PC's names and addresses)",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: never)"
    )
    p.add_argument(
        "--mqtt",
        metavar="URL",
        help="also show (and record) every chair on this broker: mqtt[s]://[USER[:PASS]@]HOST[:PORT]"
        " (docs/mqtt.md)",
    )
    p.add_argument(
        "--site",
        metavar="S",
        help="with --mqtt: only this site's chairs; with --hl7: the site of the --port chairs",
    )
    p.add_argument(
        "--client-id",
        metavar="ID",
        help="with --mqtt: this station's persistent MQTT session name"
        " (default: bedside-station-<host>-<site>)",
    )
    p.add_argument(
        "--hl7",
        metavar="URL",
        help="also send IHE PCD-01/PCD-04 to this receiver: mllp://HOST:PORT (docs/hl7.md)",
    )
    p.add_argument(
        "--dead-letter",
        type=Path,
        metavar="FILE",
        help="with --hl7: undeliverable messages (default: <db>-hl7-dead-letters.jsonl"
        " next to the record file)",
    )
    p.add_argument(
        "--hl7-period",
        type=float,
        default=60.0,
        metavar="S",
        help="with --hl7: PCD-01 period per chair (default: 60)",
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


def chair_specs(
    ports: Sequence[str], names: Sequence[str], *, mqtt: bool = False
) -> list[ChairSpec]:
    from bedside_host.commands.record import UsageError as RecordUsage
    from bedside_host.commands.record import _check_ports

    if len(names) > len(ports):
        raise UsageError("more --chair names than --port")
    if not ports:
        if mqtt:
            return []  # every chair comes from the broker
        raise UsageError("give at least one --port (or --mqtt URL)")
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
    mqtt: MqttOptions | None = None,
    hl7: Hl7Options | None = None,
    session_factory: ServiceFactory | None = None,
    allow_hosts: Sequence[str] = (),
) -> int:
    """Run the station until `stop` is set, `duration` passes or the server exits. With
    `mqtt` the broker's chairs are shown and recorded too; with `hl7` every live device
    message also goes to the HL7 bridge."""
    import uvicorn

    from bedside_host.hl7.bridge import Hl7Bridge, start_bridge
    from bedside_host.mqtt import topics
    from bedside_host.station import history
    from bedside_host.station.app import Hub, create_app
    from bedside_host.station.feeds import MqttChairs, hl7_chair_id, hl7_status
    from bedside_host.station.hosts import station_hosts
    from bedside_host.station.links import LinkThread, StoreThread
    from bedside_host.station.model import StationModel
    from bedside_host.station.sessions import SessionDesk, default_service

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
    app = create_app(hub, station_hosts(host, allow_hosts))
    loop = asyncio.get_running_loop()

    bridge: Hl7Bridge | None = None
    hl7_ids = {c.id: hl7_chair_id(c.label, hl7.site) for c in chairs} if hl7 else {}

    def deliver(
        chair: str, msgs: list[tuple[dict[str, Any], float]], state: str | None, detail: str
    ) -> None:
        if state is not None:
            model.on_link_state(chair, state, detail)
        for msg, rx in msgs:
            model.on_message(chair, msg, rx)
            if bridge is not None:
                bridge.on_message(hl7_ids[chair], msg, rx)

    def to_hl7(chair: str, msg: dict[str, Any], rx: float) -> None:
        if bridge is not None:
            bridge.on_message(chair, msg, rx)

    threads = [LinkThread(c.id, open_link(c.port), loop, deliver, store_thread) for c in chairs]
    desk = SessionDesk(store_thread, hub.allowed, session_factory or default_service)
    for c, t in zip(chairs, threads, strict=True):
        hub.commanders[t.chair] = t.submit
        desk.add(c.id, c.port, t)  # the record's device key of a chair on a port is its port
    hub.sessions = desk
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
    remote: MqttChairs | None = None
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
        extra = ""
        if mqtt is not None:
            extra += f", MQTT {topics.parse_url(mqtt.url)} site {mqtt.site or 'all'}"
        if hl7 is not None:
            extra += f", HL7 to {hl7.url}"
        announce(
            f"Bedside station: http://{shown}:{bound}/ ({len(chairs)} chairs on ports{extra},"
            f" record file {db})"
        )
        start_detail: dict[str, Any] = {"chairs": [c.id for c in chairs]}
        if mqtt is not None:
            start_detail["mqtt"] = {"broker": str(topics.parse_url(mqtt.url)), "site": mqtt.site}
        if hl7 is not None:
            start_detail["hl7"] = hl7.url
        await asyncio.to_thread(history.audit, db, "", "start", start_detail, hub.name)
        hub.status["store"] = lambda: {"file": str(db), "error": store_thread.error}
        if hl7 is not None:
            bridge = start_bridge(hl7.url, hl7.dead_letters, period_s=hl7.period_s)
            started, hl7_url = bridge, hl7.url
            hub.status["hl7"] = lambda: hl7_status(started, hl7_url)
        for t in threads:
            t.start()
        if mqtt is not None:
            remote = MqttChairs(
                model, mqtt, loop, record=store_thread.put, also=[to_hl7] if hl7 else []
            ).start()
            hub.status["mqtt"] = remote.status
        waits = [serving, asyncio.create_task(stop.wait())]
        if duration > 0:
            waits.append(asyncio.create_task(asyncio.sleep(duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        for t in threads:
            t.stop()
        if remote is not None:
            await asyncio.to_thread(remote.stop)
        for t in threads:
            if t.is_alive():
                await asyncio.to_thread(t.join, 5)
        await asyncio.to_thread(store_thread.stop)
        if bridge is not None:
            await asyncio.to_thread(bridge.stop)  # what is still queued: the dead letters
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
        mqtt, hl7 = _remote_options(args)
        chairs = chair_specs(args.port, args.chair, mqtt=mqtt is not None)
        if args.duration < 0:
            raise UsageError("--duration must be >= 0")
        allow_hosts = list(getattr(args, "allow_host", None) or [])  # as the other options
        for name in allow_hosts:
            if not re.fullmatch(r"[A-Za-z0-9._-]+|\[?[0-9A-Fa-f:.]+\]?", name):
                raise UsageError(f"--allow-host {name!r}: a host name or address, nothing else")
        from bedside_host.config import ConfigError
        from bedside_host.session.clinic import load_clinic
        from bedside_host.station.sessions import service_factory
        from bedside_host.store import Store, StoreError

        try:
            clinic = load_clinic()  # the [session] clinic settings: a bad one is a usage error
        except ConfigError as e:
            raise UsageError(str(e)) from None
        try:
            Store(args.db).close()  # create or migrate it now: a bad file is a usage error
        except StoreError as e:
            raise UsageError(str(e)) from None
    except UsageError as e:
        print(f"bedside station: error: {e}", file=sys.stderr)
        return 2
    return run_station(
        chairs,
        args.db,
        host,
        port,
        args.duration,
        open_link,
        mqtt=mqtt,
        hl7=hl7,
        session_factory=service_factory(clinic),
        allow_hosts=allow_hosts,
    )


def _remote_options(args: argparse.Namespace) -> tuple[MqttOptions | None, Hl7Options | None]:
    """The --mqtt and --hl7 options, checked (UsageError)."""
    from bedside_host.hl7.mllp import MllpUrlError, parse_url
    from bedside_host.mqtt import topics
    from bedside_host.station.feeds import check_mqtt, default_dead_letters

    url = getattr(args, "mqtt", None)
    site = getattr(args, "site", None)
    hl7_url = getattr(args, "hl7", None)
    try:
        if site is not None:
            topics.check_name("site", site)
        mqtt = None
        if url is not None:
            mqtt = check_mqtt(url, site, getattr(args, "client_id", None))
        elif getattr(args, "client_id", None) is not None:
            raise UsageError("--client-id needs --mqtt")
        if hl7_url is None:
            if getattr(args, "dead_letter", None) is not None:
                raise UsageError("--dead-letter needs --hl7")
            return mqtt, None
        parse_url(hl7_url)
        period = float(getattr(args, "hl7_period", 60.0))
        if not 1.0 <= period <= 86400.0:
            raise UsageError("--hl7-period must be 1..86400 s (IHE PCD: at most once a day)")
        dead = getattr(args, "dead_letter", None) or default_dead_letters(args.db)
        return mqtt, Hl7Options(hl7_url, dead, period, site or "local")
    except (topics.ConfigError, MllpUrlError) as e:
        raise UsageError(str(e)) from None


def run_station(
    chairs: Sequence[ChairSpec],
    db: Path,
    host: str,
    port: int,
    duration: float = 0.0,
    open_link: Callable[[str], Any] = _open_link,
    *,
    mqtt: MqttOptions | None = None,
    hl7: Hl7Options | None = None,
    session_factory: ServiceFactory | None = None,
    allow_hosts: Sequence[str] = (),
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
                mqtt=mqtt,
                hl7=hl7,
                session_factory=session_factory,
                allow_hosts=allow_hosts,
            )
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    return asyncio.run(main())
