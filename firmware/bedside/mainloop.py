# mainloop.py: the one main-loop body, run by the Pico board layer and by the SIL alike, so the
# SIL tests what the Pico runs: key levels -> key events (bounded) -> Device.poll -> display
# step -> flash write-behind. The board owns only the clock, the pins and the watchdog.
from bedside.buttons import EVENTS, Keys
from bedside.compat import const

KEY_EVENTS_PER_TICK = const(2)  # a flood of key events never stalls the loop


class MainLoop:
    def __init__(self, dev, screen=None, keys=None):
        self.dev = dev
        self.screen = screen  # object with update(dev, now) -> None, or None
        self.keys = keys if keys is not None else Keys()
        self.key_events = 0

    def step(self, now, levels):
        """One tick. `levels`: the sampled key bits (bedside.buttons.K_*). Returns whether the
        device is healthy (the board feeds the watchdog only then)."""
        dev = self.dev
        keys = self.keys
        ev = keys.update(levels, now)
        for _ in range(KEY_EVENTS_PER_TICK):
            if not ev:
                break
            self.key_events += 1
            dev.button(EVENTS[ev], now)
            ev = keys.next_event()
        dev.poll(now)
        scr = self.screen
        if scr is not None:
            try:
                scr.update(dev, now)  # after the alarms: never delays them
                dev.display_errors = scr.errors
            except Exception as e:
                dev.display_errors += 1
                dev.fault("display", e)
        dev.background(now)
        return dev.healthy()
