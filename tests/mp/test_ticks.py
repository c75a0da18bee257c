# test_ticks.py: wrap-aware tick arithmetic on the Pico's 2**30 ms period (REQ-SYS-03).
from bedside.ticks import MASK, PERIOD, elapsed, ticks_add, ticks_diff


def test_diff_across_the_wrap():
    """REQ-SYS-03: differences and elapsed time are right across the 2**30 wrap."""
    before = PERIOD - 5
    after = ticks_add(before, 10)
    assert after == 5
    assert ticks_diff(after, before) == 10
    assert ticks_diff(before, after) == -10
    assert elapsed(after, before) == 10
    assert elapsed(before, after) == 0  # never negative


def test_add_wraps_and_masks():
    """REQ-SYS-03: ticks_add wraps at 2**30 and masks to 30 bits."""
    assert ticks_add(MASK, 1) == 0
    assert ticks_add(0, -1) == MASK
    assert ticks_diff(ticks_add(123, 1 << 28), 123) == 1 << 28


def test_half_period_limit():
    """REQ-SYS-03: differences up to 2**29 - 1 ms (about 6.2 days) are exact."""
    t = 1000
    far = ticks_add(t, (1 << 29) - 1)
    assert ticks_diff(far, t) == (1 << 29) - 1
