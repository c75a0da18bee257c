# test_bench_findings.py: the two oximeter defects the bench harness found (docs/bench.md
# "Findings"): Nonin pulse-quality bits held between pulses (OXI_SIGNAL_POOR can last), and no
# OXI_DATA_STALE flash when a finger goes back after a long sensor-off. CPython and MicroPython.
from bedside.readings import F_ARTIFACT, F_LOW_PERF, Q_GOOD, Q_LOW, OxiReading
from bedside.sensors.nonin2 import Nonin2Decoder
from corekit import bench
from mputil import alloc_per_call, nonin2_packet, skip

_PULSE_FRAMES = (10, 11, 12, 13)  # the frames of a pulse within a 1/3 s packet


def _packet(pulse_status, hr=72, spo2=97, base=0x80):
    """A Format #2 packet whose perfusion/artifact bits are set on a pulse's frames only (as
    the module does); pulse_status None: a packet without a pulse."""

    def status(f):
        if pulse_status is not None and f in _PULSE_FRAMES:
            return base | pulse_status
        return base

    return nonin2_packet(hr, spo2, pleth=60, frame_status=status)


_ART = 0x20 | 0x02  # ARTF with a green perfusion: a pulse with motion artifact
_LOWP = 0x04  # RPRF: a pulse of low perfusion
_GOOD = 0x02  # GPRF: a clean pulse


def _feed(d, data, now):
    d.feed(data, len(data), now)


def test_nonin_pulse_quality_held_between_pulses():
    """REQ-BENCH-24: a Nonin packet without a pulse keeps the last pulse's artifact and
    perfusion bits (for up to 3 s), so the flags the OXI_SIGNAL_POOR rule reads do not drop out
    between pulses; a clean pulse clears them at once; 3 s without any pulse forgets them."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    _feed(d, _packet(_GOOD), 0)  # lock
    _feed(d, _packet(_ART), 333)
    _feed(d, _packet(_ART), 666)
    assert r.flags & F_ARTIFACT
    for i in range(2):  # 72 /min: a pulse every 2.5 packets, so packets without one follow
        _feed(d, _packet(None), 1000 + 333 * i)
        assert r.flags & F_ARTIFACT, i  # before the fix: cleared by a packet without a pulse
    _feed(d, _packet(_GOOD), 1700)
    _feed(d, _packet(None), 2000)
    assert not r.flags & F_ARTIFACT and r.quality == Q_GOOD  # a clean pulse: clean at once
    _feed(d, _packet(_LOWP), 2300)
    _feed(d, _packet(_LOWP), 2600)
    _feed(d, _packet(None), 2900)
    assert r.flags & F_LOW_PERF and r.quality == Q_LOW
    for i in range(12):  # no pulse for 4 s: nothing is held any more
        _feed(d, _packet(None), 3200 + 333 * i)
    assert not r.flags & (F_LOW_PERF | F_ARTIFACT)


def test_nonin_pulse_hold_allocates_nothing():
    """REQ-BENCH-24: holding the pulse bits allocates no heap per packet (MicroPython)."""
    r = OxiReading()
    d = Nonin2Decoder(r)
    a, b = _packet(_ART), _packet(None)
    _feed(d, a, 0)
    n = [0]

    def step():
        n[0] += 1
        d.feed(b if n[0] % 3 else a, 125, n[0] * 333)

    per = alloc_per_call(step, 60)
    if per is None:
        skip("allocation is measured on MicroPython only")
    assert per == 0, per


def _sustained_poor(pulse_status):
    b = bench(types=("alarm",))
    try:
        for i in range(75):  # 25 s at 72 /min: a pulse in 2 packets of 5
            st = pulse_status if i % 5 in (0, 2) else None
            b.oxi.push(_packet(st))
            b.run(333)
        return b.alarms("OXI_SIGNAL_POOR")
    finally:
        b.dev = None


def test_signal_poor_sustained_on_nonin2():
    """REQ-BENCH-24: sustained motion artifact, and sustained low perfusion, on Nonin Format #2
    at 72 /min raise OXI_SIGNAL_POOR after its 15 s delay (before the fix the flags dropped out
    between pulses and the delay never completed)."""
    for st in (_ART, _LOWP):
        ev = _sustained_poor(st)
        assert [m["event"] for m in ev][:1] == ["raise"], (st, ev)


def test_no_stale_flash_when_the_finger_goes_back():
    """REQ-BENCH-25: after a sensor-off longer than oxi_stale_s, the finger going back (the
    module sends no value for its first beats) raises no OXI_DATA_STALE; without a value for
    oxi_stale_s after the sensor-off ends, OXI_DATA_STALE is raised (stale data still alarms)."""
    b = bench(types=("alarm",))
    b.run(5000, hr=72, spo2=97)
    b.run(40000, hr=511, spo2=127, status=0x88)  # SNSA: no finger, 40 s (> oxi_stale_s 30)
    assert [m["event"] for m in b.alarms("OXI_SENSOR_OFF")][:1] == ["raise"]
    b.run(1500, hr=511, spo2=127, status=0x82)  # finger back: values not yet averaged
    b.run(5000, hr=72, spo2=97)
    assert b.alarms("OXI_DATA_STALE") == [], b.alarms("OXI_DATA_STALE")
    # the finger is back but gives no value: stale after oxi_stale_s (30 s) from its return
    b.run(40000, hr=511, spo2=127, status=0x88)
    b.run(25000, hr=511, spo2=127, status=0x82)
    assert b.alarms("OXI_DATA_STALE") == []
    b.run(7000, hr=511, spo2=127, status=0x82)
    assert [m["event"] for m in b.alarms("OXI_DATA_STALE")][:1] == ["raise"]


def test_unconfirmed_off_flicker_does_not_postpone_stale():
    """REQ-BENCH-25: sensor-off flags shorter than the confirmation time (one corrupt frame)
    do not restart the stale wait: with no value, OXI_DATA_STALE comes after oxi_stale_s."""
    b = bench(types=("alarm",))
    b.run(3000, hr=72, spo2=97)
    for _ in range(8):  # 32 s without a value, a 0.2 s off flicker every 4 s
        b.run(3800, hr=511, spo2=127, status=0x82)
        b.run(200, hr=511, spo2=127, status=0x88)
    assert [m["event"] for m in b.alarms("OXI_DATA_STALE")][:1] == ["raise"]
