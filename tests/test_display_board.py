"""The Pico board's OLED (board/rp2040.py Screen) on CPython, with fake machine/framebuf modules
and the vendored ssd1306 driver over a fake I2C bus.

REQ-HW-09 display failure never stops alarms: a missing panel, a missing driver or I2C errors
(OSError) are caught, retried every SCREEN_RETRY_MS, and the alarms keep sounding.
REQ-HW-10 the board redraws only changed lines, sends one page per loop pass, at most 4 a second.
REQ-CORE-47 opening the panel is bounded like every other step; REQ-CORE-48 errors are reported.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import picofakes
import pytest
from bedside.mainloop import MainLoop
from picofakes import FakeI2C
from scenario import Bench


@pytest.fixture
def rp2040(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield picofakes.install(monkeypatch)
    picofakes.uninstall()


def _bench() -> Bench:
    return Bench(on_message=lambda m: None)


class Steps:
    """I2C traffic per Screen.update() call: (commands, data writes, largest data write)."""

    def __init__(self) -> None:
        self.per_update: list[tuple[int, int, int]] = []

    def update(self, screen: Any, dev: Any, now: int) -> None:
        c0 = sum(len(i.cmds) for i in FakeI2C.instances)
        d0 = [len(i.data) for i in FakeI2C.instances]
        screen.update(dev, now)
        c1 = sum(len(i.cmds) for i in FakeI2C.instances)
        new = [d for i, n in zip(FakeI2C.instances, [*d0, 0, 0, 0]) for d in i.data[n:]]
        self.per_update.append((c1 - c0, len(new), max((len(d) for d in new), default=0)))


def _loop(
    b: Bench,
    screen: Any,
    ms: int,
    hr: int | None = None,
    spo2: int | None = None,
    steps: Steps | None = None,
) -> None:
    """The board's main loop: poll the core, then the screen, every 10 ms tick."""
    for _ in range(ms // 10):
        if spo2 is not None and b.t % 333 < 10:
            from mputil import nonin2_packet

            b.oxi.push(nonin2_packet(hr, spo2))
        b.clock.advance(10)
        b.t += 10
        b.dev.poll(b.clock.now)
        if steps is not None:
            steps.update(screen, b.dev, b.clock.now)
        else:
            screen.update(b.dev, b.clock.now)


def _driver_init() -> tuple[list[int], list[bytes]]:
    """What the vendored driver (firmware/lib/ssd1306.py) sends in its one-shot init: its
    init_display() run on a recording bus (commands, then show(): address + the 1 KB frame)."""
    import ssd1306

    bus = FakeI2C(9)
    ssd1306.SSD1306_I2C(128, 64, bus, addr=0x3C)
    FakeI2C.instances.remove(bus)
    return bus.cmds, bus.data


def test_screen_draws_changed_pages_one_per_pass(rp2040: Any) -> None:
    """REQ-HW-10: the panel is set up over I2C; then only changed pages, one per loop pass."""
    b = _bench()
    screen = rp2040.Screen(b.clock.now)
    _loop(b, screen, 1000, 72, 97)
    assert screen.oled is not None and screen.errors == 0
    bus = FakeI2C.instances[-1]
    assert bus.ident == 1 and bus.freq == 400000  # pins.I2C_ID, pins.I2C_FREQ
    assert bytes(b"".join(bus.data[:8])) == bytes(1024)  # the blank frame, page by page
    pages = [len(d) for d in bus.data]
    assert len(pages) > 8 and all(n == 128 for n in pages)  # one 128-byte page at a time
    n = len(bus.data)
    _loop(b, screen, 2000, 72, 97)
    assert len(bus.data) == n  # steady vitals: nothing redrawn
    _loop(b, screen, 11000, 72, 86)  # SPO2_LOW: the tall alarm lines are drawn
    assert "SpO2 LOW" in screen.view.lines and len(bus.data) > n
    buf = screen.oled.buffer
    assert any(buf[0:128]) and any(buf[128:256])  # header: double height, pages 0 and 1


def test_opening_the_panel_is_bounded_like_every_step(rp2040: Any) -> None:
    """REQ-CORE-47: no single update() sends more than one 128-byte page or more than
    INIT_CMDS_PER_STEP commands, opening included; the panel still gets the complete init
    sequence of the vendored driver, then the blank frame page by page."""
    b = _bench()
    screen = rp2040.Screen(b.clock.now)
    steps = Steps()
    _loop(b, screen, 3000, 72, 97, steps=steps)
    _loop(b, screen, 12000, 72, 86, steps=steps)  # alarm lines, flashing inverse
    assert screen.errors == 0
    assert max(c for c, _d, _m in steps.per_update) <= rp2040.INIT_CMDS_PER_STEP
    assert max(d for _c, d, _m in steps.per_update) == 1
    assert {m for _c, d, m in steps.per_update if d} == {128}
    cmds, data = _driver_init()
    show = [0x21, 0, 127, 0x22, 0, 7]  # the driver's show(): whole-panel address window
    assert cmds[-6:] == show and data == [bytes(1024)]
    init = cmds[:-6]  # 25 commands: display off ... charge pump, display on
    assert len(init) == 25 and init[0] == 0xAE and init[-1] == 0xAF
    bus = FakeI2C.instances[-1]
    assert bus.cmds[: len(init)] == init
    sent = bus.cmds[len(init) :]
    for p in range(8):  # then the blank frame: each page addressed, then its 128 bytes
        assert sent[6 * p : 6 * p + 6] == [0x21, 0, 127, 0x22, p, p]
    assert b"".join(bus.data[:8]) == data[0]
    opening = steps.per_update[: steps.per_update.index((6, 1, 128)) + 8]
    assert sum(c for c, _d, _m in opening) == len(init) + 8 * 6


def test_display_errors_reach_the_heartbeat(rp2040: Any) -> None:
    """REQ-CORE-48: display errors are counted (Screen.errors); MainLoop copies them into
    dev.display_errors, which the heartbeat reports; the alarms go on."""
    msgs: list[dict[str, Any]] = []
    b = Bench(on_message=msgs.append)
    screen = rp2040.Screen(b.clock.now)
    loop = MainLoop(b.dev, screen)

    def run(ms: int) -> None:
        for _ in range(ms // 10):
            b.clock.advance(10)
            b.t += 10
            loop.step(b.clock.now, 0)
        for line in b.host.take_lines():
            msgs.append(json.loads(line))

    run(1000)
    assert screen.oled is not None and screen.errors == 0
    FakeI2C.fail = True  # the panel's cable comes loose
    run(12000)
    assert screen.oled is None and screen.errors >= 2  # lost, then retried every 5 s
    assert b.dev.display_errors == screen.errors
    beats = [m for m in msgs if m["type"] == "heartbeat"]
    assert beats[-1]["display_errors"] == screen.errors
    assert b.dev.alarms.top() >= 0  # no data from the oximeter: its alarm is up regardless
    FakeI2C.fail = False
    run(rp2040.SCREEN_RETRY_MS + 2000)
    assert screen.oled is not None and b.dev.display_errors == screen.errors


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
