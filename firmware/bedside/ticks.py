# ticks.py: wrap-aware millisecond tick arithmetic on the Pico's 30-bit tick period.
# The board layer masks the raw tick with MASK; the core only ever compares ticks through
# ticks_diff, so alarm delays, pauses and NIBP intervals stay right across the wrap.
from bedside.compat import const

PERIOD = const(1 << 30)  # the rp2 millisecond tick period: 2**30 ms (about 12.4 days)
MASK = const((1 << 30) - 1)
_HALF = const(1 << 29)


def ticks_add(t, delta):
    """t + delta on the tick circle."""
    return (t + delta) & MASK


def ticks_diff(a, b):
    """a - b in ms, signed; valid while |a - b| < 2**29 ms (about 6.2 days)."""
    return ((a - b + _HALF) & MASK) - _HALF


def elapsed(now, since):
    """Milliseconds from `since` to `now` (never negative)."""
    d = ((now - since + _HALF) & MASK) - _HALF
    return d if d > 0 else 0

AGE_MAX = const(1 << 28)  # ages saturate here: about 3.1 days, well inside the 2**29 limit


class Age:
    """Time since an event that saturates instead of wrapping. ms(now) must be called at least
    once every few days (the rules call it every evaluation); past AGE_MAX (or for an event
    that never happened) it stays at AGE_MAX for good, so a week-old reading is old, never 0."""

    def __init__(self, now=None):
        self.t = 0
        self.sat = True  # never happened: as old as can be
        if now is not None:
            self.mark(now)

    def mark(self, now):
        """The event happens now."""
        self.t = now
        self.sat = False

    def clear(self):
        """Forget the event (it never happened)."""
        self.sat = True

    def ms(self, now):
        if self.sat:
            return AGE_MAX
        d = ((now - self.t + _HALF) & MASK) - _HALF
        if d < 0:
            d = 0
        elif d >= AGE_MAX:
            self.sat = True
            return AGE_MAX
        return d

    def s(self, now):
        return self.ms(now) // 1000

    def known(self):
        return not self.sat
