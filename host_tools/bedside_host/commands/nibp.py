"""``bedside nibp start|stop``: measure the blood pressure now (STAT), or abort the running
measurement. The device refuses what cannot apply (no NIBP module, already running, idle) and
its reason is shown (exit 1). ``--wait`` waits for the result (or the failure) and shows it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bedside_host.commands._device import Refused, add_port, open_link, run_guarded
from bedside_host.link.messages import Received

HELP = "start or stop a blood-pressure measurement on the device"
WAIT_MAX_S = 240.0  # longer than the slowest NIBP cycle (adult timeout 140 s plus deflation)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("--wait", action="store_true", help="start: wait for the result and show it")
    p.add_argument(
        "--timeout", type=float, default=WAIT_MAX_S, help="with --wait: give up after S seconds"
    )
    add_port(p)


def _wait(link: Any, timeout: float) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for x in link.poll(0.2):
            if not isinstance(x, Received) or x.replayed:
                continue
            m = x.msg
            if m["type"] == "nibp" and m.get("sys") is not None:
                pr = f", pulse {m['pr']}/min" if m.get("pr") is not None else ""
                print(f"NIBP {m['sys']}/{m['dia']} mmHg (mean {m['map']}){pr}")
                return 0
            if m["type"] == "nibp_state" and m.get("state") in ("error", "cuff_fault"):
                why = m.get("message") or m.get("reason") or m.get("error")
                raise Refused(f"the measurement failed: {why}")
            if m["type"] == "nibp_state" and m.get("state") == "aborting":
                raise Refused("the measurement was aborted")
    raise Refused(f"no NIBP result within {timeout:g} s")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        link = open_link(args)
        try:
            link.request("nibp", action=args.action)
            print("NIBP measurement started" if args.action == "start" else "NIBP stopped")
            if args.wait and args.action == "start":
                return _wait(link, args.timeout)
            return 0
        finally:
            link.close()

    return run_guarded(f"bedside nibp {args.action}", body)
