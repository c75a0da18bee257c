"""Alarm signals MEASURED on the real `bedside sil` against IEC 60601-1-8 Tables 2-4.

Three SIL processes run at once (real time, 10 ms main-loop tick): HIGH via a desaturation
(SPO2_DESAT), MEDIUM via SpO2 low (SPO2_LOW, delay 2 s), LOW via a lost host link
(HOST_LINK_LOST, timeout 3 s). Their annunciator logs (JSON lines with t_ms) are measured:
pulses per burst, t_d, spacing, the HIGH special spacings, interburst, rise (tone on -> full
duty), f0, LED flash frequency and duty. Each event is quantised to a main-loop tick and
scheduled by the OS, so every measured interval may be off by up to JITTER_MS; the ranges are
the tables' ranges, widened by that measurement uncertainty only (the exact figures on a fake
clock are asserted in tests/mp/test_alarm_signals.py). Run with -s to print the figures.

Only the annunciator logs' own timestamps are measured (the tick that made each change). The
power-on self-test's lines (marked "selftest": true, docs/sil.md) are left out: it is not an
alarm signal. The runs last until each log holds what its test measures, judged by the device's
own clock (the uptime in its messages), not a fixed wall-clock time, up to RUN_LIMIT_S.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from mputil import nonin2_packet
from silharness import Sil

pytestmark = pytest.mark.slow

JITTER_MS = 25.0  # per measured interval: two events, each up to one 10 ms tick late + OS
NOMINAL_FULL_DUTY = 16384
RUN_LIMIT_S = 120.0  # a run not done by then fails (about 26 s are needed, LOW's repeat)
GAP_MS = {"high": 1300, "medium": 1000, "low": 1000}  # longer pauses separate bursts
LED = {"high": "red", "medium": "yellow", "low": "cyan"}
FLASH_CYCLES = {"high": 10, "medium": 5, "low": 0}  # complete flash cycles each test needs
COMMON = ("--set", "nibp_interval_min=0")  # no NIBP module attached: no NIBP cycles

Pulse = tuple[float, float, list[tuple[float, int]]]  # start, end, [(t, duty)]


def _pulses(log: list[dict[str, Any]]) -> list[Pulse]:
    out: list[Pulse] = []
    cur: list[Any] | None = None
    for r in log:
        if r["dev"] != "buzzer":
            continue
        if r["on"]:
            if cur is None:
                cur = [r["t_ms"], None, []]
            cur[2].append((r["t_ms"], r["duty"]))
        elif cur is not None:
            out.append((cur[0], r["t_ms"], cur[2]))
            cur = None
    return out


def _bursts(ps: list[Pulse], gap_ms: float) -> list[list[Pulse]]:
    out: list[list[Pulse]] = []
    for p in ps:
        if out and p[0] - out[-1][-1][1] <= gap_ms:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _flash(log: list[dict[str, Any]], color: str) -> list[tuple[float, float]]:
    """(period, on-time) per complete cycle of one LED."""
    out = []
    t_on = t_off = None
    for r in log:
        if r["dev"] != "led" or r["color"] != color:
            continue
        if r["on"]:
            if t_on is not None and t_off is not None:
                out.append((r["t_ms"] - t_on, t_off - t_on))
            t_on, t_off = r["t_ms"], None
        elif t_on is not None:
            t_off = r["t_ms"]
    return out


def _within(v: float, lo: float, hi: float, what: str) -> None:
    assert lo - JITTER_MS <= v <= hi + JITTER_MS, f"{what}: {v:.1f} ms not in {lo}..{hi} ms"


def _signal_log(s: Sil) -> list[dict[str, Any]]:
    """The annunciator log without the power-on self-test's lines."""
    return [r for r in s.annunciator() if not r.get("selftest")]


def _done(name: str, log: list[dict[str, Any]], now_ms: float) -> bool:
    """Two complete bursts (no pulse can join the second any more at device time now_ms) and
    the flash cycles the test measures."""
    gap = GAP_MS[name]
    done = [b for b in _bursts(_pulses(log), gap) if now_ms - b[-1][1] > gap]
    return len(done) >= 2 and len(_flash(log, LED[name])) >= FLASH_CYCLES[name]


