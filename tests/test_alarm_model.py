"""The firmware alarm engine agrees with the `transitions` reference model (REQ-ALM-21).

hypothesis drives bedside.alarms (rules + AlarmEngine, the code that runs on the Pico) and
bedside_host.alarm_model (a `transitions` Machine built from fsm.TRANSITIONS plus an independent
re-implementation of predicates, delays, escalation and inactivation) with the same random
settings, readings (SpO2/PR values, sensor-off), button presses and time steps, and requires
identical states and priorities for every modelled condition after every action.
"""

from __future__ import annotations

from typing import Any

from bedside.alarms import fsm, rules
from bedside.alarms.conditions import IDS
from bedside.alarms.engine import AlarmEngine
from bedside.observations import Observations
from bedside.readings import F_SENSOR_OFF, NibpReading, OxiReading
from bedside.settings import ORG, Settings
from bedside.ticks import MASK
from bedside_host.alarm_model import MODELLED, STATES, AlarmModel, transition_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T0 = (1 << 30) - 60000  # the firmware clock crosses the tick wrap after a minute
STEP = 100  # the device evaluates the rules every 100 ms


class _Pair:
    """Firmware engine and model side by side on one timeline."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.s = Settings()
        for k, v in overrides.items():
            assert self.s.set(k, v, ORG) is None
        self.t = 0
        self.eng = AlarmEngine(self.s)
        self.obs = Observations(T0, OxiReading(), NibpReading())
        self.model = AlarmModel(self.s)
        self.spo2, self.pr, self.off = 97, 72, False

    def now(self) -> int:
        return (T0 + self.t) & MASK

    def tick(self) -> None:
        self.t += STEP
        now = self.now()
        o = self.obs
        flags = F_SENSOR_OFF if self.off else 0
        o.oxi.spo2, o.oxi.pr, o.oxi.flags = self.spo2, self.pr, flags
        o.oxi_frame(flags, now)
        o.oxi_values(self.spo2, self.pr, flags, now)
        rules.oximeter(self.eng, self.s, o, now)
        self.eng.step(now)
        self.model.readings(self.spo2, self.pr, self.off, self.t)
        self.model.step(self.t)

    def fw_states(self) -> dict[str, tuple[str, int]]:
        return {
            cid: (fsm.STATE_NAMES[self.eng.state[IDS.index(cid)]], self.eng.prio[IDS.index(cid)])
            for cid in MODELLED
        }


_spo2 = st.one_of(st.integers(78, 99), st.integers(84, 92))  # often on or near the limits
_pr = st.one_of(st.integers(40, 140), st.integers(48, 52), st.integers(128, 132))
_reading = st.tuples(
    st.just("read"), _spo2, _pr, st.sampled_from([False, False, False, True])
)
_wait = st.tuples(st.just("wait"), st.one_of(st.integers(1, 20), st.integers(100, 400)))
_press = st.tuples(st.sampled_from(["ack", "reset"]))
_actions = st.lists(st.one_of(_reading, _wait, _wait, _press), min_size=1, max_size=40)
_settings = st.fixed_dictionaries(
    {
        "spo2_low_delay_s": st.sampled_from([0, 0, 2, 10, 15]),
        "pr_delay_s": st.sampled_from([0, 0, 2, 10, 30]),
        "spo2_escalate_s": st.sampled_from([0, 5, 20, 60]),
        "latch_high": st.integers(0, 1),
        "latch_medium": st.integers(0, 1),
        "audio_pause_s": st.sampled_from([30, 60, 120]),
        "spo2_low": st.integers(88, 94),
        "spo2_desat": st.integers(80, 87),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_settings, _actions)
def test_firmware_engine_matches_reference_model(
    overrides: dict[str, Any], actions: list[Any]
) -> None:
    """REQ-ALM-21: identical states and priorities per condition after every action."""
    p = _Pair(overrides)
    for act in actions:
        if act[0] == "read":
            _, p.spo2, p.pr, p.off = act
            p.tick()
        elif act[0] == "wait":
            for _ in range(act[1]):
                p.tick()
                assert p.fw_states() == p.model.states(), (p.t, p.model.log[-5:])
        elif act[0] == "ack":
            p.eng.ack(p.now())
            p.model.ack(p.t)
        else:
            p.eng.reset(p.now())
            p.model.reset(p.t)
        assert p.fw_states() == p.model.states(), (act, p.model.log[-5:])
        assert p.eng.audible_priority() == p.model.audible_priority()
        assert p.eng.visible_priority() == p.model.visible_priority()


def test_model_is_built_from_the_firmware_table() -> None:
    """REQ-ALM-21: the model's machine has exactly the firmware's states and transitions."""
    assert STATES == fsm.STATE_NAMES
    rows = transition_rows()
    assert len(rows) == len(fsm.TRANSITIONS)
    for row, (e, s, d, g) in zip(rows, fsm.TRANSITIONS, strict=True):
        assert (row["trigger"], row["source"], row["dest"]) == (
            fsm.EVENT_NAMES[e], fsm.STATE_NAMES[s], fsm.STATE_NAMES[d]
        )
        assert ("conditions" in row) == (g == fsm.G_LATCHING)
        assert ("unless" in row) == (g == fsm.G_NONLATCHING)
