# test_alarm_signals.py: the auditory and visual alarm signals measured EXACTLY on the pure
# core (Annunciator, and the whole Device on the bench) with a fake 10 ms clock that crosses
# the 2**30 tick wrap, against IEC 60601-1-8 Tables 2-4 (alarms.md 1.3, 1.4). Runs on CPython
# and MicroPython. tests/test_signals.py measures the same on the real `bedside sil`.
import json

from bedside.alarms.conditions import P_HIGH, P_LOW, P_MEDIUM, P_NONE
from bedside.alarms.patterns import CYAN, DUTY, GREEN, RAMP_STEPS, RED, VISUAL, YELLOW
from bedside.annunciator import Annunciator
from bedside.settings import Settings, defaults
from bedside.ticks import MASK
from fakes import Events, MemStore
from mputil import alloc_per_call, skip
from scenario import Bench

TICK = 10
T0 = (1 << 30) - 3000  # the wrap comes 3 s into every run


class Rec:
    """Sounder + LEDs recording (t_rel_ms, ...) against a relative test clock."""

    def __init__(self):
        self.t = 0
        self.snd = Events()  # (t, hz, duty)
        self.led = Events(last_bool=True, cap=512)  # (t, color, on): the last few minutes

    def tone(self, hz, duty):
        self.snd.append((self.t, hz, duty))

    def off(self):
        self.snd.append((self.t, 0, 0))

    def set(self, color, on):
        self.led.append((self.t, color, on))


def _run(ann, rec, ms, audible, visible, audio_off=False):
    end = rec.t + ms
    while rec.t < end:
        ann.step((T0 + rec.t) & MASK, audible, visible, audio_off)
        rec.t += TICK


def pulses(snd):
    """[(start, end, [duties])] from a sounder log."""
    out = []
    cur = None
    for t, hz, duty in snd:
        if hz:
            if cur is None:
                cur = [t, None, []]
            cur[2].append((t, duty))
        elif cur is not None:
            cur[1] = t
            out.append(cur)
            cur = None
    return out


def bursts(ps, gap_ms):
    """Group pulses into bursts separated by more than gap_ms of silence."""
    out = []
    for p in ps:
        if out and p[0] - out[-1][-1][1] <= gap_ms:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _play(prio, ms):
    rec = Rec()
    ann = Annunciator(rec, rec, Settings())
    _run(ann, rec, ms, prio, prio)
    return rec


def check_high(ps, jitter=0):
    """Table 3/4 HIGH checks on one burst of pulses; jitter = measurement uncertainty (ms)."""
    j = jitter
    assert len(ps) == 10, len(ps)
    for p in ps:
        assert 75 - j <= p[1] - p[0] <= 200 + j  # t_d
    sp = [ps[k + 1][0] - ps[k][1] for k in range(9)]  # end of one to start of next
    x = sp[0]
    assert 50 - j <= x <= 125 + j
    for k in (0, 1, 3, 5, 6, 8):  # x within each group of 3 and of 2
        assert 50 - j <= sp[k] <= 125 + j
    td = ps[2][1] - ps[2][0]
    for k in (2, 7):  # 3rd->4th, 8th->9th = 2x + t_d
        assert abs(sp[k] - (2 * x + td)) <= 2 * j + 1, (sp, x, td)
    assert 350 - j <= sp[4] <= 1300 + j  # 5th->6th: 0.35-1.30 s


def test_high_burst_matches_table_3_and_4():
    """REQ-SIG-02: HIGH = 10 pulses (3+2, pause, 3+2), t_d 75-200 ms, x 50-125 ms, 3rd->4th =
    8th->9th = 2x + t_d, 5th->6th 0.35-1.30 s, interburst 2.5-15 s (exact)"""
    rec = _play(P_HIGH, 20000)
    bs = bursts(pulses(rec.snd), 1300)
    assert len(bs) >= 2
    check_high(bs[0])
    check_high(bs[1])
    inter = bs[1][0][0] - bs[0][-1][1]
    assert 2500 <= inter <= 15000
    assert bs[0][0][0] == 0  # starts at once


