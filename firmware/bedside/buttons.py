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


# The three keys of the device, as bits of the `levels` the board samples each tick.
K_ACK = const(1)
K_CHECK = const(2)
K_NIBP = const(4)
CHORD_MS = const(3000)  # CHECK + NIBP held together this long: alarm-signal self-test
# Events (names are what Device.button takes).
EVENTS = (None, "ack", "reset", "check", "nibp", "selftest", "check_hold", "nibp_hold")
E_ACK = const(1)
E_RESET = const(2)
E_CHECK = const(3)
E_NIBP = const(4)
E_SELFTEST = const(5)
E_CHECK_HOLD = const(6)  # CHECK held alone: MOAA/S score entry (docs/session.md)
E_NIBP_HOLD = const(7)  # NIBP held alone: infusion start/stop, confirmed with CHECK


class Keys:
    """The one key mapping, used by the Pico board layer and the SIL alike: ACK short press =
    acknowledge (audio pause), ACK long press = alarm reset, CHECK, NIBP start/stop; CHECK and
    NIBP held together for CHORD_MS = self-test (a sequence that is not pressed by accident;
    their single events are then suppressed); CHECK or NIBP held alone for long_ms: the
    session's score entry and infusion start/stop (each confirmed by a further press).
    update() returns at most one event per call."""

    def __init__(self, debounce_ms=50, long_ms=1500):
        self.ack = Button(debounce_ms, long_ms)
        self.check = Button(debounce_ms, long_ms)
        self.nibp = Button(debounce_ms, long_ms)
        self._chord_t = 0
        self._chord = False  # both held (debounced)
        self._chord_used = False  # the chord fired or was started: no single events until release
        self._queue = bytearray(4)  # events not yet returned (several in one tick)
        self._qn = 0
        self._rest = True  # no key held or settling, no chord, nothing queued

    def _push(self, ev):
        if self._qn < len(self._queue):
            self._queue[self._qn] = ev
            self._qn += 1

    def update(self, levels, now):
        """Feed the sampled key levels (bits K_*); returns an event E_* or 0."""
        if not levels and self._rest:  # every tick: no key down, none settling, none queued
            return 0  # (what _update gives then, without its calls)
        ev = self._update(levels, now)
        a = self.ack
        c = self.check
        n = self.nibp
        self._rest = not (
            a._raw or a._stable or c._raw or c._stable or n._raw or n._stable or self._chord
            or self._chord_used or self._qn or self._chord_t is None
        )  # fmt: skip
        return ev

    def _update(self, levels, now):
        ea = self.ack.update(levels & K_ACK, now)
        ec = self.check.update(levels & K_CHECK, now)
        en = self.nibp.update(levels & K_NIBP, now)
        both = self.check._stable and self.nibp._stable
        if both and not self._chord:
            self._chord = True
            self._chord_used = True
            self._chord_t = now
        elif both and self._chord_t is not None and elapsed(now, self._chord_t) >= CHORD_MS:
            self._push(E_SELFTEST)
            self._chord_t = None  # fire once per hold
        if not both:
            self._chord = False
            if self._chord_t is None:
                self._chord_t = 0
            if self._chord_used and not self.check._stable and not self.nibp._stable:
                self._chord_used = False
                ec = en = NONE  # the release of a chord is not a key press
        if ea == SHORT:
            self._push(E_ACK)
        elif ea == LONG:
            self._push(E_RESET)
        if not self._chord_used:
            if ec == SHORT:
                self._push(E_CHECK)
            elif ec == LONG:
                self._push(E_CHECK_HOLD)
            if en == SHORT:
                self._push(E_NIBP)
            elif en == LONG:
                self._push(E_NIBP_HOLD)
        return self.next_event()

    def next_event(self):
        if not self._qn:
            return 0
        ev = self._queue[0]
        for i in range(1, self._qn):
            self._queue[i - 1] = self._queue[i]
        self._qn -= 1
        return ev
