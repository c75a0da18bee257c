# mainloop.py: the one main-loop body, run by the Pico board layer and by the SIL alike, so the
# SIL tests what the Pico runs: key levels -> key events (bounded) -> Device.poll -> display
# step -> flash write-behind. The board owns only the clock, the pins and the watchdog.
# Every function here that runs each tick keeps its frame within 11 words (off the heap:
# tests/test_mpy_frames.py); the display is guarded with guard.Catch, not try/except as e.
from bedside.buttons import EVENTS, Keys
from bedside.compat import const
from bedside.guard import Catch

KEY_EVENTS_PER_TICK = const(2)  # a flood of key events never stalls the loop


class MainLoop:
    def __init__(self, dev, screen=None, keys=None):
        self.dev = dev
        self.screen = screen  # object with update(dev, now) -> None, or None
        self.keys = keys if keys is not None else Keys()
        self.key_events = 0
        self._catch = Catch(self._display_fault)

    def step(self, now, levels):
        """One tick. `levels`: the sampled key bits (bedside.buttons.K_*). Returns whether the
        device is healthy (the board feeds the watchdog only then)."""
        ev = self.keys.update(levels, now)
        if ev:  # a key event (rare): its own function keeps this frame small
            self._key_events(ev, now)
        dev = self.dev
        dev.poll(now)
        if self.screen is not None:
            self._display(now)  # after the alarms: never delays them
        dev.background(now)
        return dev.healthy()

    def _key_events(self, ev, now):
        dev = self.dev
        for _ in range(KEY_EVENTS_PER_TICK):
            if not ev:
                break
            self.key_events += 1
            dev.button(EVENTS[ev], now)
            ev = self.keys.next_event()

    def _display(self, now):
        with self._catch:  # not try/except ... as e: the frame stays off the heap
            self.screen.update(self.dev, now)
            self.dev.display_errors = self.screen.errors

    def _display_fault(self, e):
        dev = self.dev
        dev.display_errors += 1
        dev.fault("display", e)
