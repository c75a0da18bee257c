"""Safety invariants of the alarm engine under random use (CPython, hypothesis).

hypothesis drives a real bedside.alarms.engine.AlarmEngine (the code that runs on the Pico)
with random predicate changes of representative conditions, ACK and reset presses, AUDIO OFF
requests, organisation setting flips (latch_high, latch_medium, audio_off_allowed) and time
steps, with the clock crossing the 2**30 ms tick wrap. A small independent observer tracks
when each condition exists (predicate held for its delay, from conditions.CONDITIONS and the
settings), when SPO2_LOW is due to escalate, when each audio pause began and which alarms
latched; after every action one property per test must hold (IEC 60601-1-8 as summarised in
the shared reference alarms.md §1.6-1.7, docs/alarms.md §2, §4, §5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bedside.alarms import fsm
from bedside.alarms.conditions import (
    BP_RISE,
    CHECK_OVERDUE,
    CONDITIONS,
    NIBP_CUFF_FAULT,
    OXI_SENSOR_OFF,
    P_NONE,
    PR_LOW,
    SPO2_DESAT,
    SPO2_LOW,
)
from bedside.alarms.engine import AlarmEngine
from bedside.settings import ORG, Settings
from bedside.ticks import MASK
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

T0 = (1 << 30) - 60000  # the clock crosses the tick wrap after a minute
TICK = 100  # the device steps the alarm engine every 100 ms
# HIGH/MEDIUM/LOW physiological (latching per setting) and technical (never latching), with
# and without delays; SPO2_LOW escalates.
CONDS = (SPO2_DESAT, SPO2_LOW, PR_LOW, BP_RISE, OXI_SENSOR_OFF, NIBP_CUFF_FAULT, CHECK_OVERDUE)
VISIBLE = (fsm.S_ACTIVE, fsm.S_PAUSED, fsm.S_LATCHED, fsm.S_LATCHED_ACK)
AUDIBLE = (fsm.S_ACTIVE, fsm.S_LATCHED)
LATCHED = (fsm.S_LATCHED, fsm.S_LATCHED_ACK)


class Run:
    """The engine plus an independent observer of what the standard says must be true."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.s = Settings()
        for k, v in overrides.items():
            assert self.s.set(k, v, ORG) is None, k
        self.eng = AlarmEngine(self.s)
        self.t = 0  # ms since T0, never wraps (the engine sees it wrapped)
        self.raw = dict.fromkeys(CONDS, False)
        self.t_raw = dict.fromkeys(CONDS, 0)
        self.exists = dict.fromkeys(CONDS, False)
        self.t_start = dict.fromkeys(CONDS, 0)
        self.escalated = dict.fromkeys(CONDS, False)
        self.escalated_now: list[int] = []  # escalations due at the last step
        self.t_paused: dict[int, int] = {}  # condition -> when the ACK that paused it came
        self.latched: set[int] = set()  # conditions that latched since the last reset
        self.last_reset: tuple[dict[int, int], dict[int, int]] | None = None
        self.seen_escalation = self.seen_escalation_paused = False
        self.seen_latched = self.seen_audio_off = False

    def now(self) -> int:
        return (T0 + self.t) & MASK

    def delay_ms(self, i: int) -> int:
        d = CONDITIONS[i][4]
        return self.s[d] * 1000 if isinstance(d, str) else d

    def prio(self, i: int) -> int:
        """The priority the condition must have now (its own, or its escalation's once
        escalated: HIGH for SPO2_LOW, MEDIUM for CHECK_OVERDUE)."""
        esc = CONDITIONS[i][5]
        return esc[1] if self.escalated[i] and esc else CONDITIONS[i][2]

    # --- actions ------------------------------------------------------------------------
    def pred(self, i: int, on: bool) -> None:
        if on and not self.raw[i]:
            self.t_raw[i] = self.t
        self.raw[i] = on
        self.eng.report(i, on, 80 if on else 0, 85, self.now())

    def step(self, ms: int) -> None:
        self.t += ms
        paused = {i for i in CONDS if self.eng.state[i] == fsm.S_PAUSED}
        self.eng.step(self.now())
        self.escalated_now = []
        for i in CONDS:
            if self.raw[i]:
                if not self.exists[i] and self.t - self.t_raw[i] >= self.delay_ms(i):
                    self.exists[i] = True
                    self.t_start[i] = self.t
                    self.escalated[i] = False
            else:
                self.exists[i] = False
                self.escalated[i] = False
            esc = CONDITIONS[i][5]
            if esc and self.exists[i] and not self.escalated[i]:
                esc_s = self.s[esc[0]]
                if esc_s and self.t - self.t_start[i] >= esc_s * 1000:
                    self.escalated[i] = True
                    self.escalated_now.append(i)
                    self.seen_escalation = True
                    self.seen_escalation_paused |= i in paused
        self._observe()

    def ack(self) -> None:
        before = {i: self.eng.state[i] for i in CONDS}
        self.eng.ack(self.now())
        for i in CONDS:
            if self.eng.state[i] == fsm.S_PAUSED and before[i] != fsm.S_PAUSED:
                self.t_paused[i] = self.t
        self._observe()

    def reset(self) -> None:
        states = {i: self.eng.state[i] for i in CONDS}
        prios = {i: self.eng.prio[i] for i in CONDS}
        self.eng.reset(self.now())
        self.last_reset = (states, prios)
        self.latched = set()  # the deliberate operator action that may end a latched alarm
        self._observe()

    def audio_off(self, on: bool) -> str | None:
        return self.eng.set_audio_off(on)

    def flip(self, name: str) -> None:
        assert self.s.set(name, 1 - self.s[name], ORG) is None

    def _observe(self) -> None:
        for i in CONDS:
            if self.eng.state[i] in LATCHED:
                self.latched.add(i)
                self.seen_latched = True
        self.seen_audio_off |= self.eng.audio_off


