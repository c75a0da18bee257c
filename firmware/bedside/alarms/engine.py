# engine.py: alarm conditions -> occurrences -> signal states, with delays, escalation,
# latching and inactivation (IEC 60601-1-8 6.8, 6.10). Pure: time comes in as now_ms.
# Rules (rules.py) report each condition's predicate; the engine owns everything after that.
from bedside.alarms import fsm
from bedside.alarms.conditions import (
    CONDITIONS,
    COUNT,
    L_SETTING,
    L_YES,
    P_HIGH,
    P_MEDIUM,
    P_NONE,
    base_priority,
)
from bedside.alarms.deficit import IntegratedDeficit
from bedside.readings import NONE
from bedside.ticks import AGE_MAX, elapsed, ticks_add, ticks_diff

_S_ACTIVE = fsm.S_ACTIVE
_S_PAUSED = fsm.S_PAUSED
_S_LATCHED = fsm.S_LATCHED
_S_LATCHED_ACK = fsm.S_LATCHED_ACK
_N = fsm.N_STATES


class AlarmEngine:
    """State of every alarm condition. on_event(index, event, now_ms) is called per transition."""

    def __init__(self, settings, on_event=None):
        self.settings = settings
        self.on_event = on_event
        n = COUNT
        self.raw = bytearray(n)  # predicate now (from the rules)
        self.exists = bytearray(n)  # condition exists (predicate held for its delay)
        self.state = bytearray(n)  # fsm.S_*
        self._seen_state = bytearray(n)  # states and priorities the two below are of
        self._seen_prio = bytearray(n)
        self._audible = P_NONE  # highest audible priority (AUDIO OFF aside) and visible one
        self._visible = P_NONE
        self.prio = bytearray(n)  # current priority (escalation raises it)
        self.no_delay = bytearray(n)  # rule applies its own delay (e.g. integrated deficit)
        self.t_raw = [0] * n  # when the predicate became true
        self.t_start = [0] * n  # when the condition started to exist
        self.onset_sat = bytearray(n)  # its age has saturated (ticks.AGE_MAX): no Age objects
        self.latched = bytearray(n)  # highest priority latched since the last reset (0: none)
        self.t_pause_end = [0] * n  # when an audio pause ends
        self.value = [NONE] * n  # the value that triggered it (last seen while it held)
        self.limit = [NONE] * n  # the limit it was compared with
        self._lk_latch = fsm.build_lookup(True)
        self._lk_plain = fsm.build_lookup(False)
        for i in range(n):
            self.prio[i] = base_priority(i, settings)
        self.deficit = IntegratedDeficit()  # SPO2_LOW integral delay (rules.py feeds it)
        self.nibp_hold = NibpHold()  # SpO2 hold during NIBP inflation (the device feeds it)
        self.audio_off = False  # AUDIO OFF (global, only if the organisation allows it)

    # --- inputs -------------------------------------------------------------------------
    def report(self, i, raw, value, limit, now):
        """A rule's verdict for condition i at now: predicate, triggering value and limit."""
        if raw:
            if not self.raw[i]:
                self.t_raw[i] = now
            self.value[i] = value
            self.limit[i] = limit
        self.raw[i] = 1 if raw else 0

    def ack(self, now):
        """Short press: pause audio of the conditions sounding now. Returns how many."""
        n = 0
        for i in range(COUNT):
            s = self.state[i]
            if s == _S_ACTIVE or s == _S_LATCHED:
                self.t_pause_end[i] = ticks_add(now, self.settings["audio_pause_s"] * 1000)
                self._fire(i, fsm.E_ACK, now)
                n += 1
        return n

    def set_audio_off(self, on):
        """Enter/leave AUDIO OFF. Entering needs the audio_off_allowed (ORG) setting.
        Returns an error string or None."""
        if on and not self.settings["audio_off_allowed"]:
            return "audio off is not enabled by the responsible organisation"
        self.audio_off = bool(on)
        return None

    def reset(self, now):
        """Long press: clear latched alarms whose conditions have ended. Returns how many."""
        n = 0
        for i in range(COUNT):
            s = self.state[i]
            if s == _S_LATCHED or s == _S_LATCHED_ACK:
                self._fire(i, fsm.E_RESET, now)
                n += 1
        return n

    # --- time ---------------------------------------------------------------------------
    def step(self, now):
        """Apply delays, endings, escalation and pause expiry at now."""
        if self.audio_off and not self.settings["audio_off_allowed"]:
            self.audio_off = False  # the organisation withdrew it: audio back on at once
        raw = self.raw  # the per-condition arrays as locals: this runs every rule evaluation
        exists = self.exists
        state = self.state
        prio = self.prio
        for i in range(COUNT):
            cond = CONDITIONS[i]
            if raw[i]:
                if not exists[i] and elapsed(now, self.t_raw[i]) >= self.delay_ms(i):
                    exists[i] = 1
                    self.t_start[i] = now
                    self.onset_sat[i] = 0
                    prio[i] = base_priority(i, self.settings)
                    self._fire(i, fsm.E_RAISE, now)
            elif exists[i]:
                exists[i] = 0
                self._fire(i, fsm.E_END, now)
            esc = cond[5]
            if esc and exists[i] and prio[i] < esc[1]:
                esc_s = self.settings[esc[0]]
                if esc_s and self.age_ms(i, now) >= esc_s * 1000:
                    prio[i] = esc[1]
                    self._fire(i, fsm.E_ESCALATE, now)
            st = state[i]
            if st:
                self.age_ms(i, now)  # keep the age saturating, never wrapping
                if st == _S_PAUSED and ticks_diff(now, self.t_pause_end[i]) >= 0:
                    self._fire(i, fsm.E_PAUSE_END, now)

    def age_ms(self, i, now):
        """How long condition i's occurrence has been shown (saturating)."""
        if not self.state[i] and not self.exists[i]:
            return 0
        if self.onset_sat[i]:
            return AGE_MAX
        d = ticks_diff(now, self.t_start[i])
        if d >= AGE_MAX:
            self.onset_sat[i] = 1
            return AGE_MAX
        return d if d > 0 else 0

    def delay_ms(self, i):
        if self.no_delay[i]:
            return 0
        d = CONDITIONS[i][4]
        if isinstance(d, str):
            return self.settings[d] * 1000
        return d

    def latching(self, i):
        """Whether condition i latches now: always (L_YES), never (L_NO), or for L_SETTING per
        its current priority: HIGH per latch_high, MEDIUM per latch_medium (ORG settings)."""
        cond = CONDITIONS[i]
        if cond[3] == L_YES:
            return True
        if cond[3] != L_SETTING:
            return False
        p = self.prio[i]
        if p == P_HIGH:
            return bool(self.settings["latch_high"])
        if p == P_MEDIUM:
            return bool(self.settings["latch_medium"])
        return False

    def _fire(self, i, event, now):
        # once latched, an occurrence stays latching until reset, whatever its priority or the
        # latching settings do meanwhile (a latched alarm is only cleared by a reset)
        latching = self.latched[i] or self.latching(i)
        lk = self._lk_latch if latching else self._lk_plain
        dst = lk[event * _N + self.state[i]]
        if dst:
            st = dst - 1
            self.state[i] = st
            if st == _S_LATCHED or st == _S_LATCHED_ACK:
                if self.prio[i] > self.latched[i]:
                    self.latched[i] = self.prio[i]
            elif st == fsm.S_INACTIVE:
                self.latched[i] = 0
            if self.on_event:
                self.on_event(i, event, now)

    # --- outputs ------------------------------------------------------------------------
    def audible_priority(self):
        """Highest priority whose auditory signal should sound (P_NONE if none or AUDIO OFF)."""
        if self.state != self._seen_state or self.prio != self._seen_prio:
            self._signals()
        return P_NONE if self.audio_off else self._audible

    def visible_priority(self):
        """Highest priority with a visual signal (paused and latched ones included)."""
        if self.state != self._seen_state or self.prio != self._seen_prio:
            self._signals()
        return self._visible

    def _signals(self):
        # both priorities, worked out again only when a state or priority changed (every tick
        # they are asked for; the states and priorities compared as a whole, no loop)
        state = self.state
        prio = self.prio
        self._seen_state[:] = state
        self._seen_prio[:] = prio
        aud = vis = P_NONE
        for i in range(COUNT):
            s = state[i]
            if s:
                p = prio[i]
                if p > vis:
                    vis = p
                if (s == _S_ACTIVE or s == _S_LATCHED) and p > aud:
                    aud = p
        self._audible = aud
        self._visible = vis

    def top(self):
        """Index of the highest-priority visible condition (earliest on a tie), or -1."""
        best = -1
        for i in range(COUNT):
            if not self.state[i]:
                continue
            if (
                best < 0
                or self.prio[i] > self.prio[best]
                or (
                    self.prio[i] == self.prio[best]
                    and ticks_diff(self.t_start[i], self.t_start[best]) < 0
                )
            ):
                best = i
        return best

    def paused_remaining_ms(self, now):
        """Longest audio-pause time left among paused conditions (0 if none)."""
        left = 0
        for i in range(COUNT):
            if self.state[i] == _S_PAUSED:
                d = ticks_diff(self.t_pause_end[i], now)
                if d > left:
                    left = d
        return left


class NibpHold:
    """SpO2/pulse alarms held while the NIBP cuff inflates on the same arm (alarms.md 4.5):
    held from the cycle's start while spo2_hold_nibp is on, at most spo2_hold_max_s; after the
    cap the hold stops (nothing new is raised for it) until the next cycle."""

    def __init__(self):
        self.t0 = 0
        self.cycle = False
        self.capped = False

    def update(self, enabled, busy, max_s, now):
        """Returns whether the SpO2 alarms are held now."""
        if not busy:
            self.cycle = False
            self.capped = False
            return False
        if not self.cycle:
            self.cycle = True
            self.t0 = now
        if not enabled or self.capped:
            return False
        if elapsed(now, self.t0) >= max_s * 1000:
            self.capped = True
            return False
        return True
