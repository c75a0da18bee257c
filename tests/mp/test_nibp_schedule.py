# test_nibp_schedule.py: NIBP scheduling apart from the driver (REQ-SEN-14, REQ-SEN-15);
# runs on CPython and MicroPython, with the clock crossing the 2**30 ms tick wrap.
from bedside.nibp_schedule import NibpSchedule
from bedside.ticks import ticks_add

T0 = (1 << 30) - 5000
MIN = 60000


def t(ms):
    return ticks_add(T0, ms)


def test_off_by_default():
    """REQ-SEN-14: interval 0 (the default) is off: never due, no next time."""
    s = NibpSchedule()
    assert not s.due(t(0)) and not s.due(t(10 * 24 * 3600 * 1000 // 4))
    assert s.next_due_ms(t(0)) is None


def test_interval_from_cycle_start_across_wrap():
    """REQ-SEN-14, REQ-SYS-03: interval elapses from the last cycle START, across the tick
    wrap."""
    s = NibpSchedule()
    s.set_interval(5, t(0))
    assert not s.due(t(5 * MIN - 1))
    assert s.next_due_ms(t(1000)) == t(5 * MIN)
    assert s.due(t(5 * MIN))
    s.cycle_started(t(5 * MIN))
    assert not s.due(t(5 * MIN + 10)) and s.next_due_ms(t(5 * MIN + 10)) is None
    s.cycle_ended(t(5 * MIN + 40000))  # 40 s measurement
    assert not s.due(t(10 * MIN - 1))
    assert s.due(t(10 * MIN))  # 5 min after the START, not after the end


def test_min_gap_after_cycle_end():
    """REQ-SEN-15: at least min_gap_s between the end of one cycle and the next start."""
    s = NibpSchedule(interval_min=1, min_gap_s=30)
    assert not s.due(t(0))  # anchors now
    assert s.due(t(MIN))
    s.cycle_started(t(MIN))
    s.cycle_ended(t(MIN + 50000))  # long measurement: next interval start would be at 2 min
    assert not s.due(t(2 * MIN))  # only 10 s after the end
    assert s.next_due_ms(t(2 * MIN)) == t(MIN + 80000)
    assert not s.due(t(MIN + 79999))
    assert s.due(t(MIN + 80000))


def test_measure_now():
    """REQ-SEN-15: STAT request is due at once, but still respects the minimum gap."""
    s = NibpSchedule(min_gap_s=30)
    assert s.measure_now(t(0))
    assert s.due(t(0)) and s.next_due_ms(t(0)) == t(0)
    s.cycle_started(t(0))
    assert not s.measure_now(t(100))  # a cycle is running: that is the measurement
    s.cycle_ended(t(40000))
    s.measure_now(t(41000))
    assert not s.due(t(41000)) and s.next_due_ms(t(41000)) == t(70000)
    assert s.due(t(70000))


def test_set_interval_off_and_change():
    s = NibpSchedule(interval_min=5)
    s.due(t(0))
    s.set_interval(0, t(1000))
    assert not s.due(t(6 * MIN)) and s.next_due_ms(t(6 * MIN)) is None
    s.set_interval(10, t(6 * MIN))  # still anchored at the first due() call
    assert s.due(t(10 * MIN))


def test_due_latched_over_long_idle():
    # an interval that became due stays due while nobody starts a cycle (no wrap-back)
    s = NibpSchedule(interval_min=15, min_gap_s=0)
    s.due(t(0))
    assert s.due(t(15 * MIN))
    far = 15 * MIN + (1 << 29) + 1000  # beyond the ticks_diff range
    assert s.due(t(far))
