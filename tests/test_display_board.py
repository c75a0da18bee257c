"""The Pico board's OLED (board/rp2040.py Screen) on CPython, with fake machine/framebuf modules
and the vendored ssd1306 driver over a fake I2C bus.

REQ-HW-09 display failure never stops alarms: a missing panel, a missing driver or I2C errors
(OSError) are caught, retried every SCREEN_RETRY_MS, and the alarms keep sounding.
REQ-HW-10 the board redraws only changed lines, sends one page per loop pass, at most 4 a second.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from scenario import Bench


class FakeI2C:
    """The I2C bus with (or without) an SSD1306 on it; records data writes per page."""

    fail = False  # class-wide: set to simulate a missing panel or a bus error
    instances: list[FakeI2C] = []

    def __init__(self, ident: int, sda: Any = None, scl: Any = None, freq: int = 0) -> None:
        self.ident, self.freq = ident, freq
        self.cmds: list[int] = []
        self.data: list[bytes] = []
        FakeI2C.instances.append(self)

    def writeto(self, addr: int, buf: Any) -> int:
        if FakeI2C.fail:
            raise OSError(5)  # EIO: no ACK
        self.cmds.append(buf[1])
        return 1

    def writevto(self, addr: int, bufs: Any) -> int:
        if FakeI2C.fail:
            raise OSError(5)
        self.data.append(bytes(bufs[1]))
        return 1


class FakeFrameBuffer:
    """MONO_VLSB only; text() marks each non-space character as a solid 6x7 block."""

    def __init__(self, buf: Any, w: int, h: int, fmt: int) -> None:
        self.buf, self.w, self.h = buf, w, h

    def fill(self, c: int) -> None:
        for i in range(len(self.buf)):
            self.buf[i] = 0xFF if c else 0

    def text(self, s: str, x: int, y: int, c: int = 1) -> None:
        assert y == 0 and x == 0
        for k, ch in enumerate(s):
            if ch != " ":
                for col in range(6):
                    self.buf[k * 8 + col] = 0x7F


class _Dummy:
    OUT = IN = PULL_UP = PULL_DOWN = 0

    def __init__(self, *a: Any, **k: Any) -> None:
        pass


@pytest.fixture
def rp2040(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    machine = types.ModuleType("machine")
    for name in ("Pin", "PWM", "UART", "WDT"):
        setattr(machine, name, _Dummy)
    machine.I2C = FakeI2C  # type: ignore[attr-defined]
    framebuf = types.ModuleType("framebuf")
    framebuf.FrameBuffer = FakeFrameBuffer  # type: ignore[attr-defined]
    framebuf.MONO_VLSB = 0  # type: ignore[attr-defined]
    micropython = types.ModuleType("micropython")
    micropython.const = lambda x: x  # type: ignore[attr-defined]
    for name, mod in (("machine", machine), ("framebuf", framebuf), ("micropython", micropython)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1]
                                    / "firmware" / "lib"))
    for name in ("board.rp2040", "ssd1306"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    FakeI2C.fail = False
    FakeI2C.instances = []
    import board.rp2040 as mod

    yield mod
    for name in ("board.rp2040", "ssd1306"):
        sys.modules.pop(name, None)


def _bench() -> Bench:
    return Bench(on_message=lambda m: None)


def _loop(b: Bench, screen: Any, ms: int, hr: int | None = None, spo2: int | None = None) -> None:
    """The board's main loop: poll the core, then the screen, every 10 ms tick."""
    for _ in range(ms // 10):
        if spo2 is not None and b.t % 333 < 10:
            from mputil import nonin2_packet

            b.oxi.push(nonin2_packet(hr, spo2))
        b.clock.advance(10)
        b.t += 10
        b.dev.poll(b.clock.now)
        screen.update(b.dev, b.clock.now)


def test_screen_draws_changed_pages_one_per_pass(rp2040: Any) -> None:
    """REQ-HW-10: the panel is set up over I2C; then only changed pages, one per loop pass."""
    b = _bench()
    screen = rp2040.Screen(b.clock.now)
    _loop(b, screen, 1000, 72, 97)
    assert screen.oled is not None and screen.errors == 0
    bus = FakeI2C.instances[-1]
    assert bus.ident == 1 and bus.freq == 400000  # pins.I2C_ID, pins.I2C_FREQ
    assert len(bus.data[0]) == 1024  # the driver's init clears the whole panel once
    pages = [len(d) for d in bus.data[1:]]
    assert pages and all(n == 128 for n in pages)  # afterwards one 128-byte page at a time
    n = len(bus.data)
    _loop(b, screen, 2000, 72, 97)
    assert len(bus.data) == n  # steady vitals: nothing redrawn
    _loop(b, screen, 11000, 72, 86)  # SPO2_LOW: the tall alarm lines are drawn
    assert "SpO2 LOW" in screen.view.lines and len(bus.data) > n
    buf = screen.oled.buffer
    assert any(buf[0:128]) and any(buf[128:256])  # header: double height, pages 0 and 1


def test_missing_display_never_stops_alarms(rp2040: Any) -> None:
    """REQ-HW-09: no panel on the bus (OSError): no exception; alarms sound; retried later."""
    FakeI2C.fail = True
    b = _bench()
    screen = rp2040.Screen(b.clock.now)
    _loop(b, screen, 3000, 72, 97)
    _loop(b, screen, 12000, 72, 86)
    assert screen.oled is None and screen.errors >= 2  # tried at start and every 5 s
    tries = screen.errors
    assert b.dev.alarms.top() >= 0 and any(hz for _t, hz, _d in b.sounder.log)
    FakeI2C.fail = False  # the panel is plugged back in
    _loop(b, screen, rp2040.SCREEN_RETRY_MS + 1000, 72, 86)
    assert screen.oled is not None and screen.errors == tries
    assert screen.view.lines[2] == "SpO2 LOW"


def test_i2c_error_while_drawing_is_retried(rp2040: Any) -> None:
    """REQ-HW-09: an I2C error mid-frame drops the panel; the loop goes on; it comes back."""
    b = _bench()
    screen = rp2040.Screen(b.clock.now)
    _loop(b, screen, 1000, 72, 97)
    assert screen.oled is not None
    FakeI2C.fail = True
    _loop(b, screen, 12000, 72, 86)  # SPO2_LOW while the bus fails
    assert screen.oled is None and screen.errors >= 1
    assert any(hz for _t, hz, _d in b.sounder.log)
    FakeI2C.fail = False
    _loop(b, screen, rp2040.SCREEN_RETRY_MS + 1000, 72, 86)
    assert screen.oled is not None and screen.view.lines[2] == "SpO2 LOW"


def test_missing_driver_never_stops_alarms(rp2040: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQ-HW-09: ssd1306.py not flashed (ImportError): no display, the alarms go on."""
    monkeypatch.setitem(sys.modules, "ssd1306", None)  # import fails
    b = _bench()
    screen = rp2040.Screen(b.clock.now)
    _loop(b, screen, 3000, 72, 97)
    _loop(b, screen, 12000, 72, 86)
    assert screen.oled is None and screen.errors >= 1
    assert any(hz for _t, hz, _d in b.sounder.log)
