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
