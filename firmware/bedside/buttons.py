# buttons.py: debounced push button with short and long press (after Peter Hinch's Pushbutton).
# Pure: the board samples the pin and passes the level and now_ms; events come out.
from bedside.compat import const
from bedside.ticks import elapsed

NONE = const(0)
SHORT = const(1)  # released before long_ms
LONG = const(2)  # held for long_ms (fires once, while still held)


class Button:
    def __init__(self, debounce_ms=50, long_ms=1500):
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self._stable = 0  # debounced level (1 = pressed)
        self._raw = 0
        self._t_raw = 0  # when the raw level last changed
        self._t_press = 0
        self._long_done = False

    def update(self, pressed, now):
        """Feed the sampled level (truthy = pressed); returns NONE, SHORT or LONG."""
        p = 1 if pressed else 0
        if p != self._raw:
            self._raw = p
            self._t_raw = now
        ev = NONE
        if p != self._stable and elapsed(now, self._t_raw) >= self.debounce_ms:
            self._stable = p
            if p:
                self._t_press = now
                self._long_done = False
            elif not self._long_done:
                ev = SHORT
        if self._stable and not self._long_done and elapsed(now, self._t_press) >= self.long_ms:
            self._long_done = True
            ev = LONG
        return ev
