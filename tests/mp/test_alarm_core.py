# test_alarm_core.py: the alarm engine, rules, integrated deficit, latching, inactivation,
# NIBP hold, AUDIO OFF and the device's flash alarm log on the pure core (CPython and
# MicroPython); the log itself: test_alarmlog.py.
# Clocks start just below the 2**30 ms tick wrap.
import json

from bedside.alarms import conditions as c
from bedside.alarms import fsm, rules
from bedside.alarms.conditions import CONDITIONS, IDS, P_HIGH, P_LOW, P_MEDIUM, P_NONE
from bedside.alarms.deficit import REF_ABOVE_LIMIT, REF_LIMIT, IntegratedDeficit
from bedside.alarms.engine import AlarmEngine, NibpHold
from bedside.observations import Observations
from bedside.readings import F_SENSOR_OFF, NONE, NibpReading, OxiReading
from bedside.settings import OPERATOR, ORG, SPEC, Settings
from bedside.ticks import MASK, ticks_add
from mputil import alloc_per_call, skip

T0 = (1 << 30) - 30000


def _obs(now):
    """What rules.oximeter looks at (bedside.observations), settable by the test."""
    return Observations(now, OxiReading(), NibpReading())


class Rig:
    """Engine + rules + a relative clock (t ms since T0); events recorded by name."""

    def __init__(self, **overrides):
        self.s = Settings()
        for k in overrides:
            assert self.s.set(k, overrides[k], ORG) is None, k
        self.t = 0
        self.events = []
        self.eng = AlarmEngine(self.s, self._ev)
        self.obs = _obs(self.now())

    def now(self):
        return (T0 + self.t) & MASK

    def _ev(self, i, event, now):
        e = self.eng
        self.events.append((self.t, IDS[i], fsm.EVENT_NAMES[event], fsm.STATE_NAMES[e.state[i]],
                            e.prio[i]))

    def run(self, ms, spo2=None, pr=72, flags=0, step=100):
        end = self.t + ms
        while self.t < end:
            self.t += step
            now = self.now()
            if spo2 is not None:
                r = self.obs.oxi
                r.spo2 = spo2
                r.pr = pr
                r.flags = flags
                self.obs.oxi_frame(flags, now)
                self.obs.oxi_values(spo2, pr, flags, now)
            rules.oximeter(self.eng, self.s, self.obs, now)
            self.eng.step(now)

    def state(self, cid):
        return fsm.STATE_NAMES[self.eng.state[c.index(cid)]]

    def prio(self, cid):
        return self.eng.prio[c.index(cid)]

    def ev(self, cid):
        return [(t, e, s) for t, i, e, s, _p in self.events if i == cid]


def test_condition_table_consistent():
    """REQ-ALM-07: the one condition table: every id in index order, priorities, kinds and
    latching."""
    assert len(IDS) == c.COUNT == 27
    for name in IDS:
        assert getattr(c, name) == c.index(name)
    assert CONDITIONS[c.SPO2_DESAT][2] == P_HIGH and CONDITIONS[c.SPO2_LOW][2] == P_MEDIUM
    assert CONDITIONS[c.SPO2_LOW][5] == ("spo2_escalate_s", P_HIGH)
    for cond in CONDITIONS:
        assert cond[2] in (P_LOW, P_MEDIUM, P_HIGH)
        if cond[1] == c.PHYSIOLOGICAL:
            assert cond[3] == c.L_SETTING  # latching is the organisation's choice
        else:
            assert cond[3] == c.L_NO
        if isinstance(cond[4], str):
            assert cond[4] in SPEC
        if cond[5]:
            assert cond[5][0] in SPEC


def test_desat_high_without_delay():
    """REQ-ALM-08: SpO2 below the desat limit raises SPO2_DESAT, HIGH, with no delay."""
    r = Rig()
    r.run(2000, 97)
    r.run(100, 84)
    assert r.ev("SPO2_DESAT") == [(2100, "raise", "active")]
    assert r.prio("SPO2_DESAT") == P_HIGH
    assert r.eng.audible_priority() == P_HIGH


def test_spo2_low_fixed_delay_and_escalation_breaks_pause():
    """REQ-ALM-09: SPO2_LOW after spo2_low_delay_s, escalates to HIGH after spo2_escalate_s, and
    the escalation breaks through an audio pause."""
    r = Rig(spo2_low_delay_s=5, spo2_escalate_s=30)
    r.run(1000, 97)
    r.run(4900, 88)
    assert r.state("SPO2_LOW") == "inactive"
    r.run(200, 88)
    assert r.state("SPO2_LOW") == "active" and r.prio("SPO2_LOW") == P_MEDIUM
    r.eng.ack(r.now())
    assert r.state("SPO2_LOW") == "audio_paused" and r.eng.audible_priority() == P_NONE
    r.run(30000, 88)
    assert r.prio("SPO2_LOW") == P_HIGH and r.state("SPO2_LOW") == "active"
    assert r.eng.audible_priority() == P_HIGH
    assert r.ev("SPO2_LOW")[-1][1] == "escalate"


