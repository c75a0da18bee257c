"""``bedside audio-off``: AUDIO OFF while this command runs (docs/alarms.md, docs/protocol.md).

AUDIO OFF is a lease: the device ends it by itself when the lease runs out or the host link is
lost (HOST_LINK_LOST). This command enters it, renews it well before the lease runs out, and
leaves it on Ctrl-C (or SIGTERM, or --duration). It is refused, with the device's reason,
unless the responsible organisation set ``audio_off_allowed``. Visual alarm signals stay on
throughout. If the device ends AUDIO OFF (lease, link lost, setting withdrawn, restart) the
command says so and exits 1; it never enters AUDIO OFF again by itself.
"""

from __future__ import annotations

import argparse
import signal
import time
from types import FrameType
from typing import Any

from bedside_host.commands._device import Refused, UsageError, add_port, open_link, run_guarded
from bedside_host.link.messages import LinkDown, LinkError, LinkTimeout, Received

HELP = "AUDIO OFF while this runs (a renewed lease; only if the organisation allows it)"
LEASE_MIN_S, LEASE_MAX_S, LEASE_DEFAULT_S = 10, 300, 60  # docs/protocol.md `audio_off`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lease",
        type=int,
        default=LEASE_DEFAULT_S,
        metavar="S",
        help=f"lease in seconds, {LEASE_MIN_S}..{LEASE_MAX_S} (default {LEASE_DEFAULT_S}): "
        "how long AUDIO OFF outlasts this command if it is killed or the link is lost",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="end after S seconds (0: never)"
    )
    add_port(p)


def renew_every(lease: int) -> float:
    return max(3.0, lease / 3.0)


class _Stop:
    def __init__(self) -> None:
        self.now = False

    def __call__(self, _sig: int, _frame: FrameType | None) -> None:
        self.now = True


def _ended_by_device(x: Received, boot: int | None, floor: int) -> str | None:
    """Why AUDIO OFF is over, from a message made after our last accepted request (`floor`:
    that reply's seq; what the device said before it may predate the request)."""
    m = x.msg
    if x.replayed or (m.get("boot", 0) == boot and m["seq"] <= floor):
        return None
    if m["type"] == "audio_off" and m.get("on") is False:
        return f"the device ended AUDIO OFF ({m.get('reason')})"
    if m["type"] == "heartbeat" and m.get("audio_off") is False:
        return "the device reports AUDIO OFF is no longer in force"
    if m["type"] == "hello" and m.get("boot", 0) != boot:
        return "the device restarted: AUDIO OFF is no longer in force"
    return None


def _hold(link: Any, args: argparse.Namespace, stop: _Stop, floor: int) -> int:
    lease = args.lease
    every = renew_every(lease)
    end = time.monotonic() + args.duration if args.duration > 0 else None
    next_renew = time.monotonic() + every
    boot = link.boot
    down_since: float | None = None
    while not stop.now and (end is None or time.monotonic() < end):
        for x in link.poll(0.2):
            if isinstance(x, Received):
                why = _ended_by_device(x, boot, floor)
                if why:
                    raise Refused(why + "; alarm sounds are back")
        if time.monotonic() < next_renew:
            continue
        try:
            floor = link.request("audio_off", on=True, lease_s=lease)["seq"]
            next_renew = time.monotonic() + every
            if down_since is not None:
                print("link back: AUDIO OFF renewed", flush=True)
                down_since = None
        except LinkError as e:
            raise Refused(f"the device refused to renew AUDIO OFF: {e.error}") from None
        except (LinkDown, LinkTimeout) as e:
            next_renew = time.monotonic() + 1.0
            if down_since is None:
                down_since = time.monotonic()
                print(
                    f"link problem ({e}): AUDIO OFF ends by itself within {lease} s "
                    "unless the link comes back",
                    flush=True,
                )
            elif time.monotonic() - down_since > lease:
                why = "the link stayed down longer than the lease: AUDIO OFF has ended"
                raise Refused(why) from None
    return 0


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        if not LEASE_MIN_S <= args.lease <= LEASE_MAX_S:
            raise UsageError(f"--lease must be within {LEASE_MIN_S}..{LEASE_MAX_S} s")
        link = open_link(args)
        stop = _Stop()
        old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            floor = link.request("audio_off", on=True, lease_s=args.lease)["seq"]
            print(
                f"AUDIO OFF: alarm sounds are off while this runs (lease {args.lease} s, "
                f"renewed every {renew_every(args.lease):g} s); visual alarm signals stay on. "
                "Ctrl-C ends AUDIO OFF.",
                flush=True,
            )
            code = _hold(link, args, stop, floor)
            try:
                link.request("audio_off", on=False)
            except (LinkDown, LinkTimeout, LinkError) as e:
                raise Refused(
                    f"could not end AUDIO OFF ({e}); it ends by itself within {args.lease} s"
                ) from None
            print("AUDIO OFF ended: alarm sounds are back", flush=True)
            return code
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            link.close()

    return run_guarded("bedside audio-off", body)
