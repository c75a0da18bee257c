"""``bedside ports``: the serial ports this PC has, the likely Bedside devices marked.

A Bedside device is a Pico running MicroPython (its USB VID:PID is in
``bedside_host.link.ports.USB_IDS``). ``--probe`` opens each likely one and asks for its
hello (firmware version, boot counter) to tell a Bedside device from another MicroPython board.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bedside_host.link.ports import PortInfo, candidates

HELP = "list serial ports and mark the ones likely to be a Bedside device"
PROBE_TIMEOUT_S = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per port")
    p.add_argument(
        "--probe",
        action="store_true",
        help="open each likely Bedside port and ask for its hello (sends a command)",
    )


def probe(port: str) -> str:
    """What the device on `port` says of itself, or why it did not."""
    from bedside_host.link.client import DeviceLink

    link = DeviceLink(port, catch_up=False)
    try:
        link.poll()
        if link.state == "disconnected":
            return f"cannot open: {link.last_error}"
        if not link.wait_live(PROBE_TIMEOUT_S) or link.hello is None:
            return "no Bedside hello (another MicroPython program?)"
        h = link.hello
        return f"Bedside fw {h.get('fw')}, protocol {h.get('protocol')}, boot {link.boot}"
    finally:
        link.close()


def _row(p: PortInfo, probed: str | None) -> dict[str, Any]:
    return {
        "device": p.device,
        "usb_id": p.usb_id or None,
        "description": p.description,
        "serial_number": p.serial_number,
        "known": p.known,
        "likely_bedside": p.likely_bedside,
        "probe": probed,
    }


def run(args: argparse.Namespace) -> int:
    ports = candidates()
    rows = [_row(p, probe(p.device) if args.probe and p.likely_bedside else None) for p in ports]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print("no serial ports found")
        return 0
    for r in rows:
        mark = "*" if r["likely_bedside"] else " "
        what = r["known"] or r["description"] or ""
        line = f"{mark} {r['device']:<24} {r['usb_id'] or '-':<10} {what}"
        if r["serial_number"]:
            line += f"  (serial {r['serial_number']})"
        if r["probe"]:
            line += f"  -> {r['probe']}"
        print(line)
    if any(r["likely_bedside"] for r in rows):
        print("* likely a Bedside device (Pico running MicroPython)")
    return 0
