# test_berrymed.py: BerryMed BCI decoder (REQ-SEN-01..05, -36); runs on CPython and MicroPython.
# A packet is used once the next head byte closes it; nothing is published before LOCK_FRAMES
# closed packets in a row; a change of SpO2, PR or sensor-off needs AGREE_PACKETS packets in a
# row (REQ-SEN-36): steady(p) repeats a packet that often and closes the last one.
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
from bedside.sensors.berrymed import (
    AGREE_PACKETS,
    BAUD,
    BAUDS,
    FORMAT,
    FRAME_RATE,
    LOCK_FRAMES,
    BerryMedDecoder,
)
from mputil import alloc_per_call, skip

V11 = bytes.fromhex("8432074862")
V12 = bytes.fromhex("C43247165F")
V13 = bytes.fromhex("A000507F7F")
N = max(LOCK_FRAMES, AGREE_PACKETS)
CLOSE = b"\x80"  # the next packet's head byte: closes the packet before it


def steady(pkt, n=N):
    """n copies of pkt and the next head byte: the packet is published (REQ-SEN-36)."""
    return pkt * n + CLOSE


def feed(d, data, t=0):
    return d.feed(data, len(data), t)


def test_module_constants_and_registry():
    assert FORMAT == "berrymed" and BAUD == 115200 and 9600 in BAUDS and FRAME_RATE == 100
    assert isinstance(load_oximeter("berrymed", OxiReading()), BerryMedDecoder)


def test_reference_vectors():
    """REQ-SEN-01: vectors 11, 12, 13; REQ-SEN-03, REQ-SEN-04: vector 13 (probe unplugged,
    no finger, PR 255, SpO2 127) gives no values and sensor-off at once."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    assert LOCK_FRAMES == 3 and AGREE_PACKETS == 3
    assert feed(d, V11 * N, 7) == 0 and r.count == 0  # the last one is not closed yet
    assert feed(d, CLOSE, 7) == EV_FRAME | EV_READING
    assert r.pr == 72 and r.spo2 == 98 and r.pleth == 50 and r.flags == 0
    assert r.quality == Q_MARGINAL and r.t_ms == 7 and r.count == 1
    feed(d, V12 + V12 + V12 + CLOSE, 17)
    assert r.pr == 150 and r.spo2 == 95 and d.beeps == 3
    feed(d, steady(V13), 27)  # unplugged, no finger, PR 255, SpO2 127
    assert r.pr == NONE and r.spo2 == NONE and r.pleth == NONE
    assert r.flags & F_SENSOR_OFF and r.flags & F_NO_FINGER and r.flags & F_MISSING
    assert r.quality == Q_UNKNOWN


def test_pr_bit7_and_strength_map():
    r = OxiReading()
    d = BerryMedDecoder(r)
    feed(d, steady(bytes((0x88, 40, 0x45, 0x48, 97))))  # PR 128 + 72 = 200, strength 8
    assert r.pr == 200 and r.quality == Q_GOOD
    feed(d, steady(bytes((0x81, 40, 0x05, 0x48, 97))))
    assert r.quality == Q_LOW
    feed(d, steady(bytes((0x90, 40, 0x05, 0x48, 97))))  # no signal
    assert r.flags & F_SEARCHING
    feed(d, steady(bytes((0x86, 40, 0x25, 0x48, 97))))  # pulse search
    assert r.flags & F_SEARCHING


def test_range_validation():
    """REQ-SEN-17: out-of-range values are NONE + F_MISSING."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    feed(d, steady(bytes((0x86, 40, 0x45, 0x7B, 101)), 1))  # PR 251, SpO2 101
    assert d.out_of_range == 2 and r.count == 0  # counted at once, published when locked
    feed(d, steady(bytes((0x86, 40, 0x45, 0x7B, 101))))
    assert r.pr == NONE and r.spo2 == NONE and r.flags & F_MISSING and d.out_of_range == 8


def test_chunking():
    """REQ-SEN-02."""
    data = steady(V11) + steady(V12) + steady(V13)
    for chunk in (1, 2, 3, 4, 6, len(data)):
        r = OxiReading()
        d = BerryMedDecoder(r)
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            d.feed(part, len(part), 0)
        # each CLOSE head (0x80) is cut by the next real head: a resync before every group
        assert d.frames_ok == 9 and r.count == 3 and r.flags & F_SENSOR_OFF


def test_resync_after_garbage():
    """REQ-SEN-02: early head byte restarts; clean packets re-lock within LOCK_FRAMES."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    junk = bytes((0x05, 0x84, 0x32, 0x07, 0xFF, 0x10))
    assert d.feed(junk, len(junk), 0) & EV_ERROR
    feed(d, steady(V11))
    assert r.pr == 72 and r.spo2 == 98 and r.count == 1


def test_sensor_off_at_once():
    """REQ-SEN-04, REQ-SEN-36: the probe-unplugged bit in AGREE_PACKETS packets in a row (30
    ms)."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    feed(d, V11 * N)
    off = bytes((0xA4, 50, 7, 72, 98))
    feed(d, off * (AGREE_PACKETS - 1) + V11, 10)
    assert not r.flags & F_SENSOR_OFF
    feed(d, off * AGREE_PACKETS + V11, 20)
    assert r.flags & F_SENSOR_OFF


def test_single_bad_packet_never_publishes():
    """REQ-SEN-36: found by the false-sensor-off measurement: a data byte inserted in a packet
    shifts the next bytes (the pleth byte lands in byte 3, often with the no-finger bit); a
    flipped bit sets probe-unplugged or changes SpO2: none of it is published."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    ok = bytes((0x87, 0x1C, 0x04, 0x48, 0x62))
    feed(d, steady(ok))
    assert r.spo2 == 98 and r.count == 1
    bad = (
        ok[:2] + b"\x30" + ok[2:],  # inserted byte: 87 1C 30 04 48 | 62
        bytes((0xA7,)) + ok[1:],  # probe-unplugged bit flipped
        ok[:2] + bytes((0x14,)) + ok[3:],  # no-finger bit flipped
        ok[:4] + bytes((0x22,)),  # SpO2 98 -> 34
    )
    for b in bad:
        data = ok * 4 + b + ok * 4 + CLOSE
        for i in range(len(data)):
            d.feed(data[i : i + 1], 1, 100)
            assert not r.flags & (F_SENSOR_OFF | F_NO_FINGER) and r.spo2 == 98, b
    assert d.unconfirmed >= 3


def test_no_allocation_per_frame():
    """REQ-SEN-05: decoding a packet allocates nothing."""
    r = OxiReading()
    d = BerryMedDecoder(r)
    mv = memoryview(steady(V11) + steady(V12) + steady(V13))

    def one():
        d.feed(mv, len(mv), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
