"""Property tests for every sensor decoder and the SunTech parser (CPython, hypothesis).

REQ-SEN-16: arbitrary byte streams, in arbitrary chunks, never raise and never yield
out-of-range values (SpO2 0..100 or NONE, PR 0..PR_MAX or NONE, known flag/quality bits).
REQ-SEN-02: after random garbage a clean stream re-locks within the units its lock needs
(REQ-SEN-35/36).
"""

import importlib

from bedside.readings import NONE, Q_GOOD, Q_UNKNOWN, NibpReading, OxiReading
from bedside.sensors import OXIMETER_FORMATS, load_oximeter, suntech
from bedside.ticks import ticks_add
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FLAG_BITS = 0x7F
T0 = (1 << 30) - 5000
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _nonin_frame7(status, pleth, flt):
    hi, lo = (pleth >> 8) & 0xFF, pleth & 0xFF
    return bytes((status, hi, lo, flt, (status + hi + lo + flt) & 0xFF))


def _nonin_packet(fmt, hr=72, spo2=97):
    out = bytearray()
    for f in range(1, 26):
        flt = {1: (hr >> 7) & 3, 2: hr & 0x7F, 3: spo2}.get(f, 0)
        st_ = 0x82 | (1 if f == 1 else 0)
        if fmt == "nonin2":
            out += bytes((1, st_, 0x40, flt, (1 + st_ + 0x40 + flt) & 0xFF))
        else:
            out += _nonin_frame7(st_, 0x4040, flt)  # every non-status byte < 0x80
    return bytes(out)


# Clean stream per format: (bytes of one unit, units per clean run, expected spo2, expected pr,
# bytes that close the last unit). Runs: one unit the garbage tail may swallow, plus what the
# decoder needs to lock (REQ-SEN-35/36): a Nonin #2/#7 packet; Nonin #1 LOCK_FRAMES (2) frames;
# BerryMed LOCK_FRAMES / AGREE_PACKETS (3) packets; a Masimo line. Formats without a checksum use
# a frame once the next head byte closes it.
CLEAN = {
    "nonin2": (_nonin_packet("nonin2"), 2, 97, 72, b""),
    "nonin7": (_nonin_packet("nonin7"), 2, 97, 72, b""),
    "nonin1": (bytes.fromhex("804862"), 3, 98, 72, b"\x80"),
    "berrymed": (bytes.fromhex("8432074862"), 4, 98, 72, b"\x80"),
    "masimo": (
        b"01/01/25 12:00:00 SN=0000012345 SPO2=097% BPM=072 PI=02.50% SPCO=--.-% SPMET=--.-%"
        b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n",
        2,
        97,
        72,
        b"",
    ),
}


def _pr_max(fmt):
    mod = importlib.import_module(OXIMETER_FORMATS[fmt][0])
    return getattr(mod, "PR_MAX", 400)


def _check(r, fmt):
    assert r.spo2 == NONE or 0 <= r.spo2 <= 100, r.spo2
    assert r.pr == NONE or 0 <= r.pr <= _pr_max(fmt), r.pr
    assert r.pi_x100 == NONE or 0 <= r.pi_x100 <= 999999
    assert r.flags & ~FLAG_BITS == 0
    assert Q_UNKNOWN <= r.quality <= Q_GOOD
    assert isinstance(r.spo2, int) and isinstance(r.pr, int)


def _feed_chunks(d, data, cuts, now):
    ev = 0
    pos = 0
    for c in sorted(cuts):
        c = min(c, len(data))
        ev |= d.feed(memoryview(data)[pos:c], c - pos, now)
        pos = c
    ev |= d.feed(data[pos:], len(data) - pos, now)
    return ev


chunks = st.lists(st.integers(min_value=0, max_value=400), max_size=8)
noise = st.binary(max_size=400)
fmts = st.sampled_from(sorted(OXIMETER_FORMATS))


def test_every_format_is_covered():
    assert set(CLEAN) == set(OXIMETER_FORMATS)


@SETTINGS
@given(fmt=fmts, data=noise, cuts=chunks)
def test_oximeter_garbage_never_raises_or_leaks_range(fmt, data, cuts):
    """REQ-SEN-16: arbitrary bytes never raise and never yield out-of-range values."""
    r = OxiReading()
    d = load_oximeter(fmt, r)
    _feed_chunks(d, data, cuts, 0)
    _check(r, fmt)


