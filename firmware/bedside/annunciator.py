# annunciator.py: drives the sounder and LEDs from the alarm priorities, by timestamps.
# Called every main-loop tick with now_ms; never sleeps. Plays only the highest-priority
# auditory pattern; a started burst completes its minimum (half a HIGH, a whole MEDIUM)
# unless audio is inactivated; shows the highest visible priority on its LED.
# The sounder and LED objects are injected (board layer or SIL): sounder.tone(hz, duty_u16),
# sounder.off(); leds.set(color, on).
from bedside.alarms.conditions import P_NONE
from bedside.alarms.patterns import AUDITORY, FULL_DUTY, GREEN, RAMP_STEPS, VISUAL, period
from bedside.ticks import elapsed


class Annunciator:
    def __init__(self, sounder, leds, settings):
        self.sounder = sounder
        self.leds = leds
        self.settings = settings
        self._prio = P_NONE  # auditory pattern now playing
        self._t0 = 0  # its burst start
        self._silenced = False  # ACK pressed: no minimum completion
        self._level = 0  # duty level applied (0 = off)
        self._vprio = -1  # visual priority shown
        self._vt0 = 0
        self._led = bytearray(4)  # applied LED states
        self.tone_on = False
        self.test_until = None  # self-test / lamp test end (set by the device)

    def silence(self):
        """Audio inactivated by the operator: stop the running burst now."""
        self._silenced = True

    def step(self, now, audible, visible):
        self._sound(now, audible)
        self._show(now, visible)

    # --- auditory -----------------------------------------------------------------------
    def _sound(self, now, req):
        cur = self._prio
        if req > cur:
            self._start(req, now)
        elif req < cur:
            pat = AUDITORY[cur]
            min_end = pat[2][pat[4] - 1] + pat[0]  # end of the last pulse that must complete
            in_min = elapsed(now, self._t0) < min_end
            if self._silenced or not in_min:
                self._start(req, now)
        level = 0
        if self._prio:
            level = self._level_at(AUDITORY[self._prio], elapsed(now, self._t0))
        if level != self._level:
            self._level = level
            if level:
                self.sounder.tone(self.settings["sounder_hz"], FULL_DUTY * level // RAMP_STEPS)
            else:
                self.sounder.off()
            self.tone_on = level > 0

    def _start(self, prio, now):
        self._prio = prio
        self._t0 = now
        self._silenced = False

    @staticmethod
    def _level_at(pat, t):
        t %= period(pat)
        td = pat[0]
        ramp = pat[1]
        for start in pat[2]:
            dt = t - start
            if 0 <= dt < td:
                rise = dt * RAMP_STEPS // ramp + 1
                fall = (td - dt) * RAMP_STEPS // ramp
                lvl = rise if rise < fall else fall
                return RAMP_STEPS if lvl > RAMP_STEPS else (lvl if lvl > 0 else 1)
            if dt < 0:
                break
        return 0

    # --- visual -------------------------------------------------------------------------
    def _show(self, now, prio):
        if prio != self._vprio:
            self._vprio = prio
            self._vt0 = now
        want0 = want1 = want2 = 0
        want3 = 1 if prio == P_NONE else 0  # green: monitoring, no alarm shown
        if prio:
            color, per, on_ms = VISUAL[prio]
            lit = 1 if per == 0 or elapsed(now, self._vt0) % per < on_ms else 0
            if color == 0:
                want0 = lit
            elif color == 1:
                want1 = lit
            else:
                want2 = lit
        self._led_set(0, want0)
        self._led_set(1, want1)
        self._led_set(2, want2)
        self._led_set(GREEN, want3)

    def _led_set(self, color, on):
        if self._led[color] != on:
            self._led[color] = on
            self.leds.set(color, bool(on))
