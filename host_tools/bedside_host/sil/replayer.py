"""Run one firmware build over a capture in virtual time; print its alarm timeline as JSON.

Run as ``python -m bedside_host.sil.replayer CAPTURE [--all-settings]`` with BEDSIDE_FIRMWARE
naming the firmware/ directory of the build (so each build is imported in its own process).
The device is the real core (bedside.device.Device driven by bedside.mainloop.MainLoop, the
loop body the Pico and the SIL run); the clock is virtual, advanced in TICK_MS steps from the
capture's clock_start_ms; the captured bytes are fed to the oximeter and NIBP ports at their
captured times; the sounder, LEDs and host link are quiet fakes; no flash store.
Output (stdout, one JSON object): firmware, version, settings_applied, settings_skipped,
virtual_ms, wall_s, ticks, timeline [{t_ms, condition, priority, event, state, value, limit}].
Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bedside_host import FIRMWARE_DIR, ensure_firmware_on_path
from bedside_host.sil.capture import Capture, CaptureError, read_capture


class FeedPort:
    """A UART fed with captured chunks; reads return them in order, writes are dropped."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def push(self, data: bytes) -> None:
        self._chunks.append(data)

    def readinto(self, buf: Any) -> int | None:
        n = 0
        want = len(buf)
        while n < want and self._chunks:
            chunk = self._chunks[0]
            k = min(want - n, len(chunk) - self._pos)
            buf[n : n + k] = chunk[self._pos : self._pos + k]
            n += k
            self._pos += k
            if self._pos >= len(chunk):
                self._chunks.pop(0)
                self._pos = 0
        return n or None

    def write(self, data: Any) -> int:
        return len(data)


class QuietSounder:
    def __init__(self) -> None:
        self.on = False

    def tone(self, hz: int, duty: int) -> None:
        self.on = True

    def off(self) -> None:
        self.on = False


class QuietLeds:
    def __init__(self) -> None:
        self.state = [False] * 4

    def set(self, color: int, on: bool) -> None:
        if 0 <= color < len(self.state):
            self.state[color] = bool(on)


def replay(cap: Capture, all_settings: bool = False) -> dict[str, Any]:
    """The alarm timeline of the firmware on sys.path over `cap` (see the module doc)."""
    ensure_firmware_on_path()
    from bedside import VERSION
    from bedside import settings as fw_settings
    from bedside.device import TICK_MS, Device
    from bedside.mainloop import MainLoop
    from bedside.ticks import MASK

    wanted = cap.header["settings"] if all_settings else cap.header["changed"]
    wanted = dict(wanted)
    wanted["oxi_format"] = cap.header["oximeter_format"]
    applied = {k: v for k, v in wanted.items() if k in fw_settings.SPEC}
    skipped = sorted(k for k in wanted if k not in fw_settings.SPEC)
    settings = fw_settings.Settings()
    err = settings.set_many(applied, fw_settings.ORG)
    if err:
        raise CaptureError(f"the captured settings are not valid for this firmware: {err}")

    start = int(cap.header.get("clock_start_ms", 0)) & MASK
    ports = {"oximeter": FeedPort(), "nibp": FeedPort()}
    t = 0
    timeline: list[dict[str, Any]] = []
    dev = Device(
        start,
        ports["oximeter"],
        FeedPort(),
        QuietSounder(),
        QuietLeds(),
        store=None,
        nibp_uart=ports["nibp"],
        reset_cause=str(cap.header.get("reset_cause", "power_on")),
        settings=settings,
    )
    send = dev.send

    def _send(mtype: str, fields: dict[str, Any]) -> Any:
        if mtype == "alarm":
            rec: dict[str, Any] = {"t_ms": t}
            for k in ("condition", "priority", "event", "state", "value", "limit"):
                rec[k] = fields.get(k)
            timeline.append(rec)
        return send(mtype, fields)

    dev.send = _send  # every alarm event the device reports to the host
    loop = MainLoop(dev, None)
    records = cap.records
    i = 0
    n = len(records)
    end = cap.end_ms
    ticks = 0
    t0 = time.perf_counter()
    while t <= end:
        while i < n and records[i][0] <= t:
            ports[records[i][1]].push(records[i][2])
            i += 1
        loop.step((start + t) & MASK, 0)
        ticks += 1
        t += TICK_MS
    wall = time.perf_counter() - t0
    return {
        "firmware": str(FIRMWARE_DIR),
        "version": VERSION,
        "settings_applied": applied,
        "settings_skipped": skipped,
        "virtual_ms": end,
        "wall_s": wall,
        "ticks": ticks,
        "faults": dev.faults,
        "timeline": timeline,
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    all_settings = "--all-settings" in args
    paths = [a for a in args if a != "--all-settings"]
    if len(paths) != 1:
        print(
            "usage: python -m bedside_host.sil.replayer CAPTURE [--all-settings]",
            file=sys.stderr,
        )
        return 2
    try:
        out = replay(read_capture(paths[0]), all_settings)
    except CaptureError as e:
        print(str(e), file=sys.stderr)
        return 2
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
