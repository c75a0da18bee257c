"""Run one firmware build over a capture in virtual time; print its alarm timeline as JSON.

Run as ``python -m bedside_host.sil.replayer CAPTURE [--all-settings]`` with BEDSIDE_FIRMWARE
naming the firmware/ directory of the build (so each build is imported in its own process).
The device is the real core (bedside.device.Device driven by bedside.mainloop.MainLoop, the
loop body the Pico and the SIL run); the clock is virtual, advanced in TICK_MS steps from the
capture's clock_start_ms; the captured bytes are fed to the oximeter, NIBP and host ports at
their captured times and the captured key levels are pressed at theirs (operator actions:
ACK, reset, check, NIBP keys, set / audio_off / nibp commands); the sounder and LEDs are quiet
fakes; what the device writes to the host is read for the timeline; no flash store.
Output (stdout, one JSON object): firmware, version, settings_applied, settings_skipped,
virtual_ms, wall_s, ticks, timeline: rows in time order, each {t_ms, kind, ...}: kind "alarm"
{condition, priority, event, state, value, limit}; "key" / "command" (operator actions) and
"device" (setting changes, AUDIO OFF, refused commands) {text}.
Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bedside_host import FIRMWARE_DIR, ensure_firmware_on_path
from bedside_host.keys import load_key
from bedside_host.sil.capture import (
    Capture,
    CaptureError,
    command_row,
    message_row,
    read_capture,
    split_lines,
)


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


def link_timeline(cap: Capture) -> list[dict[str, Any]]:
    """The timeline recorded in a link capture (``bedside record --raw``): the device's own
    messages (with their ``boot`` and ``uptime_ms``: replayed history arrives late) and the
    host's commands, at the time they crossed the port (no firmware runs)."""
    rows: list[dict[str, Any]] = []
    bufs = {"device": bytearray(), "host": bytearray()}
    seen: set[tuple[Any, Any]] = set()  # (boot, seq): a line replayed on request is not new
    for t, port, data in cap.records:
        for raw in split_lines(bufs[port], data):
            if port == "host":
                row = command_row(t, raw)
            else:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                    continue
                if msg.get("seq") is not None:
                    key = (msg.get("boot"), msg.get("seq"))
                    if key in seen:
                        continue
                    seen.add(key)
                row = message_row(t, msg["type"], msg)
                if row is not None:  # the device's own time: history arrives in a bunch
                    row["boot"], row["uptime_ms"] = msg.get("boot"), msg.get("t_ms")
            if row is not None:
                rows.append(row)
    return rows


def replay(cap: Capture, all_settings: bool = False) -> dict[str, Any]:
    """The alarm timeline of the firmware on sys.path over `cap` (see the module doc)."""
    if cap.source != "sil":
        raise CaptureError(
            "a host-link capture (bedside record --raw) holds no sensor bytes: "
            "no firmware build can run over it (bedside replay FILE prints its timeline)"
        )
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
    ports = {"oximeter": FeedPort(), "nibp": FeedPort(), "host": FeedPort()}
    t = 0
    timeline: list[dict[str, Any]] = []
    dev = Device(
        start,
        ports["oximeter"],
        ports["host"],
        QuietSounder(),
        QuietLeds(),
        store=None,
        nibp_uart=ports["nibp"],
        reset_cause=str(cap.header.get("reset_cause", "power_on")),
        settings=settings,
    )
    # The captured commands are signed for the board that ran (docs/protocol.md): the virtual
    # device takes that board's key when this host has it (bedside_host.keys), as the board had
    # it; without it the replay shows them refused ("not provisioned"), as a new board would.
    board = cap.header.get("device")
    key = load_key(board) if isinstance(board, str) and board else None
    if key is not None:
        dev.auth._use(key)
    send = dev.send

    def _send(mtype: str, fields: dict[str, Any]) -> Any:
        row = message_row(t, mtype, fields)
        if row is not None:
            timeline.append(row)
        return send(mtype, fields)

    dev.send = _send  # every message the device reports to the host
    loop = MainLoop(dev, None)
    records = cap.records
    keys = cap.keys
    i = k = 0
    n = len(records)
    nk = len(keys)
    levels = 0
    host_buf = bytearray()
    end = cap.end_ms
    ticks = 0
    t0 = time.perf_counter()
    while t <= end:
        while i < n and records[i][0] <= t:
            _rt, port, data = records[i]
            ports[port].push(data)
            if port == "host":  # an operator's command: in the timeline where it arrived
                for raw in split_lines(host_buf, data):
                    row = command_row(t, raw)
                    if row is not None:
                        timeline.append(row)
            i += 1
        while k < nk and keys[k][0] <= t:
            levels = keys[k][1]
            if keys[k][2]:
                timeline.append({"t_ms": t, "kind": "key", "text": f"key {keys[k][2]}"})
            k += 1
        loop.step((start + t) & MASK, levels)
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