def test_medium_burst_matches_table_3_and_4():
    """REQ-SIG-03: MEDIUM = 3 pulses, t_d 125-250 ms, y 125-250 ms, interburst 2.5-30 s (exact)"""
    rec = _play(P_MEDIUM, 16000)
    bs = bursts(pulses(rec.snd), 1000)
    assert len(bs) >= 2
    for b in bs[:2]:
        assert len(b) == 3
        for p in b:
            assert 125 <= p[1] - p[0] <= 250
        for k in range(2):
            assert 125 <= b[k + 1][0] - b[k][1] <= 250
    assert 2500 <= bs[1][0][0] - bs[0][-1][1] <= 30000


def test_low_burst_matches_table_3_and_4():
    """REQ-SIG-04: LOW = 1 or 2 pulses, t_d 125-250 ms, y 125-250 ms, repeated after > 15 s."""
    rec = _play(P_LOW, 45000)
    bs = bursts(pulses(rec.snd), 1000)
    assert len(bs) >= 2
    for b in bs:
        assert 1 <= len(b) <= 2
        for p in b:
            assert 125 <= p[1] - p[0] <= 250
        if len(b) == 2:
            assert 125 <= b[1][0] - b[0][1] <= 250
    assert bs[1][0][0] - bs[0][-1][1] > 15000


def test_rise_by_duty_ramp_and_f0():
    """REQ-SIG-05: every pulse rises by stepping the PWM duty, reaching full level after 10-20 %
    of t_d; it falls before its end (never into the next pulse); f0 150-1000 Hz."""
    for prio in (P_HIGH, P_MEDIUM, P_LOW):
        rec = _play(prio, 4000)
        for p in pulses(rec.snd):
            td = p[1] - p[0]
            duties = [d for _t, d in p[2]]
            assert duties[0] == DUTY[1] and max(duties) == DUTY[RAMP_STEPS]
            k = duties.index(DUTY[RAMP_STEPS])
            assert duties[: k + 1] == sorted(duties[: k + 1])  # rising to full
            assert duties[k:] == sorted(duties[k:], reverse=True)  # then only falling
            t_full = p[2][k][0] - p[0]
            assert td * 10 <= t_full * 100 <= td * 20, (prio, td, t_full)
            assert p[2][-1][1] < DUTY[RAMP_STEPS]  # ramped down before the end
        assert all(150 <= hz <= 1000 for _t, hz, _d in rec.snd if hz)


def _flash(led_log, color):
    """(period ms, on ms) per full on/off cycle of one LED."""
    out = []
    t_on = t_off = None
    for t, c, on in led_log:
        if c != color:
            continue
        if on:
            if t_on is not None and t_off is not None:
                out.append((t - t_on, t_off - t_on))
            t_on = t
            t_off = None
        elif t_on is not None:
            t_off = t
    return out


def test_visual_flash_frequency_and_duty():
    """REQ-SIG-06: HIGH red 1.4-2.8 Hz, MEDIUM yellow 0.4-0.8 Hz, duty 20-60 %; LOW cyan steady."""
    for prio, color, lo_hz, hi_hz in ((P_HIGH, RED, 1.4, 2.8), (P_MEDIUM, YELLOW, 0.4, 0.8)):
        rec = _play(prio, 12000)
        cycles = _flash(rec.led, color)
        assert len(cycles) >= 4
        for per, on in cycles:
            assert 1000 / hi_hz <= per <= 1000 / lo_hz
            assert 20 * per <= on * 100 <= 60 * per
        assert VISUAL[prio][0] == color
    rec = _play(P_LOW, 5000)
    assert [(c, on) for _t, c, on in rec.led] == [(CYAN, True)]


def test_only_highest_priority_pattern_and_led():
    """REQ-SIG-07: with several priorities active the sounder plays only the highest pattern and
    the LEDs show only the highest priority."""
    rec = Rec()
    ann = Annunciator(rec, rec, Settings())
    _run(ann, rec, 8000, P_MEDIUM, P_MEDIUM)
    n_snd, n_led = len(rec.snd), len(rec.led)
    _run(ann, rec, 9000, P_HIGH, P_HIGH)  # HIGH added: only the HIGH pattern from now on
    bs = bursts(pulses(rec.snd[n_snd:]), 1300)
    check_high(bs[0])
    lit = set(c for _t, c, on in rec.led[n_led:] if on)
    assert lit == {RED}
    assert not [1 for _t, c, on in rec.led[n_led:] if c == YELLOW and on]


