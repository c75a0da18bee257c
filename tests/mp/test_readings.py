# test_readings.py: the normalised readings (REQ-SEN-38); runs on CPython and MicroPython.
from bedside.readings import (
    F_ARTIFACT,
    F_MISSING,
    F_NO_FINGER,
    F_SENSOR_OFF,
    NONE,
    OFF_FLAGS,
    Q_GOOD,
    Q_UNKNOWN,
    OxiReading,
)
from bedside.sensors import load_oximeter
from mputil import alloc_per_call, nonin2_packet, skip


def test_value_freshness_only_moves_with_a_valid_value():
    """REQ-SEN-38: spo2_t_ms / pr_t_ms say when each value was last valid (a number, probe on);
    t_ms says when any reading was published."""
    r = OxiReading()
    assert r.spo2_t_ms == NONE and r.pr_t_ms == NONE and OFF_FLAGS == F_SENSOR_OFF | F_NO_FINGER
    r.publish(97, 72, Q_GOOD, 0, 50, NONE, 1000)
    assert (r.t_ms, r.spo2_t_ms, r.pr_t_ms) == (1000, 1000, 1000)
    r.publish(NONE, 74, Q_GOOD, F_MISSING | F_ARTIFACT, 50, NONE, 2000)  # SpO2 missing
    assert (r.t_ms, r.spo2_t_ms, r.pr_t_ms) == (2000, 1000, 2000)
    r.publish(96, NONE, Q_GOOD, F_MISSING, 50, NONE, 3000)  # pulse rate missing
    assert (r.spo2_t_ms, r.pr_t_ms) == (3000, 2000)
    for i, off in enumerate((F_SENSOR_OFF, F_NO_FINGER)):  # held values with the probe off
        r.publish(96, 74, Q_UNKNOWN, off, NONE, NONE, 4000 + i)
        assert r.t_ms == 4000 + i and (r.spo2_t_ms, r.pr_t_ms) == (3000, 2000)
    r.publish(98, 70, Q_GOOD, 0, 50, NONE, 5000)
    assert (r.spo2_t_ms, r.pr_t_ms) == (5000, 5000)


def test_decoder_sets_freshness_without_allocation():
    """REQ-SEN-38, REQ-SEN-05: a decoder's publish() moves the timestamps, allocation-free."""
    r = OxiReading()
    d = load_oximeter("nonin2", r)
    good = nonin2_packet(72, 97)
    d.feed(good, len(good), 700)
    assert r.count == 1 and r.spo2_t_ms == 700 and r.pr_t_ms == 700
    mv = memoryview(nonin2_packet(72, 97))

    def one():
        d.feed(mv, len(mv), 900)

    one()
    assert r.count == 2 and r.spo2_t_ms == 900 and r.pr_t_ms == 900
    per = alloc_per_call(one, 30)
    if per is None:
        skip("allocation is measured on MicroPython")
    assert per == 0, per
