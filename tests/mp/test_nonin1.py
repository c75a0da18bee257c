# test_nonin1.py: Nonin Format #1 decoder (REQ-SEN-01..05, -36); runs on CPython and MicroPython.
# A frame is used once the next STATUS byte closes it, and published once LOCK_FRAMES (2) closed
# frames in a row were seen; sensor-off changes when two frames in a row agree (REQ-SEN-36).
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
from bedside.sensors.nonin1 import BAUD, FORMAT, FRAME_RATE, LOCK_FRAMES, Nonin1Decoder
from mputil import alloc_per_call, skip

V10 = bytes.fromhex("80486281165FC37F7F")
LEAD = bytes.fromhex("804862")  # a frame before the one under test: completes the lock
CLOSE = b"\x80"  # the next frame's STATUS byte: closes the frame before it


def locked(*frames):
    """LEAD, the frames, then CLOSE: every frame given is published."""
    return LEAD + b"".join(frames) + CLOSE


def test_module_constants_and_registry():
    assert FORMAT == "nonin1" and BAUD == 9600 and FRAME_RATE == 1
    assert isinstance(load_oximeter("nonin1", OxiReading()), Nonin1Decoder)


def test_reference_vector_10():
    """REQ-SEN-01, REQ-SEN-03: 72/98 ; 150/95 ; SNSD + HR 511 + SpO2 127."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    assert LOCK_FRAMES == 2
    assert d.feed(LEAD, 3, 0) == 0 and d.feed(V10[:3], 3, 50) == 0  # LEAD closed: locking
    assert r.count == 0 and d.frames_ok == 1
    assert d.feed(V10[3:4], 1, 100) == EV_FRAME | EV_READING  # closes 72/98: published
    assert r.pr == 72 and r.spo2 == 98 and r.flags == 0 and r.quality == Q_GOOD
    assert r.t_ms == 100 and r.count == 1
    d.feed(V10[4:7], 3, 1100)
    assert r.pr == 150 and r.spo2 == 95
    d.feed(V10[7:] + V10[6:7], 3, 2100)  # closed by the STATUS of another SNSD frame
    assert r.pr == NONE and r.spo2 == NONE and r.flags & F_MISSING
    assert not r.flags & F_SENSOR_OFF  # SNSD in one frame only: not yet (two must agree)
    d.feed(V10[7:] + CLOSE, 3, 3100)
    assert r.flags & F_SENSOR_OFF
    assert d.frames_ok == 5 and r.count == 4 and d.bytes_skipped == 0


def test_status_bits():
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(locked(bytes((0xA0 | 0x10 | 0x04, 70, 95))), 7, 0)  # OOT, LPRF, ARTF
    assert r.flags & F_SEARCHING and r.flags & F_LOW_PERF and r.flags & F_ARTIFACT
    assert r.quality == Q_LOW
    d = Nonin1Decoder(r)
    d.feed(locked(bytes((0x88, 70, 95))), 7, 0)  # MPRF
    assert r.quality == Q_MARGINAL and r.flags == 0


def test_chunking():
    """REQ-SEN-02."""
    data = V10 * 4 + CLOSE
    for chunk in (1, 2, 4, 5, len(data)):
        r = OxiReading()
        d = Nonin1Decoder(r)
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            d.feed(part, len(part), 0)
        # 12 frames closed; the first only locks; SNSD every third frame never twice in a row
        assert d.frames_ok == 12 and r.count == 11 and not r.flags & F_SENSOR_OFF
        assert r.pr == NONE and r.flags & F_MISSING


def test_range_validation():
    """REQ-SEN-17: no checksum, so out-of-range values become NONE + F_MISSING, never numbers."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(locked(bytes((0x80, 0x48, 0x70))), 7, 0)  # SpO2 112
    assert r.spo2 == NONE and r.pr == 72 and r.flags & F_MISSING and d.out_of_range == 1
    d.feed(bytes((0x10, 0x60, 0x83, 0x20, 0x60, 0x80)), 6, 0)  # HR 400 (kept), HR 416
    assert r.pr == NONE and r.spo2 == 96 and r.flags & F_MISSING and d.out_of_range == 2


def test_resync_after_garbage():
    """REQ-SEN-02: an early status byte restarts the frame; clean data re-locks within
    LOCK_FRAMES frames."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    assert d.feed(bytes((0x12, 0x33, 0x80, 0x48)), 4, 0) & EV_ERROR
    d.feed(locked(V10[:3]), 7, 0)
    assert r.pr == 72 and r.spo2 == 98 and d.frames_bad == 1 and r.count == 1


def test_sensor_off_at_once():
    """REQ-SEN-04, REQ-SEN-36: SNSD in two frames in a row after good data (2 s: Format #1 is
    not a fast sensor-off source, see nonin1.py)."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(locked(V10[:3]), 7, 0)
    d.feed(bytes((0x48, 0x62)), 2, 0)
    d.feed(bytes((0xC0, 0x48, 0x62, 0xC0)), 4, 1000)
    assert not r.flags & F_SENSOR_OFF
    d.feed(bytes((0x48, 0x62, 0x80)), 3, 2000)
    assert r.flags & F_SENSOR_OFF
    d.feed(bytes((0x48, 0x62, 0x80)), 3, 3000)  # one frame without: still off
    assert r.flags & F_SENSOR_OFF
    d.feed(bytes((0x48, 0x62, 0x80)), 3, 4000)
    assert not r.flags & F_SENSOR_OFF and r.spo2 == 98


def test_stray_status_byte_never_publishes_sensor_off():
    """REQ-SEN-36: a stray byte with bits 7 and 6 set inserted after a STATUS byte heads a
    frame of real bytes (C0 48 62): it is the first frame after the resync, never published; a
    data byte inserted in a frame (80 00 48 | 62) is caught by the next byte."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    d.feed(locked(V10[:3]), 7, 0)
    d.feed(bytes((0x48, 0x62)), 2, 0)
    for junk in (bytes((0x80, 0xC0, 0x48, 0x62)), bytes((0x80, 0x00, 0x48, 0x62))):
        d.feed(junk, 4, 1000)
        assert not r.flags & F_SENSOR_OFF and r.spo2 == 98, junk
        for _ in range(3):
            d.feed(V10[:3], 3, 2000)
            assert not r.flags & F_SENSOR_OFF and r.spo2 == 98, junk
    assert d.frames_bad >= 2


def test_no_allocation_per_frame():
    """REQ-SEN-05: decoding a packet allocates nothing."""
    r = OxiReading()
    d = Nonin1Decoder(r)
    mv = memoryview(V10[:3] * 30)

    def one():
        d.feed(mv, len(mv), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