def _run(
    overrides: dict[str, Any],
    conds: list[int],
    actions: list[Any],
    check: Callable[[Run, Any], None],
) -> None:
    r = Run(overrides)
    for act in actions:
        kind = act[0]
        if kind == "pred":  # a rule's verdict changes, then the device ticks on
            r.pred(conds[act[1] % len(conds)], act[2])
            for _ in range(act[3]):
                r.step(TICK)
                check(r, act)
        elif kind == "long":
            for _ in range(act[1]):
                r.step(1000)  # engine stepped once a second: coarser than the device
                check(r, act)
        elif kind == "ack":
            r.ack()
        elif kind == "reset":
            r.reset()
        elif kind == "audio_off":
            was = r.eng.audio_off
            err = r.audio_off(act[1])
            if act[1] and not r.s["audio_off_allowed"]:  # refused, nothing changes
                assert err and r.eng.audio_off == was, "AUDIO OFF without audio_off_allowed"
        else:
            r.flip(act[1])
        check(r, act)
        r.last_reset = None
    for seen, what in (
        (r.seen_escalation, "escalated"),
        (r.seen_escalation_paused, "escalated while audio paused"),
        (bool(r.t_paused), "audio paused"),
        (r.seen_latched, "latched"),
        (r.seen_audio_off, "AUDIO OFF"),
    ):
        if seen:
            event(what)  # coverage, shown by --hypothesis-show-statistics


# SPO2_LOW (the escalating one) and SPO2_DESAT (HIGH, latching) drawn more often
_conds = st.lists(
    st.sampled_from((*CONDS, SPO2_LOW, SPO2_LOW, SPO2_DESAT)), min_size=1, max_size=3, unique=True
)
_pred = st.tuples(st.just("pred"), st.integers(0, 2), st.booleans(), st.integers(0, 60))
_long = st.tuples(st.just("long"), st.integers(1, 400))
_press = st.tuples(st.sampled_from(["ack", "ack", "reset"]))
_audio_off = st.tuples(st.just("audio_off"), st.booleans())
_flip = st.tuples(
    st.just("flip"), st.sampled_from(["latch_high", "latch_medium", "audio_off_allowed"])
)
_actions = st.lists(
    st.one_of(_pred, _pred, _pred, _long, _press, _audio_off, _flip), min_size=8, max_size=60
)
_settings = st.fixed_dictionaries(
    {
        "spo2_low_delay_s": st.sampled_from([0, 0, 2, 10]),
        "pr_delay_s": st.sampled_from([0, 2, 10]),
        "spo2_escalate_s": st.sampled_from([0, 1, 1, 5, 20]),
        "latch_high": st.integers(0, 1),
        "latch_medium": st.integers(0, 1),
        "audio_off_allowed": st.integers(0, 1),
        "audio_pause_s": st.sampled_from([30, 60, 120, 300]),
    }
)
_hyp = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_DEFAULTS = {
    "spo2_low_delay_s": 0,
    "pr_delay_s": 0,
    "spo2_escalate_s": 0,
    "latch_high": 1,
    "latch_medium": 0,
    "audio_off_allowed": 0,
    "audio_pause_s": 30,
}


# --- the properties ---------------------------------------------------------------------
def _existing_is_visible(r: Run, act: Any) -> None:
    for i in CONDS:
        if r.exists[i]:
            assert r.eng.state[i] in VISIBLE, (i, act)
            assert r.eng.prio[i] == r.prio(i), (i, r.eng.prio[i], r.prio(i))
            assert r.eng.visible_priority() >= r.prio(i), (i, act)


def _escalation_is_audible(r: Run, act: Any) -> None:
    for i in r.escalated_now:
        if r.eng.audio_off:
            continue
        assert r.eng.state[i] in AUDIBLE, (i, fsm.STATE_NAMES[r.eng.state[i]])
        # the escalated priority sounds (or a higher one)
        assert r.eng.audible_priority() >= r.prio(i), (i, r.eng.audible_priority())


def _reset_keeps_existing(r: Run, act: Any) -> None:
    if r.last_reset is None:
        return
    states, prios = r.last_reset
    for i in CONDS:
        if r.exists[i]:
            assert r.eng.state[i] == states[i] and r.eng.prio[i] == prios[i], i
            assert r.eng.state[i] in VISIBLE, i


