"""Simulator: Nonin Format #2 encoder against protocols.md vectors and the firmware decoder."""

from __future__ import annotations

from dataclasses import replace

import pytest
from bedside.readings import F_SENSOR_OFF, NONE, OxiReading
from bedside.sensors.nonin2 import Nonin2Decoder
from bedside_host.sim.encoders import (
    Emitter,
    NoninEncoder,
    NoninPacketValues,
    nonin2_frame,
)
from bedside_host.sim.patient import Event, Patient, PatientState, Scenario
from hypothesis import given, settings
from hypothesis import strategies as st


def hx(s: str) -> bytes:
    return bytes.fromhex(s)


def test_vectors_1_2_3_7_8_frames() -> None:
    """REQ-SIM-02: Nonin #2 frames equal protocols.md section 5 vectors 1, 2, 3, 7, 8."""
    assert nonin2_frame(0x81, 1, 0) == hx("01 81 01 00 83")  # vector 1
    assert nonin2_frame(0x80, 1, 72) == hx("01 80 01 48 CA")  # vector 2
    assert nonin2_frame(0x80, 1, 97) == hx("01 80 01 61 E3")  # vector 3
    assert nonin2_frame(0x80, 1, 48) == hx("01 80 01 30 B2")
    assert nonin2_frame(0x80, 1, 0) == hx("01 80 01 00 82")
    assert nonin2_frame(0x81, 128, 0) == hx("01 81 80 00 02")  # vector 7
    assert nonin2_frame(0x89, 0, 3) == hx("01 89 00 03 8D")  # vector 8


def test_packet_floats_layout() -> None:
    """REQ-SIM-02: FLOAT table by frame (HR 1/2, SpO2 3, SREV 4, SpO2-D 9, ..., E-HR-D 22/23)."""
    v = NoninPacketValues(
        hr=72, spo2=97, srev=48, spo2_d=96, spo2_fast=95, spo2_bb=94, e_hr=300, e_spo2=93,
        e_spo2_d=92, hr_d=150, e_hr_d=511, reserved=0x55,
    )  # fmt: skip
    f = v.floats()
    assert len(f) == 25
    assert f[0:4] == [0, 72, 97, 48]
    assert (f[8], f[9], f[10]) == (96, 95, 94)
    assert (f[13], f[14], f[15], f[16]) == (300 >> 7, 300 & 0x7F, 93, 92)
    assert (f[19], f[20], f[21], f[22]) == (1, 150 & 0x7F, 3, 0x7F)
    assert all(f[i - 1] == 0x55 for i in (5, 6, 7, 8, 12, 13, 18, 19, 24, 25))
    # the first three frames of a packet with pleth 1, no pulse in progress: vectors 1-3
    frames = [nonin2_frame(0x80 | (1 if i == 0 else 0), 1, f[i]) for i in range(4)]
    assert frames[0] == hx("01 81 01 00 83") and frames[1] == hx("01 80 01 48 CA")
    assert frames[2] == hx("01 80 01 61 E3") and frames[3] == hx("01 80 01 30 B2")


def _const_state(spo2: int, pr: int, **kw: object) -> PatientState:
    return replace(PatientState(t=0.0, spo2=spo2, pr=pr, sys=120, dia=80, map=93), **kw)  # type: ignore[arg-type]


def _stream(states: list[PatientState], enc: NoninEncoder) -> bytes:
    return b"".join(enc.encode(s, i / 75.0) for i, s in enumerate(states))


def _decode(buf: bytes, display: bool = False) -> tuple[OxiReading, Nonin2Decoder]:
    r = OxiReading()
    d = Nonin2Decoder(r, display=display)
    d.feed(buf, len(buf), 0)
    return r, d


