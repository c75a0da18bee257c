# test_alarm_transitions.py: one scenario per row of the alarm occurrence state machine, with
# the expected table written here from IEC 60601-1-8 (ref §1.6-1.7: acknowledged/audio paused,
# latching, alarm reset, escalation) and docs/alarms.md §4, §5 and §9 (state meanings), NOT
# read from fsm.TRANSITIONS: a wrong row in the firmware table fails here. Runs on CPython
# and MicroPython; the clock starts just below the 2**30 ms tick wrap.
from bedside.alarms import fsm
from bedside.alarms.conditions import (
    OXI_SENSOR_OFF,
    P_HIGH,
    P_MEDIUM,
    P_NONE,
    SPO2_DESAT,
    SPO2_LOW,
)
from bedside.alarms.engine import AlarmEngine
from bedside.settings import ORG, Settings
from fakes import Clock

INACTIVE = "inactive"
ACTIVE = "active"
PAUSED = "audio_paused"
LATCHED = "latched"
LATCHED_ACK = "latched_acknowledged"
STATES = (INACTIVE, ACTIVE, PAUSED, LATCHED, LATCHED_ACK)
EVENTS = ("raise", "end", "ack", "pause_end", "reset", "escalate")

# The expected table: (event, source) -> (destination if the condition latches, destination
# if it does not). Every (event, source) pair not listed must leave the state unchanged.
#  raise     the condition starts to exist: its visual and auditory signals start, also for a
#            latched occurrence whose condition returns (docs §4) and after an ACK (ACK only
#            inactivates conditions active at the time, ref §1.6).
#  end       non-latching signals stop when the condition ends; latching ones continue until a
#            deliberate operator action (ref §1.7): with their sound (latched), or visual only
#            if the operator has already acknowledged them (audio paused -> latched_ack).
#  ack       ACKNOWLEDGED / AUDIO PAUSED: auditory signals of the conditions sounding now stop,
#            visual signals stay (ref §1.6; docs §5).
#  pause_end the audio pause is limited in time: a still-existing condition sounds again.
#  reset     alarm reset stops the signals of conditions that no longer exist (ref §1.7).
#  escalate  a raised priority sounds, also through an audio pause (docs §2, §5).
EXPECTED = {
    ("raise", INACTIVE): (ACTIVE, ACTIVE),
    ("raise", LATCHED): (ACTIVE, ACTIVE),
    ("raise", LATCHED_ACK): (ACTIVE, ACTIVE),
    ("end", ACTIVE): (LATCHED, INACTIVE),
    ("end", PAUSED): (LATCHED_ACK, INACTIVE),
    ("ack", ACTIVE): (PAUSED, PAUSED),
    ("ack", LATCHED): (LATCHED_ACK, LATCHED_ACK),
    ("pause_end", PAUSED): (ACTIVE, ACTIVE),
    ("reset", LATCHED): (INACTIVE, INACTIVE),
    ("reset", LATCHED_ACK): (INACTIVE, INACTIVE),
    ("escalate", ACTIVE): (ACTIVE, ACTIVE),
    ("escalate", PAUSED): (ACTIVE, ACTIVE),
}

# What each state shows and sounds (docs §9; ref §1.6: ACK/pause never remove the visual signal).
VISIBLE = (ACTIVE, PAUSED, LATCHED, LATCHED_ACK)
AUDIBLE = (ACTIVE, LATCHED)

PAUSE_S = 30  # audio_pause_s for these scenarios (organisation range 30-300 s)