def test_hysteresis_no_chatter_on_the_limit():
    """REQ-ALM-10: a value on/near a limit does not chatter: an existing condition ends only
    once the value is the hysteresis past the limit (SpO2 1 %-point, pulse 2 /min)"""
    r = Rig(spo2_low_delay_s=0, pr_delay_s=0, latch_medium=0)
    r.run(1000, 97)
    for _ in range(10):  # 89, 90, 89, 90 ...: one alarm, not ten
        r.run(300, 89)
        r.run(300, 90)
    assert [e for _t, e, _s in r.ev("SPO2_LOW")] == ["raise"]
    r.run(300, 91)
    assert [e for _t, e, _s in r.ev("SPO2_LOW")] == ["raise", "end"]
    r.run(300, 97, pr=131)
    for _ in range(5):
        r.run(300, 97, pr=129)
        r.run(300, 97, pr=131)
    assert [e for _t, e, _s in r.ev("PR_HIGH")] == ["raise"]
    r.run(300, 97, pr=128)
    assert [e for _t, e, _s in r.ev("PR_HIGH")] == ["raise", "end"]


def test_latching_high_default_reset_and_settings():
    """REQ-ALM-11: HIGH physiological alarms latch by default: the visual signal stays after the
    condition ends until reset; reset leaves a still-active condition; latch_high=0 turns it off
    and latch_medium=1 latches MEDIUM physiological alarms (organisation settings)"""
    r = Rig()
    r.run(1000, 97)
    r.run(500, 80)
    r.run(1000, 97)
    assert r.state("SPO2_DESAT") == "latched" and r.eng.visible_priority() == P_HIGH
    assert r.eng.audible_priority() == P_HIGH  # latched keeps sounding until ack/reset
    r.eng.ack(r.now())
    assert r.state("SPO2_DESAT") == "latched_acknowledged"
    assert r.eng.visible_priority() == P_HIGH and r.eng.audible_priority() == P_NONE
    r.eng.reset(r.now())
    assert r.state("SPO2_DESAT") == "inactive"
    r.run(500, 80)
    r.eng.reset(r.now())
    assert r.state("SPO2_DESAT") == "active"  # still exists: reset does not clear it
    r2 = Rig(latch_high=0)
    r2.run(500, 80)
    r2.run(500, 97)
    assert r2.state("SPO2_DESAT") == "inactive"
    r3 = Rig(latch_medium=1, spo2_low_delay_s=0)
    r3.run(500, 88)
    r3.run(500, 97)
    assert r3.state("SPO2_LOW") == "latched"
    r4 = Rig(spo2_low_delay_s=0)  # default: MEDIUM does not latch
    r4.run(500, 88)
    r4.run(500, 97)
    assert r4.state("SPO2_LOW") == "inactive"


def test_audio_pause_length_and_expiry():
    """REQ-ALM-12: ACK pauses audio for audio_pause_s, then the still-active alarm sounds again;
    a condition that starts during the pause sounds at once; visual stays throughout.
    REQ-SYS-03: the clock crosses the 2**30 tick wrap during the pause and PR_LOW's delay."""
    r = Rig(audio_pause_s=30, spo2_low_delay_s=0)
    r.run(500, 88)
    assert r.eng.ack(r.now()) == 1
    r.run(29000, 88)
    assert r.eng.audible_priority() == P_NONE and r.eng.visible_priority() == P_MEDIUM
    assert r.eng.paused_remaining_ms(r.now()) > 0
    r.run(1000, 88, pr=45)  # PR_LOW starts during the pause (after its 10 s delay: later)
    r.run(1000, 88, pr=45)
    assert r.state("SPO2_LOW") == "active"  # pause over
    assert r.ev("SPO2_LOW")[-1][1] == "pause_end"
    r.eng.ack(r.now())
    r.run(10000, 88, pr=45)
    assert r.state("PR_LOW") == "active" and r.eng.audible_priority() == P_MEDIUM


