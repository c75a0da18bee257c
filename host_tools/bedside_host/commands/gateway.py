"""``bedside gateway``: one chair's device link, its raw record, published to an MQTT broker.

``bedside gateway --port P --mqtt mqtt://HOST:PORT --site S --chair C [--db FILE]``: the link
client and record store of ``bedside record`` at the chair's PC, publishing
``bedside/v1/<site>/<chair>/...`` (docs/mqtt.md). QoS 1 messages wait in an outbox (in the
record file with ``--db``) until the broker acknowledges them, so a broker restart loses no
alarm event. SIGINT or SIGTERM stops cleanly (retained status "offline"). Exit 0 when stopped,
2 on a bad option. Not a certified medical device: the bedside stays the primary alarm.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from bedside_host.store import Store, StoreError

HELP = "publish one chair's device to an MQTT broker (outbox: no alarm event lost)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, metavar="P", help="device port or pyserial URL")
    p.add_argument(
        "--mqtt",
        required=True,
        metavar="URL",
        help="broker: mqtt://[user:password@]HOST[:PORT] or mqtts://... (TLS)",
    )
    p.add_argument("--site", required=True, help="site (clinic) name: letters, digits, _ . -")
    p.add_argument("--chair", required=True, help="chair name: letters, digits, _ . -")
    p.add_argument(
        "--db", type=Path, metavar="FILE", help="record file (raw record and the outbox)"
    )
    p.add_argument(
        "--gateway-id", metavar="ID", help="this gateway's name (default: host-site-chair)"
    )
    p.add_argument(
        "--ca-file", metavar="FILE", help="CA certificate for mqtts:// (default: system)"
    )
    p.add_argument(
        "--keepalive",
        type=int,
        default=10,
        metavar="S",
        help="MQTT keepalive; the broker reports the gateway offline 1.5 x S after it is gone",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: never)"
    )
    p.add_argument("--quiet", action="store_true", help="no status line every 10 s")


def run(args: argparse.Namespace) -> int:
    from bedside_host.mqtt import topics

    try:
        url = topics.parse_url(args.mqtt)
        topics.check_name("site", args.site)
        topics.check_name("chair", args.chair)
        if not 2 <= args.keepalive <= 600:
            raise topics.ConfigError("--keepalive must be 2..600 s")
        if args.duration < 0:
            raise topics.ConfigError("--duration must be >= 0")
        if "://" not in args.port and not Path(args.port).exists():
            raise topics.ConfigError(f"no such port: {args.port}")
        store = Store(args.db) if args.db is not None else None
    except (topics.ConfigError, StoreError) as e:
        print(f"bedside gateway: error: {e}", file=sys.stderr)
        return 2
    import time

    from bedside_host.link.client import DeviceLink
    from bedside_host.mqtt.connection import Connection, Will
    from bedside_host.mqtt.gateway import Gateway, default_gateway_id
    from bedside_host.mqtt.outbox import Outbox

    gw_id = args.gateway_id or default_gateway_id(args.site, args.chair)

    def connection(will: Will) -> Connection:
        return Connection(
            url,
            f"bedside-gw-{gw_id}"[:64],
            will=will,
            keepalive=args.keepalive,
            ca_file=args.ca_file,
        )

    gw = Gateway(
        DeviceLink(args.port),
        connection,
        site=args.site,
        chair=args.chair,
        port=args.port,
        store=store,
        outbox=Outbox(args.db),
        gw_id=gw_id,
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        gw.stopping = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    error = ""
    try:
        start = time.monotonic()
        next_status = start + 10.0
        while not gw.stopping:
            gw.step()
            now = time.monotonic()
            if args.duration and now - start >= args.duration:
                break
            if not args.quiet and now >= next_status:
                next_status = now + 10.0
                print(gw.status(), file=sys.stderr, flush=True)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        try:
            gw.close()
        except StoreError as e:
            error = str(e)
    print(gw.status(), file=sys.stderr)
    if error:
        print(f"bedside gateway: error: {error}", file=sys.stderr)
        return 1
    return 0