class Rig:
    """An AlarmEngine on real Settings and a clock below the wrap; events recorded by name."""

    def __init__(self, **org):
        self.s = Settings()
        self.s.set("audio_pause_s", PAUSE_S, ORG)
        for k in org:
            assert self.s.set(k, org[k], ORG) is None, k
        self.clock = Clock()
        self.events = []
        self.eng = AlarmEngine(self.s, self._ev)

    def _ev(self, i, event, now):
        self.events.append((i, EVENTS[event], STATES[self.eng.state[i]]))

    def now(self):
        return self.clock.now

    def cond(self, i, on):
        """The rule reports condition i on/off now, then the engine steps."""
        now = self.clock.now
        self.eng.report(i, on, 80 if on else 0, 85, now)
        self.eng.step(now)

    def wait(self, ms, step=100):
        """Time passes; the engine steps every `step` ms (predicates unchanged)."""
        while ms > 0:
            d = step if ms > step else ms
            ms -= d
            self.eng.step(self.clock.advance(d))

    def ack(self):
        return self.eng.ack(self.clock.now)

    def reset(self):
        return self.eng.reset(self.clock.now)

    def state(self, i):
        return STATES[self.eng.state[i]]

    def last(self, i):
        """(event, state after it) of the last event of condition i."""
        ev = [e for e in self.events if e[0] == i]
        return (ev[-1][1], ev[-1][2]) if ev else None

    def signals(self, i, prio):
        """Check condition i is the only one, and its visual/auditory signals match its state."""
        s = self.state(i)
        vis = prio if s in VISIBLE else P_NONE
        aud = prio if s in AUDIBLE else P_NONE
        assert self.eng.visible_priority() == vis, (s, self.eng.visible_priority())
        assert self.eng.audible_priority() == aud, (s, self.eng.audible_priority())


def _latching():
    """(rig, condition, priority) whose occurrence latches: HIGH SPO2_DESAT, latch_high=1
    (default), and MEDIUM SPO2_LOW with latch_medium=1."""
    return (
        (Rig(), SPO2_DESAT, P_HIGH),
        (Rig(latch_medium=1, spo2_low_delay_s=0), SPO2_LOW, P_MEDIUM),
    )


def _nonlatching():
    """Non-latching ones: SPO2_DESAT with latch_high=0, SPO2_LOW by default (latch_medium=0),
    and the technical OXI_SENSOR_OFF (never latches)."""
    return (
        (Rig(latch_high=0), SPO2_DESAT, P_HIGH),
        (Rig(spo2_low_delay_s=0), SPO2_LOW, P_MEDIUM),
        (Rig(), OXI_SENSOR_OFF, P_MEDIUM),
    )


def _expect(r, i, event, state):
    assert r.last(i) == (event, state), (i, r.last(i), event, state)
    assert r.state(i) == state


def test_raise_inactive_to_active():
    """REQ-ALM-30: a condition that starts to exist goes inactive -> active: visual and
    auditory signals at its priority, latching or not."""
    for r, i, p in _latching() + _nonlatching():
        r.wait(500)
        assert r.state(i) == INACTIVE and r.events == []
        r.signals(i, p)
        r.cond(i, True)
        _expect(r, i, "raise", ACTIVE)
        r.signals(i, p)


def test_raise_latched_to_active():
    """REQ-ALM-30: a latched alarm whose condition returns is active again (sounds)."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.wait(500)
        r.cond(i, False)
        assert r.state(i) == LATCHED
        r.wait(500)
        r.cond(i, True)
        _expect(r, i, "raise", ACTIVE)
        r.signals(i, p)


def test_raise_latched_acknowledged_to_active():
    """REQ-ALM-30: an acknowledged latched alarm whose condition returns is active again: the
    earlier ACK does not silence the new occurrence."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.cond(i, False)
        assert r.ack() == 1 and r.state(i) == LATCHED_ACK
        r.wait(500)
        r.cond(i, True)
        _expect(r, i, "raise", ACTIVE)
        r.signals(i, p)


