"""The Pico board layer's boot and main loop (board/rp2040.py setup, loop_once, run) on CPython,
with fake machine/micropython/framebuf/select modules (tests/picofakes.py) and a fake clock."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from typing import Any

import picofakes
import pytest
from boardfakes import Stdin, Stdout
from fakes import MemStore
from mputil import nonin2_packet
from picofakes import Events, FakePin, FakeTime, FakeUART, FakeWDT


class Pico:
    """The fake board: the rp2040 module, its clock and console."""

    def __init__(self, mod: Any, clock: FakeTime, stdin: Stdin, stdout: Stdout) -> None:
        self.mod, self.clock, self.stdin, self.stdout = mod, clock, stdin, stdout

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.lines]


@pytest.fixture
def pico(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pico]:
    mod = picofakes.install(monkeypatch)
    clock = FakeTime()
    stdin, stdout = Stdin(size=1024), Stdout()
    monkeypatch.setattr(mod, "time", clock)
    monkeypatch.setattr(mod, "FlashStore", MemStore)  # no /state directory on this machine
    # the console: rp2040's own `sys` (pytest swaps the real sys.stdout between test phases)
    monkeypatch.setattr(mod, "sys", types.SimpleNamespace(stdin=stdin, stdout=stdout))
    yield Pico(mod, clock, stdin, stdout)
    picofakes.uninstall()


class StopLoop(Exception):
    pass


def _pins() -> tuple[FakePin, FakePin]:
    from board import pins

    return FakePin.pins[pins.BTN_ACK], FakePin.pins[pins.BACKUP_HEARTBEAT]


def _ticks(p: Pico, b: Any, n: int, oxi: bool = True) -> list[bool]:
    """n passes of the loop, 10 ms apart, the oximeter sending 3 packets a second."""
    from board import pins

    out = []
    for _ in range(n):
        now = p.clock.now
        if oxi and now % 330 < 10:
            FakeUART.uarts[pins.OXI_UART_ID].push(nonin2_packet(72, 97))
        out.append(p.mod.loop_once(b, now))
        p.clock.sleep_ms(10)
    return out


def test_setup_disables_ctrl_c_before_the_loop(
    pico: Pico, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ-CORE-40: setup() switches the keyboard interrupt off (kbd_intr(-1)) before anything
    else, so a Ctrl-C byte (0x03) from the host can stop neither setup nor the loop; run()
    calls setup() and only then loops."""
    mod = pico.mod
    passes: list[Any] = []

    def one_pass(b: Any, now: int) -> bool:
        Events.add("loop", now)
        passes.append(b)
        if len(passes) == 3:
            raise StopLoop
        return True

    monkeypatch.setattr(mod, "loop_once", one_pass)
    with pytest.raises(StopLoop):
        mod.run()
    log = Events.log
    assert log[0] == ("kbd_intr", -1)
    assert [e for e in log if e[0] == "kbd_intr"] == [("kbd_intr", -1)]
    first_loop = log.index(next(e for e in log if e[0] == "loop"))
    assert log.index(("wdt", mod.WDT_TIMEOUT_MS)) < first_loop
    assert [e[0] for e in log].count("uart") == 2  # oximeter and NIBP, before the loop
    b = passes[0]
    assert passes == [b, b, b]  # one Board for ever
    assert b.dev is b.loop.dev and b.wdt is FakeWDT.last
    assert pico.clock.slept > 0  # the loop sleeps out the rest of each 10 ms tick


def test_loop_feeds_watchdog_only_while_healthy(pico: Pico) -> None:
    """REQ-CORE-41: each pass feeds the watchdog and toggles the backup-sounder heartbeat (at
    most every 50 ms) only while dev.healthy() is True: when the alarm stages keep failing,
    neither happens (the backup sounder sounds, the watchdog resets the board)."""
    b = pico.mod.setup()
    wdt = FakeWDT.last
    assert wdt is not None and wdt.feeds == 0
    _ack, beat = _pins()
    assert all(_ticks(pico, b, 100))
    assert wdt.feeds == 100
    assert 18 <= beat.toggles <= 20  # 10 Hz square wave: a toggle every 50 ms
    while b.dev.selftest is not None:  # the power-on self-test drives the outputs itself
        _ticks(pico, b, 1)
    fed = wdt.feeds

    def broken(*a: Any) -> None:
        raise RuntimeError("annunciator broken")

    b.dev.annunciator.step = broken  # the alarm stages fail every tick from now on
    b.dev.annunciator.safe = broken
    health = _ticks(pico, b, 150)
    bad = health.index(False)
    assert all(health[:bad]) and not any(health[bad:])
    assert bad == 99  # healthy() is False once 100 ticks in a row have failed
    assert wdt.feeds == fed + bad
    toggles = beat.toggles
    _ticks(pico, b, 50)
    assert beat.toggles == toggles and wdt.feeds == fed + bad


def test_unhealthy_flag_alone_stops_the_feed(pico: Pico, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQ-CORE-41: the feed follows dev.healthy() pass by pass."""
    b = pico.mod.setup()
    wdt = FakeWDT.last
    assert wdt is not None
    state = {"ok": True}
    monkeypatch.setattr(b.dev, "healthy", lambda: state["ok"])
    _ticks(pico, b, 5)
    assert wdt.feeds == 5
    state["ok"] = False
    assert _ticks(pico, b, 5) == [False] * 5 and wdt.feeds == 5
    state["ok"] = True
    _ticks(pico, b, 5)
    assert wdt.feeds == 10


def test_keys_and_host_through_the_board(pico: Pico) -> None:
    """REQ-CORE-40: the ACK key (active low) reaches the core through the pins, and the host
    link runs over the USB console: a ping is answered and Ctrl-C bytes are only data."""
    b = pico.mod.setup()
    ack, _beat = _pins()
    _ticks(pico, b, 100)
    ack.level = 0  # pressed
    _ticks(pico, b, 20)
    ack.level = 1
    pico.stdin.push(b'\x03\r\n{"cmd": "ping", "id": 7}\n')  # mpremote's Ctrl-C, then a ping
    _ticks(pico, b, 20)
    msgs = pico.messages()
    assert [m["button"] for m in msgs if m["type"] == "button"] == ["ack"]
    replies = [m for m in msgs if m["type"] == "reply"]
    assert [(r["ok"], r["id"]) for r in replies] == [(False, None), (True, 7)]
    assert replies[0]["error"] == "invalid JSON" and replies[1]["cmd"] == "ping"


def test_stuck_decoder_starves_the_watchdog(pico: Pico) -> None:
    """REQ-REL-01: on the board (fakes of machine): a sensor decoder that fails on every byte
    makes no progress; after PROGRESS_MS the loop stops feeding the watchdog; the alarm stages
    still run (the watchdog reset is the way back)."""
    from bedside.device import PROGRESS_MS

    b = pico.mod.setup()
    wdt = FakeWDT.last
    assert wdt is not None
    assert all(_ticks(pico, b, 100))

    def broken(*a: Any) -> int:
        raise RuntimeError("decoder stuck")

    b.dev.decoder.feed = broken
    health = _ticks(pico, b, PROGRESS_MS // 10 + 60)
    bad = health.index(False)
    assert PROGRESS_MS // 10 <= bad <= PROGRESS_MS // 10 + 40  # the first byte, + PROGRESS_MS
    assert not any(health[bad:])
    assert wdt.feeds == 100 + bad
