# test_berrymed.py: BerryMed BCI decoder (REQ-SEN-01..05); runs on CPython and MicroPython.
from bedside.readings import (
    F_MISSING,
    F_NO_FINGER,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    Q_GOOD,
    Q_LOW,
    Q_MARGINAL,
    Q_UNKNOWN,
    OxiReading,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING, load_oximeter
from bedside.sensors.berrymed import BAUD, BAUDS, FORMAT, FRAME_RATE, BerryMedDecoder
from mputil import alloc_per_call, skip

V11 = bytes.fromhex("8432074862")
V12 = bytes.fromhex("C43247165F")
V13 = bytes.fromhex("A000507F7F")


def test_module_constants_and_registry():
    assert FORMAT == "berrymed" and BAUD == 115200 and 9600 in BAUDS and FRAME_RATE == 100
    assert isinstance(load_oximeter("berrymed", OxiReading()), BerryMedDecoder)


def test_reference_vectors():
    """REQ-SEN-01: vectors 11, 12, 13; REQ-SEN-03, REQ-SEN-04: vector 13 (probe unplugged,
    no finger, PR 255, SpO2 127) gives no values and sensor-off at once."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    assert d.feed(V11, 5, 7) == EV_FRAME | EV_READING
    assert r.pr == 72 and r.spo2 == 98 and r.pleth == 50 and r.flags == 0
    assert r.quality == Q_MARGINAL and r.t_ms == 7 and r.count == 1
    d.feed(V12, 5, 17)
    assert r.pr == 150 and r.spo2 == 95 and d.beeps == 1
    d.feed(V13, 5, 27)  # probe unplugged, no finger, PR 255, SpO2 127
    assert r.pr == NONE and r.spo2 == NONE and r.pleth == NONE
    assert r.flags & F_SENSOR_OFF and r.flags & F_NO_FINGER and r.flags & F_MISSING
    assert r.quality == Q_UNKNOWN


def test_pr_bit7_and_strength_map():
    r = OxiReading()
    d = BerryMedDecoder(r)
    d.feed(bytes((0x88, 40, 0x45, 0x48, 97)), 5, 0)  # PR 128 + 72 = 200, strength 8
    assert r.pr == 200 and r.quality == Q_GOOD
    d.feed(bytes((0x81, 40, 0x05, 0x48, 97)), 5, 0)
    assert r.quality == Q_LOW
    d.feed(bytes((0x90, 40, 0x05, 0x48, 97)), 5, 0)  # no signal
    assert r.flags & F_SEARCHING
    d.feed(bytes((0x86, 40, 0x25, 0x48, 97)), 5, 0)  # pulse search
    assert r.flags & F_SEARCHING


def test_range_validation():
    """REQ-SEN-17: out-of-range values are NONE + F_MISSING."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    d.feed(bytes((0x86, 40, 0x45, 0x7B, 101)), 5, 0)  # PR 251, SpO2 101
    assert r.pr == NONE and r.spo2 == NONE and r.flags & F_MISSING and d.out_of_range == 2


def test_chunking():
    """REQ-SEN-02: any chunking gives the same readings."""
    data = (V11 + V12 + V13) * 3
    for chunk in (1, 2, 3, 4, 6, len(data)):
        r = OxiReading()
        d = BerryMedDecoder(r)
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            d.feed(part, len(part), 0)
        assert d.frames_ok == 9 and r.count == 9 and r.flags & F_SENSOR_OFF


def test_resync_after_garbage():
    """REQ-SEN-02: early head byte restarts; the next clean packet decodes."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    junk = bytes((0x05, 0x84, 0x32, 0x07, 0xFF, 0x10))
    assert d.feed(junk, len(junk), 0) & EV_ERROR
    d.feed(V11, 5, 0)
    assert r.pr == 72 and r.spo2 == 98 and r.count == 1


def test_sensor_off_at_once():
    """REQ-SEN-04: one packet with the probe-unplugged bit sets F_SENSOR_OFF."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    d.feed(V11, 5, 0)
    d.feed(bytes((0xA4, 50, 7, 72, 98)), 5, 10)
    assert r.flags & F_SENSOR_OFF


def test_no_allocation_per_frame():
    """REQ-SEN-05: decoding a packet allocates nothing."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    mv = memoryview((V11 + V12 + V13) * 10)

    def one():
        d.feed(mv, len(mv), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