def test_end_active_latching_to_latched():
    """REQ-ALM-31: a latching condition that ends while active is latched: visual and auditory
    signals continue after the condition ends, however long nobody acts."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.wait(1000)
        r.cond(i, False)
        _expect(r, i, "end", LATCHED)
        r.signals(i, p)
        r.wait(10 * PAUSE_S * 1000, step=1000)  # nothing times it out
        assert r.state(i) == LATCHED
        r.signals(i, p)


def test_end_active_nonlatching_to_inactive():
    """REQ-ALM-31: a non-latching condition that ends while active is inactive: its signals
    stop with it."""
    for r, i, p in _nonlatching():
        r.cond(i, True)
        r.wait(1000)
        r.signals(i, p)
        r.cond(i, False)
        _expect(r, i, "end", INACTIVE)
        r.signals(i, p)


def test_end_audio_paused_latching_to_latched_acknowledged():
    """REQ-ALM-31: a latching condition that ends while its audio is paused keeps its visual
    signal (latched, already acknowledged): no sound, also after the pause time, until reset."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.ack()
        r.wait(1000)
        r.cond(i, False)
        _expect(r, i, "end", LATCHED_ACK)
        r.signals(i, p)
        r.wait(2 * PAUSE_S * 1000, step=1000)
        assert r.state(i) == LATCHED_ACK
        r.signals(i, p)


def test_end_audio_paused_nonlatching_to_inactive():
    """REQ-ALM-31: a non-latching condition that ends while its audio is paused is inactive,
    and stays silent when the pause time runs out."""
    for r, i, p in _nonlatching():
        r.cond(i, True)
        r.ack()
        r.wait(1000)
        r.cond(i, False)
        _expect(r, i, "end", INACTIVE)
        r.signals(i, p)
        r.wait(2 * PAUSE_S * 1000, step=1000)
        assert r.state(i) == INACTIVE and r.last(i) == ("end", INACTIVE)


def test_ack_active_to_audio_paused():
    """REQ-ALM-32: ACK moves an active condition to audio paused: silent, still visible."""
    for r, i, p in _latching() + _nonlatching():
        r.cond(i, True)
        r.wait(300)
        assert r.ack() == 1
        _expect(r, i, "ack", PAUSED)
        r.signals(i, p)


def test_ack_latched_to_latched_acknowledged():
    """REQ-ALM-32: ACK moves a latched alarm to latched acknowledged: silent, still visible,
    and it does not sound again when the pause time runs out."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.cond(i, False)
        r.wait(500)
        assert r.ack() == 1
        _expect(r, i, "ack", LATCHED_ACK)
        r.signals(i, p)
        r.wait(2 * PAUSE_S * 1000, step=1000)
        assert r.state(i) == LATCHED_ACK
        r.signals(i, p)


def test_pause_end_audio_paused_to_active():
    """REQ-ALM-32: audio pause is limited to audio_pause_s: silent until then, and the still
    existing condition sounds again exactly when it runs out. REQ-SYS-03: the pause crosses
    the 2**30 tick wrap."""
    for r, i, p in _latching() + _nonlatching():
        r.cond(i, True)
        r.ack()
        r.wait(PAUSE_S * 1000 - 10, step=10)
        assert r.state(i) == PAUSED
        r.signals(i, p)
        r.wait(10, step=10)
        _expect(r, i, "pause_end", ACTIVE)
        r.signals(i, p)


def test_reset_latched_to_inactive():
    """REQ-ALM-33: alarm reset clears a latched alarm whose condition has ended."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.cond(i, False)
        assert r.reset() == 1
        _expect(r, i, "reset", INACTIVE)
        r.signals(i, p)


def test_reset_latched_acknowledged_to_inactive():
    """REQ-ALM-33: alarm reset clears an acknowledged latched alarm."""
    for r, i, p in _latching():
        r.cond(i, True)
        r.cond(i, False)
        r.ack()
        assert r.reset() == 1
        _expect(r, i, "reset", INACTIVE)
        r.signals(i, p)


def test_escalate_active_stays_active_at_the_higher_priority():
    """REQ-ALM-34: SPO2_LOW escalates MEDIUM -> HIGH after spo2_escalate_s and stays active,
    now sounding and showing HIGH; once escalated it latches as HIGH (latch_high)."""
    for latch_high, after_end in ((1, LATCHED), (0, INACTIVE)):
        r = Rig(spo2_low_delay_s=0, spo2_escalate_s=5, latch_high=latch_high)
        r.cond(SPO2_LOW, True)
        r.wait(4900)
        assert r.eng.prio[SPO2_LOW] == P_MEDIUM
        r.signals(SPO2_LOW, P_MEDIUM)
        r.wait(100)
        _expect(r, SPO2_LOW, "escalate", ACTIVE)
        assert r.eng.prio[SPO2_LOW] == P_HIGH
        r.signals(SPO2_LOW, P_HIGH)
        r.cond(SPO2_LOW, False)
        _expect(r, SPO2_LOW, "end", after_end)
        r.signals(SPO2_LOW, P_HIGH)


