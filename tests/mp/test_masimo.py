# test_masimo.py: Masimo ASCII 1 line decoder (REQ-SEN-01..05, -36); runs on CPython and
# MicroPython. Sensor-off (from EXC) changes when two lines in a row agree (REQ-SEN-36).
from bedside.readings import (
    F_ARTIFACT,
    F_LOW_PERF,
    F_MISSING,
    F_NO_FINGER,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    Q_LOW,
    OxiReading,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING, load_oximeter
from bedside.sensors.masimo import BAUD, FORMAT, FRAME_RATE, MasimoDecoder
from mputil import alloc_per_call, skip

V22 = (
    b"01/01/25 12:00:00 SN=0000012345 SPO2=097% BPM=072 PI=02.50% SPCO=--.-% SPMET=--.-%"
    b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n"
)
V23 = (
    b"01/01/25 12:00:01 SN=0000012345 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-%"
    b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000021\r\n"
)


def line(spo2=b"097", bpm=b"072", pi=b"02.50", exc=b"000000", alarm=b"0000"):
    return (
        b"01/01/25 12:00:00 SN=0000012345 SPO2="
        + spo2
        + b"% BPM="
        + bpm
        + b" PI="
        + pi
        + b"% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM="
        + alarm
        + b" EXC="
        + exc
        + b"\r\n"
    )


def test_module_constants_and_registry():
    assert FORMAT == "masimo" and BAUD == 9600 and FRAME_RATE == 1
    assert isinstance(load_oximeter("masimo", OxiReading()), MasimoDecoder)


def test_reference_vector_22():
    """REQ-SEN-01: vector 22 decodes as stated."""
    r = OxiReading()
    d = MasimoDecoder(r)
    assert d.feed(V22, len(V22), 5) == EV_FRAME | EV_READING
    assert r.spo2 == 97 and r.pr == 72 and r.pi_x100 == 250 and r.flags == 0
    assert d.exc == 0 and d.alarm == 0 and r.count == 1 and r.t_ms == 5


def test_reference_vector_23():
    """REQ-SEN-01, REQ-SEN-03, REQ-SEN-04: dashes are missing; EXC 0x021 no sensor + sensor off."""
    r = OxiReading()
    d = MasimoDecoder(r)
    d.feed(V22, len(V22), 0)
    d.feed(V23, len(V23), 1000)
    assert r.spo2 == NONE and r.pr == NONE and r.pi_x100 == NONE and r.flags & F_MISSING
    assert not r.flags & F_SENSOR_OFF  # one line: not yet
    d.feed(V23, len(V23), 2000)
    assert r.flags & F_MISSING and r.flags & F_SENSOR_OFF and r.flags & F_NO_FINGER
    assert d.exc == 0x21 and r.count == 3


def test_exc_flags_and_alarm():
    r = OxiReading()
    d = MasimoDecoder(r)
    x = line(exc=b"000414", alarm=b"0002")  # low perf, interference, low SIQ
    d.feed(x, len(x), 0)
    assert r.flags & F_LOW_PERF and r.flags & F_ARTIFACT and r.quality == Q_LOW
    assert not r.flags & F_SENSOR_OFF and d.alarm == 2 and d.alarm_lines == 1
    x = line(exc=b"000008")
    d.feed(x, len(x), 0)
    assert r.flags == F_SEARCHING
    x = line(exc=b"00000a")  # lower-case hex: defective sensor + pulse search
    d.feed(x + x, 2 * len(x), 0)
    assert r.flags & F_SENSOR_OFF and r.flags & F_SEARCHING


def test_tokens_not_columns():
    # parse KEY=value tokens: a Radical-7 line with PVI and different spacing still decodes
    r = OxiReading()
    d = MasimoDecoder(r)
    x = b"01/01/25 12:00:00  SN=1 PVI=012  BPM=100 SPO2=100% PI=10.5% EXC=000000\n"
    d.feed(x, len(x), 0)
    assert r.spo2 == 100 and r.pr == 100 and r.pi_x100 == 1050 and r.flags == 0


def test_bad_values_are_missing():
    """REQ-SEN-17: malformed/out-of-range values are NONE, never numbers."""
    r = OxiReading()
    d = MasimoDecoder(r)
    x = line(spo2=b"101", bpm=b"7x2", pi=b"0.5.0", exc=b"zz")
    d.feed(x, len(x), 0)
    assert r.spo2 == NONE and r.pr == NONE and r.pi_x100 == NONE and r.flags & F_MISSING
    assert d.field_errors == 4 and d.exc == NONE
    x = line(spo2=b"0000000097")  # too many digits: garbage
    d.feed(x, len(x), 0)
    assert r.spo2 == NONE and r.pr == 72


def test_perfusion_index_out_of_range_is_missing():
    """REQ-SEN-17, REQ-REL-05: a PI above 20 % (fuzzing found "PI=020000" published as
    20000 %, tests/fuzz/crashes/oxi_masimo/) is a field error, NONE; 20.00 % is kept."""
    r = OxiReading()
    d = MasimoDecoder(r)
    x = line(pi=b"020000")
    d.feed(x, len(x), 0)
    assert r.pi_x100 == NONE and d.field_errors == 1 and r.spo2 == 97
    x = line(pi=b"20.00")
    d.feed(x, len(x), 0)
    assert r.pi_x100 == 2000


def test_line_without_keys_is_rejected():
    r = OxiReading()
    d = MasimoDecoder(r)
    x = b"hello world BPM=072\r\n"
    assert d.feed(x, len(x), 0) == EV_ERROR
    assert r.count == 0 and d.frames_bad == 1


def test_chunking_and_line_ends():
    """REQ-SEN-02: any chunking; CR LF, LF or CR alone all end a line (CR LF UNCONFIRMED)"""
    data = V22 + V23.replace(b"\r\n", b"\n") + V22.replace(b"\r\n", b"\r") + V23
    for chunk in (1, 2, 3, 7, 50, len(data)):
        r = OxiReading()
        d = MasimoDecoder(r)
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            d.feed(part, len(part), 0)
        assert d.frames_ok == 4 and r.count == 4 and d.frames_bad == 0
        assert r.flags & F_MISSING and not r.flags & F_SENSOR_OFF  # never 2 lines in a row
        d.feed(V23, len(V23), 0)
        assert r.flags & F_SENSOR_OFF


def test_overlong_line_dropped_and_resync():
    """REQ-SEN-02: overlong lines are dropped and counted; decoding resumes after the next LF."""
    r = OxiReading()
    d = MasimoDecoder(r, max_line=140)
    junk = b"X" * 400 + V22
    assert d.feed(junk, len(junk), 0) & EV_ERROR
    assert d.lines_overlong == 1 and r.count == 0
    d.feed(V22, len(V22), 0)
    assert r.count == 1 and r.spo2 == 97


def test_resync_after_binary_garbage():
    """REQ-SEN-02: non-printable garbage spoils at most the line it lands in."""
    r = OxiReading()
    d = MasimoDecoder(r)
    junk = bytes((0x00, 0xFF, 0x80, 0x41, 0x3D)) * 5
    d.feed(junk, len(junk), 0)
    d.feed(V22, len(V22), 0)
    assert r.count == 0 and d.frames_bad == 1
    d.feed(V22, len(V22), 0)
    assert r.count == 1 and r.spo2 == 97 and r.pr == 72


def test_no_allocation_per_line():
    """REQ-SEN-05: parsing a line allocates nothing."""
    r = OxiReading()
    d = MasimoDecoder(r)
    mv = memoryview(V22 + V23)

    def one():
        d.feed(mv, len(mv), 0)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("allocation is measured on MicroPython")
    assert per == 0, per


def test_one_damaged_exc_never_publishes_sensor_off():
    """REQ-SEN-36: found by the false-sensor-off measurement: a lost digit turns interference
    (EXC=000010) into "no sensor" (EXC=00001), a flipped bit "0" -> "2" into "defective
    sensor"; one such line must not publish sensor-off, two in a row do."""
    r = OxiReading()
    d = MasimoDecoder(r)
    ok = line(exc=b"000010")
    for bad in (line(exc=b"00001"), line(exc=b"000012"), line(exc=b"zz")):
        d.feed(ok + bad + ok, 3 * len(ok) - len(ok) + len(bad), 0)
        assert not r.flags & F_SENSOR_OFF and r.flags & F_ARTIFACT, bad
    x = line(exc=b"000001")
    d.feed(x, len(x), 0)
    assert not r.flags & F_SENSOR_OFF
    d.feed(x, len(x), 1000)
    assert r.flags & F_SENSOR_OFF
    d.feed(ok, len(ok), 2000)  # one line back on: still off (two must agree)
    assert r.flags & F_SENSOR_OFF
    d.feed(ok, len(ok), 3000)
    assert not r.flags & F_SENSOR_OFF
    # a line without EXC between two others is no news: it neither confirms nor breaks a run
    no_exc = line(exc=b"000001").replace(b" EXC=", b"(EXC=")
    d.feed(x + no_exc + ok, 2 * len(x) + len(ok), 4000)
    assert not r.flags & F_SENSOR_OFF
