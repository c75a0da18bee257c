"""Simulator: Nonin #7, Nonin #1, BerryMed BCI and Masimo ASCII 1 encoders vs protocols.md."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from bedside_host.sim.encoders import (
    BerryMedEncoder,
    Emitter,
    MasimoEncoder,
    Nonin1Encoder,
    NoninEncoder,
    bci_packet,
    make_encoder,
    masimo_line,
    nonin1_packet,
    nonin7_frame,
)
from bedside_host.sim.patient import Patient, PatientState


def hx(s: str) -> bytes:
    return bytes.fromhex(s)


def _state(**kw: object) -> PatientState:
    base = PatientState(t=0.0, spo2=97, pr=72, sys=120, dia=80, map=93, pi=2.5, pleth=0.4)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_vector_9_nonin7() -> None:
    """REQ-SIM-06: Nonin #7 frame (no start byte, 16-bit pleth) equals vector 9."""
    assert nonin7_frame(0x81, 0x8123, 0) == hx("81 81 23 00 25")


def test_nonin7_stream_structure() -> None:
    """REQ-SIM-06: Nonin #7 stream: 75 frames/s, sum checksum, SYNC every 25 frames."""
    em = Emitter(NoninEncoder("nonin7"), Patient("normal").state)
    buf = em.emit_until(1.0 - 1e-9)
    assert len(buf) == 75 * 5
    frames = [buf[i : i + 5] for i in range(0, len(buf), 5)]
    assert all(f[0] & 0x80 and sum(f[:4]) & 0xFF == f[4] for f in frames)
    assert [i for i, f in enumerate(frames) if f[0] & 0x01] == [0, 25, 50]
    assert frames[1][3] == 72 or 60 <= frames[1][3] <= 90  # HR LSB (frame 2)


def test_vector_10_nonin1() -> None:
    """REQ-SIM-07: Nonin #1 packets equal vector 10 (72/98; 150/95; SNSD + 511 + 127)."""
    assert nonin1_packet(72, 98) == hx("80 48 62")
    assert nonin1_packet(150, 95) == hx("81 16 5F")
    assert nonin1_packet(511, 127, 0x40) == hx("C3 7F 7F")
    enc = Nonin1Encoder()
    assert enc.encode(_state(spo2=98, pr=72), 0.0) == hx("80 48 62")
    assert enc.encode(_state(spo2=95, pr=150), 1.0) == hx("81 16 5F")
    assert enc.encode(_state(no_finger=True, sensor_off=True), 2.0) == hx("C3 7F 7F")
    assert enc.period_s == 1.0 and enc.link.baud == 9600


def test_nonin1_hold_option() -> None:
    """REQ-SIM-07: the UNCONFIRMED display-hold behaviour of #1 is an option (default off)."""
    enc = Nonin1Encoder(display_hold_s=10.0)
    enc.encode(_state(spo2=96, pr=80), 0.0)
    held = enc.encode(_state(no_finger=True), 1.0)
    assert (held[1], held[2]) == (80, 96) and held[0] & 0x40
    assert enc.encode(_state(no_finger=True), 11.0)[1:] == hx("7F 7F")


def test_vectors_11_12_13_bci() -> None:
    """REQ-SIM-08: BCI packets equal vectors 11, 12, 13."""
    assert bci_packet(4, 50, 7, 72, 98) == hx("84 32 07 48 62")
    assert bci_packet(4, 50, 7, 150, 95, beep=True) == hx("C4 32 47 16 5F")
    assert bci_packet(0, 0, 0, 255, 127, probe_unplugged=True, no_finger=True) == hx(
        "A0 00 50 7F 7F"
    )
    enc = BerryMedEncoder()
    assert enc.encode(_state(no_finger=True, sensor_off=True), 0.0) == hx("A0 00 50 7F 7F")


def test_bci_stream() -> None:
    """REQ-SIM-08: BCI at 100 Hz, sync bit only on byte 1, one beep per beat, valid values."""
    enc = BerryMedEncoder()
    em = Emitter(enc, Patient("normal").state)
    buf = em.emit_until(10.0 - 1e-9)
    assert len(buf) == 1000 * 5
    pk = [buf[i : i + 5] for i in range(0, len(buf), 5)]
    assert all(p[0] & 0x80 and not any(b & 0x80 for b in p[1:]) for p in pk)
    beeps = sum(1 for p in pk if p[0] & 0x40)
    assert 9 <= beeps <= 14  # ~72 bpm for 10 s
    pr = ((pk[-1][2] & 0x40) << 1) | pk[-1][3]
    assert 60 <= pr <= 90 and 95 <= pk[-1][4] <= 100 and 1 <= pk[-1][1] <= 100
    assert BerryMedEncoder(rate_hz=50).period_s == pytest.approx(0.02)


def test_vectors_22_23_masimo() -> None:
    """REQ-SIM-09: Masimo ASCII 1 lines equal vectors 22 and 23 (CR LF)."""
    v22 = (
        b"01/01/25 12:00:00 SN=0000012345 SPO2=097% BPM=072 PI=02.50% SPCO=--.-% SPMET=--.-%"
        b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n"
    )
    v23 = (
        b"01/01/25 12:00:01 SN=0000012345 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-%"
        b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000021\r\n"
    )
    t0 = dt.datetime(2025, 1, 1, 12, 0, 0)
    assert masimo_line(t0, "0000012345", 97, 72, 2.5) == v22
    enc = MasimoEncoder()
    assert enc.encode(_state(spo2=97, pr=72, pi=2.5), 0.0) == v22
    assert enc.encode(_state(no_finger=True, sensor_off=True), 1.0) == v23
    assert enc.period_s == 1.0 and enc.link.baud == 9600


def test_masimo_exc_bits() -> None:
    """REQ-SIM-09: EXC bitmask for finger out / low perfusion / search / interference."""
    enc = MasimoEncoder()
    assert enc.encode(_state(no_finger=True), 0).endswith(b"EXC=000020\r\n")
    assert enc.encode(_state(perfusion="low", pi=0.3), 0).endswith(b"EXC=000004\r\n")
    assert b"SPO2=---%" in enc.encode(_state(searching=True), 0)
    assert enc.encode(_state(artifact=True), 0).endswith(b"EXC=000010\r\n")


def test_make_encoder_and_baud_override() -> None:
    """REQ-SIM-12: every CLI format has an encoder; baud is overridable (BCI baud UNCONFIRMED)."""
    for fmt in ("nonin2", "nonin7", "nonin1", "berrymed", "masimo"):
        assert make_encoder(fmt).name == fmt
    assert make_encoder("berrymed").link.baud == 115200
    assert make_encoder("berrymed", baud=9600).link.baud == 9600
    with pytest.raises(ValueError):
        make_encoder("contec")
