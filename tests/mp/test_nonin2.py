# test_nonin2.py: Nonin Format #2 decoder (REQ-SEN-01..04, -35, -38); runs on CPython and
# MicroPython.
from bedside.readings import F_MISSING, F_SENSOR_OFF, NONE, OxiReading
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING
from bedside.sensors.nonin2 import LOCK_FRAMES, Nonin2Decoder
from mputil import alloc_per_call, nonin2_frame, nonin2_packet, skip


def packet(hr=72, spo2=97, status=0x82, pleth=60):
    return nonin2_packet(hr, spo2, status, pleth)


# The first frame of a next packet: it confirms frame 25 before it (REQ-SEN-35); the packet
# itself completes when its frame 25 arrives valid in phase (frame 25's FLOAT is reserved).
NEXT = nonin2_frame(0x83, 60, 0)


def test_reference_vectors():
    """REQ-SEN-01: protocols.md section 5 vectors 1-5 (REQ-SEN-35: valid frames publish only
    once LOCK_FRAMES = 3 arrived in phase)."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    assert LOCK_FRAMES == 3
    assert d.feed(bytes.fromhex("0181010083"), 5, 0) == 0  # valid SYNC frame: not yet locked
    assert d.feed(bytes.fromhex("01800148CA"), 5, 0) == 0 and r.pleth == NONE
    assert d.feed(bytes.fromhex("01800161E3"), 5, 0) & EV_FRAME
    assert d.frames_ok == 3 and r.pleth == 1
    d2 = Nonin2Decoder(OxiReading())
    assert d2.feed(bytes.fromhex("0181010083"), 5, 0) == 0 and d2.frames_ok == 1
    assert d2.feed(bytes.fromhex("01800148CB"), 5, 0) & EV_ERROR  # bad checksum
    d3 = Nonin2Decoder(OxiReading())
    assert not d3.feed(bytes.fromhex("017F0148CA"), 5, 0) & EV_FRAME  # status bit 7 clear


def test_packet_values_and_chunking():
    """REQ-SEN-02: any chunking gives the same reading."""
    data = packet(hr=150, spo2=95) * 3 + NEXT
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
    data = packet(hr=511, spo2=127) + NEXT
    d.feed(data, len(data), 0)
    assert r.spo2 == NONE and r.pr == NONE and r.flags & F_MISSING


def test_sensor_off_seen_on_first_frame():
    """REQ-SEN-04: SNSA on one frame sets sensor-off at once (as soon as the next frame
    confirms it, 13 ms later: REQ-SEN-35), before the packet ends."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    good = packet()
    d.feed(good, len(good), 0)
    assert not r.flags & F_SENSOR_OFF
    d.feed(nonin2_frame(0x88 | 0x01, 0, 0), 5, 10)
    assert r.count == 1 and not r.flags & F_SENSOR_OFF
    d.feed(nonin2_frame(0x88, 0, 0), 5, 23)
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
    d.feed(p + NEXT, len(p) + 5, 0)
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
        skip("allocation is measured on MicroPython")
    assert per == 0, per


def test_mislocked_frame_never_publishes_sensor_off():
    """REQ-SEN-35: after a resync, windows that pass the checksum by chance (here a SYNC frame
    and a frame after it, both with SNSD and SNSA, then bytes that are no frame) publish
    nothing: the lock needs LOCK_FRAMES frames in phase and each frame its successor."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    good = packet()
    d.feed(good * 2, 2 * len(good), 0)
    assert r.count == 2 and not r.flags & F_SENSOR_OFF
    fake = nonin2_frame(0xC9, 0x10, 0x00) + nonin2_frame(0xC8, 0x10, 0x00)
    tail = good[7:60]  # a real packet cut out of phase
    data = b"\x55" + fake + tail + good * 2 + NEXT
    seen_off = False
    for i in range(len(data)):
        d.feed(data[i : i + 1], 1, 100)
        seen_off = seen_off or bool(r.flags & F_SENSOR_OFF)
    assert not seen_off and r.count == 4 and r.spo2 == 97


def test_sensor_off_after_resync_within_lock_frames():
    """REQ-SEN-35, REQ-SEN-04: a real sensor-off right after a resync shows on the
    LOCK_FRAMES-th frame in phase."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    good = packet()
    d.feed(good + NEXT, len(good) + 5, 0)
    d.feed(b"\x55\x55", 2, 10)
    off = packet(status=0x88, hr=511, spo2=127)
    for i in range(LOCK_FRAMES):
        assert not r.flags & F_SENSOR_OFF, i
        d.feed(off[i * 5 : i * 5 + 5], 5, 20)
    assert r.flags & F_SENSOR_OFF