@pytest.fixture(scope="module")
def timelines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    runs = {
        "high": Sil(tmp_path_factory.mktemp("high"), *COMMON),
        "medium": Sil(tmp_path_factory.mktemp("medium"), *COMMON, "--set", "spo2_low_delay_s=2"),
        "low": Sil(tmp_path_factory.mktemp("low"), *COMMON, "--set", "host_timeout_s=3"),
    }
    try:
        runs["low"].write("host", b'{"cmd": "ping"}\n')  # host seen once, then silent
        spo2 = {"high": 80, "medium": 88, "low": 97}
        waiting = set(runs)
        limit = time.monotonic() + RUN_LIMIT_S
        while waiting and time.monotonic() < limit:
            for name, s in runs.items():
                s.write("oximeter", nonin2_packet(72, spo2[name]))
                s.host_messages()
            for name in sorted(waiting):
                s = runs[name]
                # device time: the uptime of its latest message (<= the log's clock), then the
                # log read after it, so the log is at least as recent
                uptime = max((m["t_ms"] for m in s.messages), default=0)
                if _done(name, _signal_log(s), uptime):
                    waiting.discard(name)
            time.sleep(1 / 3)
        assert not waiting, f"no complete signal within {RUN_LIMIT_S} s: {sorted(waiting)}"
        out = {}
        for name, s in runs.items():
            s.host_messages()
            out[name] = {
                "log": _signal_log(s),
                "alarms": [m for m in s.messages if m["type"] == "alarm"],
            }
        yield out
    finally:
        for s in runs.values():
            s.kill()


def _report(name: str, figures: dict[str, Any]) -> None:
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def _common_pulse_checks(ps: list[Pulse], td_lo: float, td_hi: float) -> list[float]:
    """t_d range, rise by duty steps to full within 10-20 % of t_d, f0; returns rise times."""
    rises = []
    for start, end, steps in ps:
        td = end - start
        _within(td, td_lo, td_hi, "t_d")
        duties = [d for _t, d in steps]
        assert duties[0] < NOMINAL_FULL_DUTY and max(duties) == NOMINAL_FULL_DUTY
        t_full = next(t for t, d in steps if d == NOMINAL_FULL_DUTY) - start
        _within(t_full, 0.10 * td, 0.20 * td, "rise")
        rises.append(t_full)
    return rises


def test_high_priority_signal_on_sil(timelines: dict[str, Any]) -> None:
    """REQ-SIG-02, REQ-SIG-05, REQ-SIG-06: HIGH measured on the SIL: 10 pulses 3+2 pause 3+2,
    t_d 75-200, x 50-125, 3rd->4th = 8th->9th = 2x + t_d, 5th->6th 350-1300, interburst
    2.5-15 s, rise 10-20 % of t_d, f0 150-1000 Hz; red 1.4-2.8 Hz at 20-60 % duty."""
    tl = timelines["high"]
    assert any(m["condition"] == "SPO2_DESAT" and m["event"] == "raise" for m in tl["alarms"])
    log = tl["log"]
    bs = _bursts(_pulses(log), 1300)
    assert len(bs) >= 2, bs
    figures: dict[str, Any] = {}
    for b in bs[:2]:
        assert len(b) == 10
        sp = [b[k + 1][0] - b[k][1] for k in range(9)]
        for k in (0, 1, 3, 5, 6, 8):
            _within(sp[k], 50, 125, f"x[{k}]")
        x = sum(sp[k] for k in (0, 1, 3, 5, 6, 8)) / 6
        td = sum(p[1] - p[0] for p in b) / 10
        for k in (2, 7):
            _within(sp[k], 2 * x + td, 2 * x + td, f"spacing {k + 1}->{k + 2}")
        _within(sp[4], 350, 1300, "5th->6th")
        rises = _common_pulse_checks(b, 75, 200)
        figures = {"pulses": len(b), "t_d": round(td, 1), "x": round(x, 1),
                   "3->4": round(sp[2], 1), "5->6": round(sp[4], 1), "8->9": round(sp[7], 1),
                   "rise_max": round(max(rises), 1)}
    inter = bs[1][0][0] - bs[0][-1][1]
    _within(inter, 2500, 15000, "interburst")
    hz = {r["hz"] for r in log if r["dev"] == "buzzer" and r["on"]}
    assert all(150 <= h <= 1000 for h in hz)
    cycles = _flash(log, "red")
    assert len(cycles) >= 10
    for per, on in cycles:
        _within(per, 1000 / 2.8, 1000 / 1.4, "red period")
        _within(on, 0.2 * per, 0.6 * per, "red on")
    per = sum(c[0] for c in cycles) / len(cycles)
    duty = sum(c[1] for c in cycles) / sum(c[0] for c in cycles)
    figures.update({"interburst": round(inter, 1), "f0": sorted(hz),
                    "red_hz": round(1000 / per, 3), "red_duty": round(duty, 3)})
    _report("HIGH", figures)


