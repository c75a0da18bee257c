# test_nonin7.py: Nonin Format #7 decoder (REQ-SEN-01..05); runs on CPython and MicroPython.
from bedside.readings import (
    F_ARTIFACT,
    F_LOW_BATT,
    F_MISSING,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    Q_GOOD,
    Q_MARGINAL,
    OxiReading,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING, load_oximeter
from bedside.sensors.nonin7 import BAUD, FORMAT, FRAME_RATE, Nonin7Decoder
from mputil import alloc_per_call, skip


def frame(status, pleth, flt):
    """One Format #7 frame from the reference rule (protocols.md 1.4)."""
    hi = (pleth >> 8) & 0xFF
    lo = pleth & 0xFF
    return bytes((status, hi, lo, flt, (status + hi + lo + flt) & 0xFF))


def packet(hr=72, spo2=97, status=0x82, pleth=0x4040, hr_d=None, spo2_d=None, stat2=0):
    # pleth 0x4040 keeps every non-status byte below 0x80 (no false lock inside the packet)
    out = bytearray()
    for f in range(1, 26):
        flt = 0
        if f == 1:
            flt = (hr >> 7) & 0x03
        elif f == 2:
            flt = hr & 0x7F
        elif f == 3:
            flt = spo2
        elif f == 5:
            flt = 0x55  # reserved: arbitrary
        elif f == 8:
            flt = stat2
        elif f == 9:
            flt = spo2 if spo2_d is None else spo2_d
        elif f == 20:
            flt = ((hr if hr_d is None else hr_d) >> 7) & 0x03
        elif f == 21:
            flt = (hr if hr_d is None else hr_d) & 0x7F
        out += frame(status | (0x01 if f == 1 else 0), pleth, flt)
    return bytes(out)


def feed_all(d, data, t=0):
    return d.feed(data, len(data), t)


def test_module_constants_and_registry():
    assert FORMAT == "nonin7" and BAUD == 9600 and FRAME_RATE == 75
    d = load_oximeter("nonin7", OxiReading())
    assert isinstance(d, Nonin7Decoder)


def test_reference_vector_9():
    """REQ-SEN-01: protocols.md section 5 vector 9: SYNC, pleth 0x8123 = 33059, HR MSB 0."""
    r = OxiReading()
    d = Nonin7Decoder(r)
    assert d.feed(bytes.fromhex("8181230025"), 5, 0) == EV_FRAME
    assert r.pleth == 33059 and d.frames_ok == 1
    # the same bytes with a bad checksum are rejected
    d2 = Nonin7Decoder(OxiReading())
    assert d2.feed(bytes.fromhex("8181230026"), 5, 0) & EV_ERROR and d2.frames_ok == 0
    # first lock needs SYNC: a valid non-SYNC frame alone does not lock
    d3 = Nonin7Decoder(OxiReading())
    assert not d3.feed(frame(0x80, 5, 0), 5, 0) & EV_FRAME


def test_packet_values_and_chunking():
    """REQ-SEN-01, REQ-SEN-02: values decoded from packets; any chunking gives the same reading."""
    data = packet(hr=150, spo2=95, status=0x82) * 3
    for chunk in (1, 2, 3, 5, 7, 64, len(data)):
        r = OxiReading()
        d = Nonin7Decoder(r)
        ev = 0
        mv = memoryview(data)
        for i in range(0, len(data), chunk):
            part = mv[i : i + chunk]
            ev |= d.feed(part, len(part), 1000)
        assert ev & EV_READING
        assert r.spo2 == 95 and r.pr == 150 and r.quality == Q_GOOD, (chunk, r.spo2, r.pr)
        assert d.packets == 3 and d.frames_bad == 0 and r.count == 3
        assert r.t_ms == 1000 and r.pleth == 0x4040


def test_hr_above_127_masked():
    """REQ-SEN-01: 9-bit HR across MSB/LSB (vector 8 style: MSB 3 -> part of 511)"""
    r = OxiReading()
    d = Nonin7Decoder(r)
    data = packet(hr=300, spo2=88, status=0x86)
    feed_all(d, data)
    assert r.pr == 300 and r.spo2 == 88 and r.quality == Q_MARGINAL


def test_display_option():
    r = OxiReading()
    d = Nonin7Decoder(r, display=True)
    data = packet(hr=70, spo2=96, hr_d=90, spo2_d=93)
    feed_all(d, data)
    assert r.pr == 90 and r.spo2 == 93


def test_sentinels_become_none():
    """REQ-SEN-03: HR 511 and SpO2 127 are "no value"."""
    r = OxiReading()
    d = Nonin7Decoder(r)
    data = packet(hr=511, spo2=127)
    feed_all(d, data)
    assert r.spo2 == NONE and r.pr == NONE and r.flags & F_MISSING
    r2 = OxiReading()
    feed_all(Nonin7Decoder(r2), packet(hr=72, spo2=120))  # out of range SpO2
    assert r2.spo2 == NONE and r2.flags & F_MISSING and r2.pr == 72


def test_flags():
    r = OxiReading()
    d = Nonin7Decoder(r)
    feed_all(d, packet(status=0x80 | 0x20 | 0x10))
    assert r.flags & F_ARTIFACT and r.flags & F_SEARCHING
    r2 = OxiReading()
    feed_all(Nonin7Decoder(r2, stat2=True), packet(stat2=0x01))
    assert r2.flags & F_LOW_BATT
    r3 = OxiReading()
    feed_all(Nonin7Decoder(r3), packet(stat2=0x01))  # stat2 off by default (UNCONFIRMED)
    assert not r3.flags & F_LOW_BATT


def test_sensor_off_seen_on_first_frame():
    """REQ-SEN-04: SNSA (and SNSD, bit 6) on one frame sets sensor-off at once."""
    for bit in (0x08, 0x40):
        r = OxiReading()
        d = Nonin7Decoder(r)
        feed_all(d, packet())
        assert not r.flags & F_SENSOR_OFF
        d.feed(frame(0x80 | bit | 0x01, 0, 0), 5, 10)
        assert r.flags & F_SENSOR_OFF
    r = OxiReading()
    d = Nonin7Decoder(r, snsd=False)
    feed_all(d, packet(status=0xC2))
    assert not r.flags & F_SENSOR_OFF


def test_resync_after_garbage():
    """REQ-SEN-02: garbage (bit 7 set too), then clean data re-locks within one packet."""
    r = OxiReading()
    d = Nonin7Decoder(r)
    junk = bytes((0x81, 0x83, 0x10, 0x00, 0x77, 0xFF, 0x01, 0x81, 0xC5)) * 7
    feed_all(d, junk)
    feed_all(d, packet(hr=80, spo2=93) * 2)
    assert r.spo2 == 93 and r.pr == 80 and d.packets >= 1


def test_early_sync_is_frame_loss():
    # protocols.md vector 6 applied to #7: 23 frames then a new SYNC frame
    r = OxiReading()
    d = Nonin7Decoder(r)
    p = packet()
    d.feed(p[: 23 * 5], 23 * 5, 0)
    d.feed(p, len(p), 0)
    assert d.frame_losses == 1 and d.packets == 1


def test_no_allocation_per_frame():
    """REQ-SEN-05: steady-state decoding allocates nothing (MicroPython only)"""
    r = OxiReading()
    d = Nonin7Decoder(r)
    data = packet()
    mv = memoryview(data)

    def one():
        d.feed(mv, len(data), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