def test_escalate_audio_paused_to_active():
    """REQ-ALM-34: an escalation breaks through an audio pause: audio paused -> active, HIGH
    sounds at once although the pause has not run out."""
    for latch_high in (1, 0):
        r = Rig(spo2_low_delay_s=0, spo2_escalate_s=5, latch_high=latch_high)
        r.cond(SPO2_LOW, True)
        r.wait(1000)
        assert r.ack() == 1
        r.wait(3900)
        assert r.state(SPO2_LOW) == PAUSED
        r.signals(SPO2_LOW, P_MEDIUM)
        r.wait(100)
        _expect(r, SPO2_LOW, "escalate", ACTIVE)
        assert r.eng.paused_remaining_ms(r.now()) == 0
        r.signals(SPO2_LOW, P_HIGH)


def test_operator_actions_elsewhere_change_nothing():
    """REQ-ALM-35: through the engine's inputs, ACK in inactive, audio paused or latched
    acknowledged, reset in inactive, active or audio paused, and time passing change no state
    and report no event; reset never clears an existing condition."""
    for r, i, p in _latching() + _nonlatching():
        assert r.ack() == 0 and r.reset() == 0  # inactive
        assert r.state(i) == INACTIVE and r.events == []
        r.cond(i, True)
        assert r.reset() == 0 and r.state(i) == ACTIVE  # an existing condition stays
        r.signals(i, p)
        r.ack()
        n = len(r.events)
        assert r.ack() == 0 and r.reset() == 0 and r.state(i) == PAUSED
        r.wait(PAUSE_S * 500)
        assert r.ack() == 0 and r.state(i) == PAUSED and len(r.events) == n
        r.signals(i, p)
    for r, i, p in _latching():
        r.cond(i, True)
        r.cond(i, False)
        r.ack()
        n = len(r.events)
        assert r.ack() == 0 and r.state(i) == LATCHED_ACK
        r.wait(3 * PAUSE_S * 1000, step=1000)
        assert r.state(i) == LATCHED_ACK and len(r.events) == n
        r.signals(i, p)


def _table_check(latching):
    """Drive every (event, state) pair through the engine's one event dispatch (_fire), which
    all inputs use; some pairs (e.g. raise while active) cannot be produced by the inputs, and
    must still be harmless. Returns the number of pairs checked."""
    n = 0
    for si in range(len(STATES)):
        for ei in range(len(EVENTS)):
            r = Rig(latch_high=1 if latching else 0)
            i = SPO2_DESAT
            r.eng.state[i] = si
            r.eng._fire(i, ei, r.now())
            key = (EVENTS[ei], STATES[si])
            got = STATES[r.eng.state[i]]
            if key in EXPECTED:
                want = EXPECTED[key][0 if latching else 1]
                assert got == want, (latching, key, got, want)
                assert r.events == [(i, EVENTS[ei], want)], (key, r.events)
            else:
                assert got == STATES[si], (latching, key, got)
                assert r.events == [], (key, r.events)  # nothing reported or logged
            n += 1
    return n


def test_every_unlisted_pair_leaves_the_state_unchanged():
    """REQ-ALM-35: all 6 events x 5 states, latching and not: the listed pairs go where the
    standard says, every other pair leaves the state unchanged and reports no event."""
    # the engine numbers states and events in fsm's order; only the names are taken from there
    assert tuple(fsm.STATE_NAMES) == STATES and tuple(fsm.EVENT_NAMES) == EVENTS
    assert len(EXPECTED) == 12
    assert _table_check(True) == 30 and _table_check(False) == 30
