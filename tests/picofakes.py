"""Fake MicroPython modules for importing firmware/board/rp2040.py on CPython: `machine` (Pin,
PWM, UART with any(), WDT, I2C with an optional SSD1306 on it), `micropython` (kbd_intr
recorded), `framebuf` and `select` (poll objects answering ipoll() from the fake console), plus
a tick clock for rp2040's `time`. `install(monkeypatch)` puts them in place and imports a fresh
board.rp2040; every test module that needs the board layer uses it."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

FIRMWARE_LIB = Path(__file__).resolve().parents[1] / "firmware" / "lib"
MASK = (1 << 30) - 1


class Events:
    """What the board did, in order: ("kbd_intr", -1), ("wdt", timeout), ("uart", id), ..."""

    log: list[tuple[str, Any]] = []

    @classmethod
    def add(cls, what: str, arg: Any = None) -> None:
        cls.log.append((what, arg))


class FakePin:
    IN, OUT, PULL_UP, PULL_DOWN = 0, 1, 1, 2
    pins: dict[int, FakePin] = {}

    def __init__(self, ident: int, mode: int = -1, pull: int = -1, value: int | None = None):
        self.ident, self.mode, self.pull = ident, mode, pull
        # an input with a pull-up reads 1 until a test presses the key (drives it low)
        self.level = (1 if pull == FakePin.PULL_UP else 0) if value is None else value
        self.toggles = 0
        FakePin.pins[ident] = self

    def value(self, v: int | None = None) -> int:
        if v is not None:
            self.level = 1 if v else 0
        return self.level

    def toggle(self) -> None:
        self.level ^= 1
        self.toggles += 1


class FakePWM:
    def __init__(self, pin: Any) -> None:
        self.hz = 0
        self.duty = 0

    def freq(self, hz: int) -> None:
        self.hz = hz

    def duty_u16(self, d: int) -> None:
        self.duty = d


class FakeUART:
    """machine.UART with any(); bytes pushed with push(). readinto(buf, n) of more than any()
    says would wait between characters on the rp2 port: it fails the test."""

    uarts: dict[int, FakeUART] = {}

    def __init__(self, ident: int, **kw: Any) -> None:
        self.ident, self.kw = ident, kw
        self.rx = bytearray()
        self.tx = bytearray()
        FakeUART.uarts[ident] = self
        Events.add("uart", ident)

    def push(self, data: bytes) -> None:
        self.rx += data

    def any(self) -> int:
        return len(self.rx)

    def readinto(self, buf: Any, n: int | None = None) -> int:
        n = len(buf) if n is None else n
        assert n <= len(self.rx), "readinto would wait: more asked than any() reported"
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def write(self, data: Any) -> int:
        self.tx += bytes(data)
        return len(data)


class FakeWDT:
    last: FakeWDT | None = None

    def __init__(self, timeout: int = 5000) -> None:
        self.timeout = timeout
        self.feeds = 0
        FakeWDT.last = self
        Events.add("wdt", timeout)

    def feed(self) -> None:
        self.feeds += 1


class FakeI2C:
    """The I2C bus with (or without) an SSD1306 on it; records command bytes and data writes."""

    fail = False  # class-wide: set to simulate a missing panel or a bus error
    instances: list[FakeI2C] = []

    def __init__(self, ident: int = 0, sda: Any = None, scl: Any = None, freq: int = 0) -> None:
        self.ident, self.freq = ident, freq
        self.cmds: list[int] = []
        self.data: list[bytes] = []
        FakeI2C.instances.append(self)

    def writeto(self, addr: int, buf: Any) -> int:
        if FakeI2C.fail:
            raise OSError(5)  # EIO: no ACK
        assert buf[0] == 0x80  # Co=1, D/C#=0: one command byte
        self.cmds.append(buf[1])
        return 1

    def writevto(self, addr: int, bufs: Any) -> int:
        if FakeI2C.fail:
            raise OSError(5)
        assert bytes(bufs[0]) == b"\x40"  # Co=0, D/C#=1: display data
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


class FakePoll:
    """select.poll(): ipoll(0) yields one (obj, event) pair while obj.ready() says so."""

    def __init__(self) -> None:
        self.obj: Any = None
        self.event = 0

    def register(self, obj: Any, event: int) -> None:
        self.obj, self.event = obj, event

    def ipoll(self, timeout: int = -1, flags: int = 0) -> tuple[tuple[Any, int], ...]:
        assert timeout == 0, "the board never waits in poll"
        return ((self.obj, self.event),) if self.obj.ready() else ()


class FakeTime:
    """rp2040's `time`: ticks_ms on the 2**30 period; sleep_ms advances the clock."""

    def __init__(self, start: int = MASK - 5000) -> None:
        self.now = start
        self.slept = 0

    def ticks_ms(self) -> int:
        return self.now

    def ticks_diff(self, a: int, b: int) -> int:
        d = (a - b) & MASK
        return d - (1 << 30) if d >= 1 << 29 else d

    def sleep_ms(self, ms: int) -> None:
        self.slept += ms
        self.now = (self.now + ms) & MASK


def install(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake machine/micropython/framebuf/select, fresh registries, and a fresh board.rp2040."""
    machine = types.ModuleType("machine")
    machine.Pin = FakePin  # type: ignore[attr-defined]
    machine.PWM = FakePWM  # type: ignore[attr-defined]
    machine.UART = FakeUART  # type: ignore[attr-defined]
    machine.WDT = FakeWDT  # type: ignore[attr-defined]
    machine.I2C = FakeI2C  # type: ignore[attr-defined]
    machine.PWRON_RESET, machine.WDT_RESET = 1, 3  # type: ignore[attr-defined]
    machine.reset_cause = lambda: 1  # type: ignore[attr-defined]
    framebuf = types.ModuleType("framebuf")
    framebuf.FrameBuffer = FakeFrameBuffer  # type: ignore[attr-defined]
    framebuf.MONO_VLSB = 0  # type: ignore[attr-defined]
    micropython = types.ModuleType("micropython")
    micropython.const = lambda x: x  # type: ignore[attr-defined]
    micropython.kbd_intr = lambda c: Events.add("kbd_intr", c)  # type: ignore[attr-defined]
    select = types.ModuleType("select")
    select.poll = FakePoll  # type: ignore[attr-defined]
    select.POLLIN, select.POLLOUT = 1, 4  # type: ignore[attr-defined]
    for name, mod in (
        ("machine", machine),
        ("framebuf", framebuf),
        ("micropython", micropython),
        ("select", select),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.syspath_prepend(str(FIRMWARE_LIB))
    for name in ("board.rp2040", "ssd1306"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    FakeI2C.fail = False
    FakeI2C.instances = []
    FakePin.pins = {}
    FakeUART.uarts = {}
    FakeWDT.last = None
    Events.log = []
    import board.rp2040 as mod

    return mod


def uninstall() -> None:
    """Drop the modules imported against the fakes (monkeypatch restores the fakes' slots)."""
    for name in ("board.rp2040", "ssd1306"):
        sys.modules.pop(name, None)
