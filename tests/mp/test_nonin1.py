# test_nonin1.py: Nonin Format #1 decoder (REQ-SEN-01..05); runs on CPython and MicroPython.
from bedside.readings import (
    F_ARTIFACT,
    F_LOW_PERF,
    F_MISSING,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    Q_GOOD,
    Q_LOW,
    Q_MARGINAL,
    OxiReading,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING, load_oximeter
from bedside.sensors.nonin1 import BAUD, FORMAT, FRAME_RATE, Nonin1Decoder
from mputil import alloc_per_call, skip

V10 = bytes.fromhex("80486281165FC37F7F")


def test_module_constants_and_registry():
    assert FORMAT == "nonin1" and BAUD == 9600 and FRAME_RATE == 1
    assert isinstance(load_oximeter("nonin1", OxiReading()), Nonin1Decoder)


def test_reference_vector_10():
    """REQ-SEN-01, REQ-SEN-03: 72/98 ; 150/95 ; SNSD + HR 511 + SpO2 127."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    assert d.feed(V10, 3, 100) == EV_FRAME | EV_READING
    assert r.pr == 72 and r.spo2 == 98 and r.flags == 0 and r.quality == Q_GOOD
    assert r.t_ms == 100 and r.count == 1
    d.feed(V10[3:], 3, 1100)
    assert r.pr == 150 and r.spo2 == 95
    d.feed(V10[6:], 3, 2100)
    assert r.pr == NONE and r.spo2 == NONE
    assert r.flags & F_SENSOR_OFF and r.flags & F_MISSING
    assert d.frames_ok == 3 and r.count == 3 and d.bytes_skipped == 0


def test_status_bits():
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(bytes((0xA0 | 0x10 | 0x04, 70, 95)), 3, 0)  # OOT, LPRF, ARTF
    assert r.flags & F_SEARCHING and r.flags & F_LOW_PERF and r.flags & F_ARTIFACT
    assert r.quality == Q_LOW
    d.feed(bytes((0x88, 70, 95)), 3, 0)  # MPRF
    assert r.quality == Q_MARGINAL and r.flags == 0


def test_chunking():
    """REQ-SEN-02: any chunking gives the same readings."""
    data = V10 * 4
    for chunk in (1, 2, 4, 5, len(data)):
        r = OxiReading()
        d = Nonin1Decoder(r)
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            d.feed(part, len(part), 0)
        assert d.frames_ok == 12 and r.count == 12 and r.flags & F_SENSOR_OFF


def test_range_validation():
    """REQ-SEN-17: no checksum, so out-of-range values become NONE + F_MISSING, never numbers."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(bytes((0x80, 0x48, 0x70)), 3, 0)  # SpO2 112
    assert r.spo2 == NONE and r.pr == 72 and r.flags & F_MISSING and d.out_of_range == 1
    d.feed(bytes((0x83, 0x10, 0x60)), 3, 0)  # HR 400: at the bound, kept
    d.feed(bytes((0x83, 0x20, 0x60)), 3, 0)  # HR 416 > PR_MAX
    assert r.pr == NONE and r.spo2 == 96 and r.flags & F_MISSING


def test_resync_after_garbage():
    """REQ-SEN-02: early status byte restarts the frame; clean data re-locks within one frame."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    assert d.feed(bytes((0x12, 0x33, 0x80, 0x48)), 4, 0) & EV_ERROR
    d.feed(V10[:3], 3, 0)
    assert r.pr == 72 and r.spo2 == 98 and d.frames_bad == 1 and r.count == 1


def test_sensor_off_at_once():
    """REQ-SEN-04: SNSD on the next frame after good data."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(V10[:3], 3, 0)
    d.feed(bytes((0xC0, 0x48, 0x62)), 3, 1000)
    assert r.flags & F_SENSOR_OFF


def test_no_allocation_per_frame():
    """REQ-SEN-05: decoding a packet allocates nothing."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    mv = memoryview(V10 * 10)

    def one():
        d.feed(mv, len(mv), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