def _audio_off_silent(r: Run, act: Any) -> None:
    if r.eng.audio_off:
        assert r.eng.audible_priority() == P_NONE
    if act[0] in ("wait", "long") and not r.s["audio_off_allowed"]:
        assert not r.eng.audio_off  # a withdrawn permission ends AUDIO OFF at the next step


def _pause_bounded(r: Run, act: Any) -> None:
    limit = r.s["audio_pause_s"] * 1000
    for i in CONDS:
        if r.eng.state[i] == fsm.S_PAUSED:
            assert i in r.t_paused, (i, "paused without an ACK")
            assert r.t - r.t_paused[i] < limit, (i, r.t - r.t_paused[i], limit)
            assert 0 < r.eng.paused_remaining_ms(r.now()) <= limit


def _latched_visible_until_reset(r: Run, act: Any) -> None:
    for i in r.latched:
        assert r.eng.state[i] in VISIBLE, (i, "latched alarm cleared without a reset", act)


@_hyp
@given(_settings, _conds, _actions)
def test_an_existing_condition_is_always_visible(
    ov: dict[str, Any], conds: list[int], actions: list[Any]
) -> None:
    """REQ-ALM-36: whatever the presses, settings and AUDIO OFF, every existing condition has a
    visual signal at its (possibly escalated) priority."""
    _run(ov, conds, actions, _existing_is_visible)


@_hyp
@given(_settings, _conds, _actions)
# SPO2_LOW acknowledged, then it escalates during the pause; again with AUDIO OFF in force
@example(
    {**_DEFAULTS, "spo2_escalate_s": 5, "audio_pause_s": 300, "audio_off_allowed": 1},
    [SPO2_LOW],
    [
        ("pred", 0, True, 10),
        ("ack",),
        ("pred", 0, True, 60),
        ("pred", 0, False, 1),
        ("audio_off", True),
        ("pred", 0, True, 10),
        ("ack",),
        ("long", 10),
    ],
)
def test_an_escalation_is_always_audible(
    ov: dict[str, Any], conds: list[int], actions: list[Any]
) -> None:
    """REQ-ALM-37: at the step an escalation falls due the condition sounds at HIGH, whether
    it was active or audio paused (only AUDIO OFF keeps it silent)."""
    _run(ov, conds, actions, _escalation_is_audible)


@_hyp
@given(_settings, _conds, _actions)
def test_reset_never_clears_an_existing_condition(
    ov: dict[str, Any], conds: list[int], actions: list[Any]
) -> None:
    """REQ-ALM-38: alarm reset leaves every existing condition's state and priority as they
    were: it only clears alarms whose condition has ended."""
    _run(ov, conds, actions, _reset_keeps_existing)


@_hyp
@given(_settings, _conds, _actions)
def test_nothing_audible_while_audio_off(
    ov: dict[str, Any], conds: list[int], actions: list[Any]
) -> None:
    """REQ-ALM-39: AUDIO OFF is refused without audio_off_allowed; while it is on the engine
    asks for no alarm sound at all (audible priority none; only the annunciator's reminder
    pulse sounds), and withdrawing the setting ends it at the next step."""
    _run(ov, conds, actions, _audio_off_silent)


@_hyp
@given(_settings, _conds, _actions)
# two conditions acknowledged at different times, the engine stepped once a second
@example(
    {**_DEFAULTS, "audio_pause_s": 30},
    [SPO2_DESAT, OXI_SENSOR_OFF],
    [("pred", 0, True, 1), ("ack",), ("long", 20), ("pred", 1, True, 3), ("ack",), ("long", 60)],
)
def test_audio_pause_never_outlasts_audio_pause_s(
    ov: dict[str, Any], conds: list[int], actions: list[Any]
) -> None:
    """REQ-ALM-40: a condition is audio paused only after an ACK and never for
    audio_pause_s or longer after that ACK, even with the engine stepped once a second."""
    _run(ov, conds, actions, _pause_bounded)


@_hyp
@given(_settings, _conds, _actions)
# SPO2_LOW escalated to HIGH latches (latch_high=1); it returns at MEDIUM for 100 ms and ends
# (latch_medium=0): the HIGH latched alarm is gone without a reset.
@example(
    {**_DEFAULTS, "spo2_escalate_s": 1},
    [SPO2_LOW],
    [("pred", 0, True, 11), ("pred", 0, False, 1), ("pred", 0, True, 1), ("pred", 0, False, 1)],
)
# SPO2_DESAT latched; the organisation sets latch_high=0; the desaturation returns and ends.
@example(
    _DEFAULTS,
    [SPO2_DESAT],
    [
        ("pred", 0, True, 1),
        ("pred", 0, False, 1),
        ("flip", "latch_high"),
        ("pred", 0, True, 1),
        ("pred", 0, False, 1),
    ],
)
def test_a_latched_alarm_stays_visible_until_reset(
    ov: dict[str, Any], conds: list[int], actions: list[Any]
) -> None:
    """REQ-ALM-41: once an alarm has latched its visual signal stays until an alarm reset,
    whatever happens to the condition, the presses or the latching settings meanwhile."""
    _run(ov, conds, actions, _latched_visible_until_reset)
