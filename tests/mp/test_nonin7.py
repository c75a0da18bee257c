# test_nonin7.py: Nonin Format #7 decoder (REQ-SEN-01..05, -35); runs on CPython and MicroPython.
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
from bedside.sensors.nonin7 import BAUD, FORMAT, FRAME_RATE, LOCK_FRAMES, Nonin7Decoder
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


# The first frame of a next packet: it confirms frame 25 before it (REQ-SEN-35); the packet
# itself completes when its frame 25 arrives valid in phase (frame 25's FLOAT is reserved).
NEXT = frame(0x83, 0x4040, 0)


def feed_all(d, data, t=0):
    """Feed data, then NEXT (which confirms the last frame of data)."""
    return d.feed(data + NEXT, len(data) + 5, t)


def test_module_constants_and_registry():
    assert FORMAT == "nonin7" and BAUD == 9600 and FRAME_RATE == 75
    d = load_oximeter("nonin7", OxiReading())
    assert isinstance(d, Nonin7Decoder)


def test_reference_vector_9():
    """REQ-SEN-01: protocols.md section 5 vector 9: SYNC, pleth 0x8123 = 33059, HR MSB 0
    (REQ-SEN-35: published once LOCK_FRAMES = 3 valid frames arrived in phase)."""
    r = OxiReading()
    d = Nonin7Decoder(r)
    assert d.feed(bytes.fromhex("8181230025"), 5, 0) == 0  # valid: not yet locked
    assert d.frames_ok == 1 and r.pleth == NONE
    more = frame(0x80, 0x8123, 0) * (LOCK_FRAMES - 1)
    assert d.feed(more, len(more), 0) == EV_FRAME
    assert r.pleth == 33059 and d.frames_ok == 3
    # the same bytes with a bad checksum are rejected
    d2 = Nonin7Decoder(OxiReading())
    assert d2.feed(bytes.fromhex("8181230026"), 5, 0) & EV_ERROR and d2.frames_ok == 0
    # first lock needs SYNC: a valid non-SYNC frame alone does not lock
    d3 = Nonin7Decoder(OxiReading())
    assert not d3.feed(frame(0x80, 5, 0), 5, 0) & EV_FRAME


def test_packet_values_and_chunking():
    """REQ-SEN-01, REQ-SEN-02: values decoded from packets; any chunking gives the same
    reading."""
    data = packet(hr=150, spo2=95, status=0x82) * 3 + NEXT
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
    """REQ-SEN-04: SNSA (and SNSD, bit 6) on one frame sets sensor-off at once (as soon as the
    next frame confirms it, 13 ms later: REQ-SEN-35)."""
    for bit in (0x08, 0x40):
        r = OxiReading()
        d = Nonin7Decoder(r)
        p = packet()
        d.feed(p, len(p), 0)
        assert not r.flags & F_SENSOR_OFF
        d.feed(frame(0x80 | bit | 0x01, 0, 0), 5, 10)
        assert not r.flags & F_SENSOR_OFF and r.count == 1
        d.feed(frame(0x80 | bit, 0, 0), 5, 23)
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
    feed_all(d, p)
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
        skip("allocation is measured on MicroPython")
    assert per == 0, per


def test_mislocked_frame_never_publishes_sensor_off():
    """REQ-SEN-35: the reported case: with no start byte, windows that pass the checksum by
    chance after a resync (here STATUS 0xC1, a SYNC frame with bit 6 = SNSD, and one more frame
    in phase) followed by bytes that are no frame must not publish "sensor off"."""
    r = OxiReading()
    d = Nonin7Decoder(r)
    good = packet()
    d.feed(good * 2, 2 * len(good), 0)
    assert r.count == 2 and not r.flags & F_SENSOR_OFF
    fake = frame(0xC1, 0x1234, 0x00) + frame(0xC0, 0x1234, 0x00)
    tail = good[7:60]  # a real packet cut out of phase
    data = b"\x55" + fake + tail + good * 2 + NEXT
    seen_off = False
    for i in range(len(data)):
        d.feed(data[i : i + 1], 1, 100)
        seen_off = seen_off or bool(r.flags & F_SENSOR_OFF)
    assert not seen_off and r.count == 4 and r.spo2 == 97


def test_rotated_window_after_lost_byte_never_publishes_sensor_off():
    """REQ-SEN-35: found by the false-sensor-off measurement: a lost PLETH MSB equal to the
    previous frame's checksum byte leaves a window holding the real frame's bytes rotated, so
    while resyncing (an earlier lost byte) its checksum passes and the following frames are in
    phase. Its STATUS (here 0x9B: SYNC + SNSA) must not publish sensor-off; the early real SYNC
    drops that packet."""
    a = frame(0x80, 0x7F7F, 0x1D)  # checksum byte 0x9B
    b = frame(0x82, 0x9B45, 0x62)  # 82 9B 45 62 C4: PLETH MSB 0x9B
    assert a[4] == 0x9B and b[1] == 0x9B
    good = packet()
    frames = [good[i : i + 5] for i in range(0, len(good), 5)]
    damaged = b"".join(frames[:7]) + frames[7][1:] + frames[8]  # lost byte: resyncing
    damaged += a + b[:1] + b[2:] + b"".join(frames[11:])
    r = OxiReading()
    d = Nonin7Decoder(r)
    data = good + damaged + good * 2 + NEXT
    seen_off = False
    for i in range(len(data)):
        d.feed(data[i : i + 1], 1, 100)
        seen_off = seen_off or bool(r.flags & F_SENSOR_OFF)
    assert not seen_off and r.count == 3 and r.spo2 == 97
    assert d.frame_losses >= 2


def test_sensor_off_after_resync_within_lock_frames():
    """REQ-SEN-35, REQ-SEN-04: a real sensor-off right after a resync shows on the
    LOCK_FRAMES-th frame in phase."""
    for bit in (0x08, 0x40):
        r = OxiReading()
        d = Nonin7Decoder(r)
        feed_all(d, packet())
        d.feed(b"\x55\x55", 2, 10)
        off = packet(status=0x80 | bit, hr=511, spo2=127)
        for i in range(LOCK_FRAMES):
            assert not r.flags & F_SENSOR_OFF, i
            d.feed(off[i * 5 : i * 5 + 5], 5, 20)
        assert r.flags & F_SENSOR_OFF
