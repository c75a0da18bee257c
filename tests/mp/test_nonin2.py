# test_nonin2.py: Nonin Format #2 decoder (REQ-SEN-01..04); runs on CPython and MicroPython.
from bedside.readings import F_MISSING, F_SENSOR_OFF, NONE, OxiReading
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING
from bedside.sensors.nonin2 import Nonin2Decoder
from mputil import alloc_per_call, nonin2_frame, nonin2_packet, skip


def packet(hr=72, spo2=97, status=0x82, pleth=60):
    return nonin2_packet(hr, spo2, status, pleth)


def test_reference_vectors():
    """REQ-SEN-01: protocols.md section 5 vectors 1-5."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    assert d.feed(bytes.fromhex("0181010083"), 5, 0) & EV_FRAME
    assert d.feed(bytes.fromhex("01800148CA"), 5, 0) & EV_FRAME
    assert d.feed(bytes.fromhex("01800161E3"), 5, 0) & EV_FRAME
    assert d.frames_ok == 3
    d2 = Nonin2Decoder(OxiReading())
    assert d2.feed(bytes.fromhex("0181010083"), 5, 0) == EV_FRAME
    assert d2.feed(bytes.fromhex("01800148CB"), 5, 0) & EV_ERROR  # bad checksum
    d3 = Nonin2Decoder(OxiReading())
    assert not d3.feed(bytes.fromhex("017F0148CA"), 5, 0) & EV_FRAME  # status bit 7 clear


def test_packet_values_and_chunking():
    """REQ-SEN-02: any chunking gives the same reading."""
    data = packet(hr=150, spo2=95) * 3
    for chunk in (1, 2, 3, 5, 7, 64, len(data)):
        r = OxiReading()
        d = Nonin2Decoder(r)
        ev = 0
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            ev |= d.feed(part, len(part), 1000)
        assert ev & EV_READING
        assert r.spo2 == 95 and r.pr == 150, (chunk, r.spo2, r.pr)
        assert d.packets == 3 and d.frames_bad == 0


def test_sentinels_become_none():
    """REQ-SEN-03: HR 511 and SpO2 127 are "no value"."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    data = packet(hr=511, spo2=127)
    d.feed(data, len(data), 0)
    assert r.spo2 == NONE and r.pr == NONE and r.flags & F_MISSING


def test_sensor_off_seen_on_first_frame():
    """REQ-SEN-04: SNSA on one frame sets sensor-off at once, before the packet ends."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    good = packet()
    d.feed(good, len(good), 0)
    assert not r.flags & F_SENSOR_OFF
    f = nonin2_frame(0x88 | 0x01, 0, 0)
    d.feed(f, 5, 10)
    assert r.flags & F_SENSOR_OFF


def test_resync_after_garbage():
    """REQ-SEN-02: garbage then clean data re-locks within one packet."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    junk = bytes((0x01, 0x83, 0x10, 0x00, 0x77, 0x01, 0xFF, 0x01, 0x81)) * 5
    d.feed(junk, len(junk), 0)
    data = packet(hr=80, spo2=93) * 2
    d.feed(data, len(data), 0)
    assert r.spo2 == 93 and r.pr == 80
    assert d.packets >= 1


def test_early_sync_is_frame_loss():
    # protocols.md vector 6: 23 frames then a new SYNC frame -> frame loss, restart
    r = OxiReading()
    d = Nonin2Decoder(r)
    p = packet()
    d.feed(p[: 23 * 5], 23 * 5, 0)
    d.feed(p, len(p), 0)
    assert d.frame_losses == 1 and d.packets == 1


def test_no_allocation_per_frame():
    """REQ-SEN-05: steady-state decoding allocates nothing (MicroPython only)"""
    r = OxiReading()
    d = Nonin2Decoder(r)
    data = packet()
    mv = memoryview(data)

    def one():
        d.feed(mv, len(data), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
