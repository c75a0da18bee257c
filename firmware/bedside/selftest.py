# selftest.py: the power-on self-test of the alarm signals (IEC 60601-1-8 practice, alarms.md
# "Self-test"): each LED colour in turn, then one tone, driven by timestamps like everything
# else. Any auditory alarm ends it at once: the self-test never delays a real alarm.
from bedside.alarms.patterns import CYAN, DUTY, GREEN, RAMP_STEPS, RED, YELLOW
from bedside.compat import const
from bedside.ticks import elapsed

_STEP_MS = const(300)
# (led colour or -1, tone on) per step, each _STEP_MS long
_STEPS = ((RED, 0), (YELLOW, 0), (CYAN, 0), (GREEN, 0), (-1, 1))


class SelfTest:
    def __init__(self, sounder, leds):
        self.sounder = sounder
        self.leds = leds
        self.running = False
        self._t0 = 0
        self._i = -1

    def start(self, now):
        self.running = True
        self._t0 = now
        self._i = -1

    def stop(self):
        """End now (done, or a real alarm needs the outputs): everything off."""
        if self.running:
            self.running = False
            self._apply(-1)

    def step(self, now, hz):
        """Drive the outputs; returns True while the self-test runs."""
        if not self.running:
            return False
        i = elapsed(now, self._t0) // _STEP_MS
        if i >= len(_STEPS):
            self.stop()
            return False
        if i != self._i:
            self._apply(-1)
            self._i = i
            led, tone = _STEPS[i]
            if led >= 0:
                self.leds.set(led, True)
            if tone:
                self.sounder.tone(hz, DUTY[RAMP_STEPS])
        return True

    def _apply(self, _i):
        self.sounder.off()
        for c in (RED, YELLOW, CYAN, GREEN):
            self.leds.set(c, False)