def test_integrated_deficit_worked_examples():
    """REQ-ALM-13: integral mode: index in %-points x s counted from the reference point
    (setting); GE example (ref limit+1): 92, 89, 87, 87, 80 -> 0, 2, 6, 10, 21, alarm at 20
    after 4 s; N-395 example (ref = limit): 88 % for 2 s -> 4."""
    d = IntegratedDeficit()
    t = T0
    got = []
    alarm = []
    for v in (92, 89, 87, 87, 80):
        alarm.append(d.update(v, 90, REF_ABOVE_LIMIT, 20, t))
        got.append(d.index_ms // 1000)
        t = ticks_add(t, 1000)
    assert got == [0, 2, 6, 10, 20]  # 21 capped at the threshold (20)
    assert alarm == [False, False, False, False, True]
    d = IntegratedDeficit()
    d.update(88, 90, REF_LIMIT, 10, T0)
    d.update(88, 90, REF_LIMIT, 10, ticks_add(T0, 1000))
    d.update(88, 90, REF_LIMIT, 10, ticks_add(T0, 2000))
    assert d.index_ms == 4000 and d.deficit(90, 90, REF_LIMIT) == 0
    assert d.deficit(90, 90, REF_ABOVE_LIMIT) == 1


def test_integrated_deficit_on_the_rules_and_decrement():
    """REQ-ALM-14: SPO2_LOW in integral mode: no fixed delay; deep dips alarm sooner than
    shallow ones; back within limits the index decrements the same way it grew."""
    r = Rig(spo2_delay_mode="integral", spo2_integral_limit=25)
    r.run(1000, 97)
    r.run(4900, 85)  # 5 points: 25 %*s after 5 s
    assert r.state("SPO2_LOW") == "inactive"
    r.run(200, 85)
    assert r.state("SPO2_LOW") == "active"
    assert r.eng.no_delay[c.SPO2_LOW] == 1
    r.run(1000, 92)  # back within limits: ends; index 25 -> 23 (2 points x 1 s)
    assert r.state("SPO2_LOW") == "inactive"
    assert 22000 <= r.eng.deficit.index_ms <= 23000
    r.run(1000, 88)  # 2 points: 23 + 2 -> 25 again within ~1 s (not 12.5 s from zero)
    assert r.state("SPO2_LOW") == "active"
    r2 = Rig(spo2_delay_mode="integral", spo2_integral_limit=25)
    r2.run(1000, 97)
    r2.run(12000, 88)  # 2 points: 25 after 12.5 s
    assert r2.state("SPO2_LOW") == "inactive"
    r2.run(600, 88)
    assert r2.state("SPO2_LOW") == "active"


def test_integrated_deficit_three_violations_in_60s():
    """REQ-ALM-15: integral mode safety net: 3 separate violations within 60 s alarm even with
    the index short of the threshold."""
    r = Rig(spo2_delay_mode="integral", spo2_integral_limit=100)
    r.run(1000, 97)
    for _ in range(2):
        r.run(1000, 89)
        r.run(10000, 95)
    assert r.state("SPO2_LOW") == "inactive"
    r.run(200, 89)
    assert r.state("SPO2_LOW") == "active"
    r.run(1000, 95)
    assert r.state("SPO2_LOW") == "inactive"
    r2 = Rig(spo2_delay_mode="integral", spo2_integral_limit=100)
    for _ in range(3):  # 3 violations 40 s apart: not within 60 s
        r2.run(40000, 95)
        r2.run(500, 89)
    assert r2.ev("SPO2_LOW") == []


def test_nibp_hold():
    """REQ-ALM-16: while the cuff inflates (spo2_hold_nibp on) no new SpO2/pulse alarm starts,
    existing ones stay, sensor-off is never held; the hold ends at spo2_hold_max_s."""
    h = NibpHold()
    assert h.update(1, True, 20, T0) is True
    assert h.update(1, True, 20, ticks_add(T0, 19900)) is True
    assert h.update(1, True, 20, ticks_add(T0, 20000)) is False  # capped
    assert h.update(1, True, 20, ticks_add(T0, 30000)) is False
    assert h.update(1, False, 20, ticks_add(T0, 31000)) is False
    assert h.update(1, True, 20, ticks_add(T0, 32000)) is True  # next cycle
    assert h.update(0, True, 20, ticks_add(T0, 33000)) is False  # setting off
    r = Rig(spo2_low_delay_s=0)
    r.run(1000, 97)
    r.obs.spo2_held = True
    r.run(5000, 88)
    assert r.state("SPO2_LOW") == "inactive"  # held: no new SPO2_LOW
    r.run(600, NONE, flags=F_SENSOR_OFF)
    assert r.state("OXI_SENSOR_OFF") == "active"  # never held
    r.obs.spo2_held = False
    r.run(600, 88)
    assert r.state("SPO2_LOW") == "active"
    r.obs.spo2_held = True
    r.run(3000, 97)
    assert r.state("SPO2_LOW") == "active"  # an existing one is kept


def test_nibp_hold_never_holds_desat():
    """REQ-ALM-24: the NIBP-inflation hold never holds SPO2_DESAT (HIGH, no delay)."""
    r = Rig(spo2_low_delay_s=0)
    r.run(1000, 97)
    r.obs.spo2_held = True
    r.run(500, 80)
    assert r.state("SPO2_DESAT") == "active"
    assert r.state("SPO2_LOW") == "inactive"


class _Drv:
    """Stands in for the SunTech driver: busy while the test says so."""

    busy = False
    condition = None
    error = 0
    cuff_mmhg = NONE
    state = 0

    def feed(self, mv, n, now):
        return 0

    def step(self, now):
        return 0

    def start(self, now):
        return False


def test_settings_ranges_and_access():
    """REQ-ALM-17: limits, delays, escalation, latching and pause length are settings with
    enforced ranges; latching, pause length, delay mode and AUDIO OFF are organisation-only."""
    s = Settings()
    d = {n: SPEC[n][0] for n in SPEC}
    assert (d["spo2_low"], d["spo2_desat"], d["pr_low"], d["pr_high"]) == (90, 85, 50, 130)
    assert (d["sys_high"], d["sys_low"], d["dia_high"], d["map_low"]) == (180, 90, 110, 65)
    assert d["bp_rise_pct"] == 30 and d["audio_pause_s"] == 120 and d["latch_high"] == 1
    assert d["audio_off_allowed"] == 0
    assert s.set("spo2_low", 79) and s.set("spo2_low", 99) and s.set("spo2_low", 88) is None
    for name in ("latch_high", "latch_medium", "audio_pause_s", "spo2_delay_mode",
                 "audio_off_allowed", "audio_off_reminder_min", "spo2_escalate_s",
                 "spo2_integral_ref", "spo2_hold_nibp"):
        assert SPEC[name][4] == ORG, name
        assert "responsible organisation" in s.set(name, SPEC[name][0], OPERATOR)
    assert s.set("spo2_delay_mode", "integral", ORG) is None
    assert s.set("spo2_delay_mode", "smart", ORG)
    assert s.set("spo2_integral_limit", 30, ORG)
    assert s.set("audio_pause_s", 301, ORG) and s.set("audio_pause_s", 29, ORG)


def test_audio_off_needs_org_setting():
    """REQ-ALM-18: AUDIO OFF is refused unless audio_off_allowed; in force it silences the
    auditory signals but not the visual; withdrawing the setting ends it."""
    r = Rig(spo2_low_delay_s=0)
    assert r.eng.set_audio_off(True)  # refused
    assert not r.eng.audio_off
    r.s.set("audio_off_allowed", 1, ORG)
    assert r.eng.set_audio_off(True) is None
    r.run(500, 80)
    assert r.state("SPO2_DESAT") == "active"
    assert r.eng.audible_priority() == P_NONE and r.eng.visible_priority() == P_HIGH
    r.s.set("audio_off_allowed", 0, ORG)
    r.run(100, 80)
    assert not r.eng.audio_off and r.eng.audible_priority() == P_HIGH


def _cmd(b, obj):
    b.host.push((json.dumps(obj) + "\n").encode())
    b.run(50)
    return [m for m in b.messages if m["type"] == "reply"][-1]


def _alloc_per_step(mode):
    r = Rig(spo2_delay_mode=mode)
    r.obs.oxi.spo2 = 88
    r.obs.oxi.pr = 140
    t = [T0]

    def one():
        t[0] = (t[0] + 100) & MASK
        r.obs.oxi_frame(0, t[0])
        r.obs.oxi_values(88, 140, 0, t[0])
        rules.oximeter(r.eng, r.s, r.obs, t[0])
        r.eng.step(t[0])
        r.eng.audible_priority()
        r.eng.visible_priority()

    r.eng.on_event = None
    for _ in range(200):
        one()  # past the delays: conditions exist
    return alloc_per_call(one, 300)


def test_alarm_step_allocates_nothing():
    """REQ-ALM-23: the 100 ms alarm step (rules + engine) allocates nothing (MicroPython heap)"""
    for mode in ("fixed", "integral"):
        a = _alloc_per_step(mode)
        if a is None:
            skip("heap allocation is measured on MicroPython only")
        assert a == 0, (mode, a)