@SETTINGS
@given(fmt=fmts, data=st.binary(max_size=200), cuts=chunks, biased=st.booleans())
def test_oximeter_structured_garbage(fmt, data, cuts, biased):
    """REQ-SEN-16: garbage mixed with clean units (more realistic line noise) stays in range."""
    unit = CLEAN[fmt][0]
    stream = bytes(data) + unit if biased else unit[: len(unit) // 2] + bytes(data) + unit
    r = OxiReading()
    d = load_oximeter(fmt, r)
    _feed_chunks(d, stream, cuts, 0)
    _check(r, fmt)


@SETTINGS
@given(fmt=fmts, data=noise, cuts=chunks)
def test_oximeter_relocks_after_garbage(fmt, data, cuts):
    """REQ-SEN-02, REQ-SEN-35, REQ-SEN-36: after garbage, a clean stream re-locks within the
    units its lock needs (plus one the garbage tail may swallow): the last one decodes."""
    unit, runs, spo2, pr, close = CLEAN[fmt]
    r = OxiReading()
    d = load_oximeter(fmt, r)
    _feed_chunks(d, data, cuts, 0)
    before = r.count
    clean = unit * runs + close
    _feed_chunks(d, clean, [c % (len(clean) + 1) for c in cuts], 1000)
    assert r.count > before
    assert r.spo2 == spo2 and r.pr == pr and r.t_ms == 1000
    _check(r, fmt)


# ---- SunTech ----------------------------------------------------------------------------


class NullUart:
    def write(self, buf):
        return len(buf)


def _driver(state_steps):
    d = suntech.SuntechNibp(NullUart(), NibpReading())
    d.start(T0)
    for s in state_steps:
        d.feed(s, len(s), T0)
    return d


PREFIXES = [
    [],
    [bytes.fromhex("3E044F6F")],  # measuring
    [bytes.fromhex("3E044F6F"), bytes.fromhex("3E044B73")],  # reading
]


@SETTINGS
@given(prefix=st.sampled_from(PREFIXES), data=noise, cuts=chunks, dt=st.integers(0, 500))
def test_suntech_garbage_never_raises_or_leaks_range(prefix, data, cuts, dt):
    """REQ-SEN-16: suntech.feed on arbitrary bytes: no exception; any accepted result plausible."""
    d = _driver(prefix)
    _feed_chunks(d, data, cuts, ticks_add(T0, dt))
    d.step(ticks_add(T0, dt + 10))
    r = d.reading
    assert d.cuff_mmhg == NONE or 0 <= d.cuff_mmhg <= suntech.CUFF_MAX
    if r.valid:
        assert 0 < r.dia <= r.map <= r.sys <= suntech.BP_MAX
        assert r.pr == NONE or 0 < r.pr <= suntech.PR_MAX
    assert (d.error == 0) == (d.condition is None)
    assert d.error == 0 or d.error_text()
    assert 0 <= d.state < len(suntech.STATE_NAMES)
    assert (d.cuff_fault_reason is not None) == d.cuff_fault
    assert not d.cuff_fault or d.state == suntech.ST_DEFLATING


@SETTINGS
@given(data=noise, cuts=chunks)
def test_suntech_relocks_after_garbage(data, cuts):
    """REQ-SEN-02: after garbage, the next clean reply (arriving later, as replies do) decodes."""
    d = _driver(PREFIXES[2])
    _feed_chunks(d, data, cuts, ticks_add(T0, 10))
    if d.state != suntech.ST_READING:
        return  # the garbage itself ended the read (e.g. a false reply): covered above
    v19 = bytes.fromhex("3E18780050002001000000000000000048005D000000001C")
    ev = _feed_chunks(d, v19, [c % 25 for c in cuts], ticks_add(T0, 500))
    assert ev & suntech.EV_NIBP_RESULT
    r = d.reading
    assert (r.sys, r.dia, r.map, r.pr) == (120, 80, 93, 72)


def _checksummed(body):
    return bytes(body) + bytes(((0x100 - sum(body)) & 0xFF,))


@SETTINGS
@given(
    payload=st.binary(min_size=21, max_size=21),
    ok=st.booleans(),
    cuff=st.integers(0, 0xFFFF),
)
def test_suntech_checksummed_replies_stay_plausible(payload, ok, cuff):
    """REQ-SEN-16, REQ-SEN-08, REQ-SEN-31: well-formed replies with arbitrary field values
    (random garbage rarely passes the checksum): any accepted result is plausible, a cuff value
    in range; a cuff above the adult limit is a cuff fault; no result -> the cuff is checked."""
    body = bytearray(b"\x3e\x18" + payload)
    if ok:
        body[7] = 1  # BPS
        body[20] = 0  # EC
    d = _driver(PREFIXES[2])
    cuff_pkt = _checksummed(bytes((0x3E, 0x05, cuff & 0xFF, cuff >> 8)))
    d.feed(cuff_pkt, 5, T0)
    signed = cuff - 0x10000 if cuff & 0x8000 else cuff
    assert d.cuff_mmhg == (signed if 0 <= signed <= suntech.CUFF_MAX else NONE)
    assert d.cuff_fault == (signed > suntech.CUFF_LIMITS["adult"][0])
    data = _checksummed(body)
    d.feed(data, 24, T0)
    r = d.reading
    if r.valid:
        assert body[7] == 1 and body[20] == 0 and not d.busy
        assert 0 < r.dia <= r.map <= r.sys <= suntech.BP_MAX
        assert r.pr == NONE or 0 < r.pr <= suntech.PR_MAX
        assert d.cuff_mmhg == NONE  # idle again
    else:
        assert d.condition == suntech.COND_FAILED and d.error_text()
        assert d.state == suntech.ST_DEFLATING  # abort sent, polling until deflated