def test_medium_priority_signal_on_sil(timelines: dict[str, Any]) -> None:
    """REQ-SIG-03, REQ-SIG-05, REQ-SIG-06: MEDIUM measured on the SIL: 3 pulses, t_d 125-250,
    y 125-250, interburst 2.5-30 s, rise 10-20 % of t_d; yellow 0.4-0.8 Hz at 20-60 %."""
    tl = timelines["medium"]
    assert any(m["condition"] == "SPO2_LOW" and m["priority"] == "medium" for m in tl["alarms"])
    log = tl["log"]
    bs = _bursts(_pulses(log), 1000)
    assert len(bs) >= 2
    for b in bs[:2]:
        assert len(b) == 3
        for k in range(2):
            _within(b[k + 1][0] - b[k][1], 125, 250, "y")
        rises = _common_pulse_checks(b, 125, 250)
    inter = bs[1][0][0] - bs[0][-1][1]
    _within(inter, 2500, 30000, "interburst")
    cycles = _flash(log, "yellow")
    assert len(cycles) >= 5
    for per, on in cycles:
        _within(per, 1000 / 0.8, 1000 / 0.4, "yellow period")
        _within(on, 0.2 * per, 0.6 * per, "yellow on")
    b = bs[0]
    per = sum(c[0] for c in cycles) / len(cycles)
    _report("MEDIUM", {
        "pulses": len(b), "t_d": round(sum(p[1] - p[0] for p in b) / 3, 1),
        "y": round((b[1][0] - b[0][1] + b[2][0] - b[1][1]) / 2, 1), "rise_max": max(rises),
        "interburst": round(inter, 1), "yellow_hz": round(1000 / per, 3),
        "yellow_duty": round(sum(c[1] for c in cycles) / sum(c[0] for c in cycles), 3)})


def test_low_priority_signal_on_sil(timelines: dict[str, Any]) -> None:
    """REQ-SIG-04, REQ-SIG-05, REQ-SIG-06: LOW measured on the SIL: 1-2 pulses, t_d 125-250,
    y 125-250, repeated after more than 15 s; cyan steady (never off while shown)."""
    tl = timelines["low"]
    assert [m["condition"] for m in tl["alarms"]] == ["HOST_LINK_LOST"]
    log = tl["log"]
    bs = _bursts(_pulses(log), 1000)
    assert len(bs) >= 2
    for b in bs:
        assert 1 <= len(b) <= 2
        if len(b) == 2:
            _within(b[1][0] - b[0][1], 125, 250, "y")
        rises = _common_pulse_checks(b, 125, 250)
    inter = bs[1][0][0] - bs[0][-1][1]
    assert inter > 15000 - JITTER_MS
    cyan = [r["on"] for r in log if r["dev"] == "led" and r["color"] == "cyan"]
    assert True in cyan and cyan[cyan.index(True) :] == [True]  # on once, then never off
    _report("LOW", {"pulses": len(bs[0]), "t_d": round(bs[0][0][1] - bs[0][0][0], 1),
                    "rise_max": max(rises), "interburst": round(inter, 1), "cyan": "steady"})
