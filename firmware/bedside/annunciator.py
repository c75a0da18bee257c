# annunciator.py: drives the sounder and LEDs from the alarm priorities, by timestamps.
# Called every main-loop tick with now_ms; never sleeps; allocates nothing per call. Plays
# only the highest-priority auditory pattern; a started burst completes its minimum (half a
# HIGH, a whole MEDIUM) unless audio is inactivated; shows the highest visible priority on
# its LED. AUDIO OFF: no alarm sound, one reminder pulse every audio_off_reminder_min, green
# LED flashing. The sounder and LED objects are injected (board layer or SIL):
# sounder.tone(hz, duty_u16), sounder.off(); leds.set(color, on).
from bedside.alarms.conditions import P_NONE
from bedside.alarms.patterns import (
    AUDIO_OFF_GREEN,
    AUDITORY,
    DUTY,
    RAMP_STEPS,
    REMINDER,
    VISUAL,
    period,
)
from bedside.compat import const
from bedside.ticks import elapsed, ticks_add

QUIET_MAX = const(60000)
_GREEN_BIT = const(8)  # 1 << GREEN (the LED bits of _show: 1 << colour)
_PERIOD = tuple(period(p) if p else 0 for p in AUDITORY)  # burst period per priority, ms


class Annunciator:
    def __init__(self, sounder, leds, settings):
        self.sounder = sounder
        self.leds = leds
        self.settings = settings
        self._prio = P_NONE  # auditory pattern now playing
        self._t0 = 0  # its burst start
        self._first = True  # still in the first burst (minimum completion applies)
        self._silenced = False  # ACK pressed: no minimum completion
        self._level = 0  # duty level applied (0 = off)
        self._vprio = -1  # visual priority shown
        self._vt0 = 0
        self._led = bytearray(4)  # applied LED states
        self._shown = 0  # the LEDs wanted when last applied: bit per colour (RED..GREEN)
        self._off = False  # AUDIO OFF in force
        self._rem_t = 0  # AUDIO OFF: last reminder start (or entry)
        self._off_t0 = 0  # AUDIO OFF: entry, for the green flash phase
        self.tone_on = False
        self._info = False  # an information signal (one soft pulse) is due or sounding
        self._info_t = 0

    def quiet_ms(self, now):
        """Milliseconds until the next auditory pulse is due (0 while one sounds): the board
        runs a flash write (interrupts off) only when this is long enough. QUIET_MAX if none."""
        if self._level or self._info:
            return 0
        if self._prio:
            pat = AUDITORY[self._prio]
            t = elapsed(now, self._t0)
            for start in pat[2]:
                if start > t:
                    return start - t
            left = _PERIOD[self._prio] - t
            return left if left > 0 else 0
        if self._off:
            left = self.settings["audio_off_reminder_min"] * 60000 - elapsed(now, self._rem_t)
            return left if left > 0 else 0
        return QUIET_MAX

    def playing(self):
        """What is being played, for a view of the signal rather than of the pin (the SIL's
        annunciator log): (auditory pattern priority P_*, visual priority shown P_*, AUDIO OFF
        in force). The auditory priority stays set through a burst's pauses."""
        v = self._vprio
        return self._prio, (v if v > 0 else 0), self._off

    def invalidate(self):
        """Something else drove the sounder and LEDs (the self-test): apply everything again."""
        for c in range(4):
            self._led[c] = 2
        self._shown = -1
        self._level = -1
        self._vprio = -1

    def safe(self, now, prio):
        """A fault was caught: restart the pattern state and sound at least `prio`."""
        self._prio = P_NONE
        self._silenced = True
        self.invalidate()
        self.step(now, prio, prio, False)

    def info(self, now):
        """An information signal (not an alarm signal): one soft REMINDER pulse now, unless an
        auditory alarm signal plays (the alarm says more) or audio is off."""
        self._info = True
        self._info_t = now

    def silence(self):
        """Audio inactivated by the operator: stop the running burst now."""
        self._silenced = True

    def step(self, now, audible, visible, audio_off=False):
        if audio_off != self._off:
            self._off = audio_off
            self._rem_t = now
            self._off_t0 = now
            if audio_off:
                self._silenced = True  # an operator inactivation: no minimum completion
        self._sound(now, audible)
        self._show(now, visible)

    # --- auditory -----------------------------------------------------------------------
    # (every tick: each function kept within MicroPython's 11 frame slots, so no call puts its
    # frame on the heap)
    def _sound(self, now, req):
        if req != self._prio:
            self._switch(now, req)
        if self._prio:
            level = self._burst(now)
            self._info = False
        elif self._off:
            self._info = False
            dt = elapsed(now, self._rem_t)
            if dt >= self.settings["audio_off_reminder_min"] * 60000:
                self._rem_t = now
                dt = 0
            level = _pulse_level(REMINDER[0], REMINDER[1], dt)
        elif self._info:
            dt = elapsed(now, self._info_t)
            if dt >= REMINDER[0]:
                self._info = False
            level = _pulse_level(REMINDER[0], REMINDER[1], dt)
        else:
            level = 0
        if level != self._level:
            self._level = level
            if level:
                self.sounder.tone(self.settings["sounder_hz"], DUTY[level])
            else:
                self.sounder.off()
            self.tone_on = level > 0

    def _switch(self, now, req):
        cur = self._prio
        if req > cur:
            self._start(req, now)
        else:
            pat = AUDITORY[cur]
            min_end = pat[2][pat[4] - 1] + pat[0]  # end of the last pulse that must complete
            in_min = self._first and elapsed(now, self._t0) < min_end
            if self._silenced or not in_min:
                self._start(req, now)

    def _burst(self, now):
        prio = self._prio
        t = elapsed(now, self._t0)
        per = _PERIOD[prio]
        if t >= per:  # next burst: move the origin (no tick overflow however long)
            self._first = False
            t %= per
            self._t0 = ticks_add(now, -t)
        return self._level_at(AUDITORY[prio], t)

    def _start(self, prio, now):
        self._prio = prio
        self._t0 = now
        self._first = True
        self._silenced = False

    @staticmethod
    def _level_at(pat, t):
        td = pat[0]
        starts = pat[2]
        i = 0
        n = len(starts)
        while i < n:
            dt = t - starts[i]
            if dt < 0:
                break
            if dt < td:
                return _pulse_level(td, pat[1], dt)
            i += 1
        return 0

    # --- visual -------------------------------------------------------------------------
    def _show(self, now, prio):
        if prio != self._vprio:
            self._vprio = prio
            self._vt0 = now
        want = _GREEN_BIT if prio == P_NONE else 0  # green: monitoring, no alarm shown
        if self._off:  # AUDIO OFF: green flashes, whatever else is shown
            t = elapsed(now, self._off_t0)
            if t >= AUDIO_OFF_GREEN[0]:
                t %= AUDIO_OFF_GREEN[0]
                self._off_t0 = ticks_add(now, -t)
            want = _GREEN_BIT if t < AUDIO_OFF_GREEN[1] else 0
        if prio:
            want |= self._lit(now, prio)
        if want != self._shown:  # the four LEDs set only on a change
            self._set_leds(want)

    def _lit(self, now, prio):
        """The bit of prio's colour if its LED is lit now (flashing by its pattern), else 0."""
        v = VISUAL[prio]
        per = v[1]
        if per:
            t = elapsed(now, self._vt0)
            if t >= per:
                t %= per
                self._vt0 = ticks_add(now, -t)
            if t >= v[2]:
                return 0
        return 1 << v[0]

    def _set_leds(self, want):
        self._shown = want
        led = self._led
        for c in range(4):  # in colour order: red, yellow, cyan, green
            on = (want >> c) & 1
            if led[c] != on:
                led[c] = on
                self.leds.set(c, bool(on))


def _pulse_level(td, ramp, dt):
    """Envelope level (0..RAMP_STEPS) dt ms into a pulse of t_d ms with ramps of `ramp` ms:
    1 at the start, full at `ramp`, down from `ramp` before the end, 0 from t_d on."""
    if dt < 0 or dt >= td:
        return 0
    rise = 1 + dt * (RAMP_STEPS - 1) // ramp
    fall = 1 + (td - dt) * (RAMP_STEPS - 1) // ramp
    lvl = rise if rise < fall else fall
    return RAMP_STEPS if lvl > RAMP_STEPS else lvl