def test_short_condition_completes_half_high_and_full_medium_burst():
    """REQ-SIG-08: a condition shorter than a burst still completes half a HIGH burst (5 pulses)
    or one full MEDIUM burst (3 pulses); an ACK stops it at once."""
    for prio, n in ((P_HIGH, 5), (P_MEDIUM, 3)):
        rec = Rec()
        ann = Annunciator(rec, rec, Settings())
        _run(ann, rec, 100, prio, prio)  # 100 ms condition
        _run(ann, rec, 10000, P_NONE, P_NONE)
        assert len(pulses(rec.snd)) == n, prio
    rec = Rec()
    ann = Annunciator(rec, rec, Settings())
    _run(ann, rec, 100, P_HIGH, P_HIGH)
    ann.silence()
    _run(ann, rec, 5000, P_NONE, P_HIGH)
    assert len(pulses(rec.snd)) == 1 and rec.snd[-1][1] == 0


def test_short_desat_on_the_device_completes_half_a_high_burst():
    """REQ-SIG-08: on the device timeline: a 1-packet desaturation (non-latching) -> 5 pulses."""
    store = MemStore({"settings.json": json.dumps(dict(defaults(), latch_high=0)).encode()})
    b = Bench(store=store)
    b.run(3000, 72, 97)
    b.run(330, 72, 80)  # one packet below the desat limit
    b.run(8000, 72, 97)
    assert [m["event"] for m in b.alarms("SPO2_DESAT")] == ["raise", "end"]
    log = b.sounder.log
    starts = [e for k, e in enumerate(log) if e[1] and (k == 0 or not log[k - 1][1])]
    assert len(starts) == 5


def test_audio_off_reminder_and_green_flash():
    """REQ-ALM-18: AUDIO OFF: no alarm sound, one pulse on entry and then one reminder pulse
    every audio_off_reminder_min, green flashing; visual alarm signals unaffected."""
    s = Settings()
    s.set("audio_off_reminder_min", 1, 1)
    rec = Rec()
    ann = Annunciator(rec, rec, s)
    _run(ann, rec, 130000, P_NONE, P_HIGH, audio_off=True)
    ps = pulses(rec.snd)
    assert [p[0] for p in ps] == [0, 60000, 120000]
    assert all(125 <= p[1] - p[0] <= 250 for p in ps)
    assert len(_flash(rec.led, GREEN)) >= 10 and len(_flash(rec.led, RED)) >= 10


def test_annunciator_step_allocates_nothing():
    """REQ-ALM-23: the per-tick signal step allocates nothing (MicroPython heap measured)"""
    rec = Rec()
    ann = Annunciator(rec, rec, Settings())
    rec.snd = None  # no recording: the sinks would allocate
    state = [0]

    class Null:
        def tone(self, hz, duty):
            pass

        def off(self):
            pass

        def set(self, c, on):
            pass

    ann.sounder = ann.leds = Null()

    def one():
        state[0] = (state[0] + TICK) & MASK
        ann.step(state[0], P_HIGH, P_HIGH)

    a = alloc_per_call(one, 500)
    if a is None:
        skip("heap allocation is measured on MicroPython only")
    assert a == 0, a


def test_playing_names_the_pattern_not_the_pin():
    """REQ-HOST-37: Annunciator.playing() gives the auditory pattern and visual priority in
    force, through the silent parts of a burst, and AUDIO OFF; it follows the priorities."""
    rec = Rec()
    ann = Annunciator(rec, rec, Settings())
    _run(ann, rec, 50, P_NONE, P_NONE)
    assert ann.playing() == (P_NONE, P_NONE, False)
    _run(ann, rec, 800, P_HIGH, P_HIGH)  # between pulses 3 and 4 of the first burst
    assert not ann.tone_on
    assert ann.playing() == (P_HIGH, P_HIGH, False)
    _run(ann, rec, 6000, P_MEDIUM, P_MEDIUM)
    assert ann.playing() == (P_MEDIUM, P_MEDIUM, False)
    _run(ann, rec, 100, P_NONE, P_MEDIUM)  # acknowledged: no sound, still shown
    assert ann.playing() == (P_NONE, P_MEDIUM, False)
    _run(ann, rec, 100, P_NONE, P_LOW, True)
    assert ann.playing() == (P_NONE, P_LOW, True)
