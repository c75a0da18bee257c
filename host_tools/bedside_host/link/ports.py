"""Serial ports that may be a Bedside device: the USB ids table (the one place) and discovery.

A Bedside device is a Raspberry Pi Pico running MicroPython; its USB CDC port enumerates with
the MicroPython VID:PID below. Other boards in the table are named but not taken for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (VID, PID) -> (what it is, likely a Bedside device)
USB_IDS: dict[tuple[int, int], tuple[str, bool]] = {
    (0x2E8A, 0x0005): ("Raspberry Pi Pico running MicroPython", True),
    (0x2E8A, 0x0003): ("Raspberry Pi RP2040 in BOOTSEL mode (no firmware running)", False),
    (0x2E8A, 0x000A): ("Raspberry Pi Pico SDK CDC (not MicroPython)", False),
}


@dataclass(frozen=True)
class PortInfo:
    device: str
    vid: int | None
    pid: int | None
    description: str
    serial_number: str | None
    known: str | None  # what USB_IDS says it is
    likely_bedside: bool

    @property
    def usb_id(self) -> str:
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04X}:{self.pid:04X}"


def describe(p: Any) -> PortInfo:
    """A PortInfo from a serial.tools.list_ports ListPortInfo (or anything shaped like it)."""
    vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
    entry = USB_IDS.get((vid, pid)) if isinstance(vid, int) and isinstance(pid, int) else None
    known, likely = entry if entry is not None else (None, False)
    desc = getattr(p, "description", "") or ""
    return PortInfo(
        device=str(p.device),
        vid=vid,
        pid=pid,
        description="" if desc == "n/a" else desc,
        serial_number=getattr(p, "serial_number", None),
        known=known,
        likely_bedside=likely,
    )


def candidates() -> list[PortInfo]:
    """Every serial port the OS lists, likely Bedside devices first."""
    from serial.tools import list_ports

    ports = [describe(p) for p in list_ports.comports()]
    return sorted(ports, key=lambda p: (not p.likely_bedside, p.device))