@settings(max_examples=60, deadline=None)
@given(spo2=st.integers(0, 100), pr=st.integers(0, 400), beats=st.integers(1, 6))
def test_roundtrip_values(spo2: int, pr: int, beats: int) -> None:
    """REQ-SIM-03: Nonin #2 encode -> firmware decode round-trip of SpO2 and PR (9-bit HR)."""
    states = [_const_state(spo2, pr, beat=i // 40, pleth=0.5) for i in range(beats * 40 + 75)]
    buf = _stream(states, NoninEncoder())
    r, d = _decode(buf)
    assert d.frames_bad == 0 and d.frame_losses == 0
    assert (r.spo2, r.pr) == (spo2, pr)
    assert not r.flags & F_SENSOR_OFF
    rd, _ = _decode(buf, display=True)
    assert (rd.spo2, rd.pr) == (spo2, pr)


@settings(max_examples=30, deadline=None)
@given(spo2=st.integers(70, 100), pr=st.integers(30, 250), unplugged=st.booleans())
def test_roundtrip_sensor_off(spo2: int, pr: int, unplugged: bool) -> None:
    """REQ-SIM-03, REQ-SIM-04: finger removal sets SNSA (and SNSD when unplugged) at once;
    recording values go missing, display values hold for 10 s then go missing."""
    on = [_const_state(spo2, pr, beat=i // 30) for i in range(150)]
    off = [
        _const_state(spo2, pr, beat=5, no_finger=True, sensor_off=unplugged)
        for _ in range(75 * 12)
    ]
    enc = NoninEncoder()
    buf_on = _stream(on, enc)
    buf_off = b"".join(enc.encode(s, 2.0 + i / 75.0) for i, s in enumerate(off))
    # first packet after removal: sensor-off flag, recording values missing
    r, _ = _decode(buf_on + buf_off[: 25 * 5])
    assert r.flags & F_SENSOR_OFF and r.spo2 == NONE and r.pr == NONE
    assert buf_off[1] & 0x08 and bool(buf_off[1] & 0x40) == unplugged
    # display values: held 5 s after removal, with SNSA set; missing after 10 s
    rd, _ = _decode(buf_on + buf_off[: 75 * 5 * 5], display=True)
    assert (rd.spo2, rd.pr) == (spo2, pr) and rd.flags & F_SENSOR_OFF
    rd, _ = _decode(buf_on + buf_off, display=True)
    assert rd.spo2 == NONE and rd.pr == NONE


def test_emitter_rate_and_patient_stream() -> None:
    """REQ-SIM-05: 75 frames/s = 375 B/s scheduled from t=0; a whole scenario decodes cleanly."""
    em = Emitter(NoninEncoder(), Patient("normal", seed=3).state)
    chunks = [em.emit_until(k * 0.013) for k in range(int(10 / 0.013) + 1)]
    buf = b"".join(chunks)
    t_end = int(10 / 0.013) * 0.013
    assert len(buf) == 5 * (int(t_end * 75 + 1e-9) + 1)
    r, d = _decode(buf)
    assert d.frames_bad == 0 and d.frame_losses == 0 and d.packets >= 29
    assert 95 <= r.spo2 <= 100 and 60 <= r.pr <= 90


def test_variant_9560_no_snsd() -> None:
    """REQ-SIM-04: the 9560 variant leaves STATUS bit 6 reserved and carries TMR in frames 6/7."""
    enc = NoninEncoder(variant="9560")
    st_ = _const_state(95, 70, no_finger=True, sensor_off=True)
    buf = b"".join(enc.encode(st_, i / 75) for i in range(50))
    assert all(not buf[i * 5 + 1] & 0x40 for i in range(50))
    assert buf[6 * 5 + 3] == 0 and buf[31 * 5 + 3] == 1  # TMR LSB, frame 7 of packets 0, 1


def test_scenario_is_data_and_validated() -> None:
    """REQ-SIM-01: scenarios are data; bad event kinds are rejected."""
    with pytest.raises(ValueError):
        Scenario("x", "bad", events=(Event("nonsense", 0, 1),))
