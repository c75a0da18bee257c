"""Simulator: SunTech Advantage emulator against protocols.md 2.1 and vectors 15-21."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bedside_host.sim.patient import Patient, PatientState, mean_arterial
from bedside_host.sim.suntech import (
    BpResult,
    SuntechConfig,
    SuntechEmulator,
    bp_packet,
    command,
    cuff_packet,
    status_packet,
)


def hx(s: str) -> bytes:
    return bytes.fromhex(s)


START_ADULT = hx("3A 20 A6")
START_PED = hx("3A 87 3F")
START_NEO = hx("3A 28 9E")
ABORT = hx("3A 79 01 00 4C")
GET_DATA = hx("3A 79 03 00 4A")
GET_CUFF = hx("3A 79 05 00 48")
R_O = hx("3E 04 4F 6F")
R_K = hx("3E 04 4B 73")
R_A = hx("3E 04 41 7D")
R_B = hx("3E 04 42 7C")
R_N = hx("3E 04 4E 70")


def fixed(sys: int, dia: int, pr: int) -> Callable[[float], PatientState]:
    st = PatientState(t=0, spo2=97, pr=pr, sys=sys, dia=dia, map=mean_arterial(sys, dia))
    return lambda t: st


def test_vector_15_commands() -> None:
    """REQ-SIM-13: the command builder reproduces vector 15 (checksum rule)."""
    assert command(0x20) == START_ADULT and command(0x87) == START_PED
    assert command(0x28) == START_NEO and command(0x79, 0x01, 0x00) == ABORT
    assert command(0x79, 0x03, 0x00) == GET_DATA and command(0x79, 0x05, 0x00) == GET_CUFF
    assert command(0x17, 0xA0, 0x00) == hx("3A 17 A0 00 0F")


def test_vectors_16_17_18_status_and_cuff() -> None:
    """REQ-SIM-13: status packets (vectors 16, 17) and cuff-pressure packets (vector 18)."""
    got = [status_packet(c) for c in "OKABENDST"]
    want = "3E044F6F 3E044B73 3E04417D 3E04427C 3E044579 3E044E70 3E04447A 3E04536B 3E04546A"
    assert got == [hx(x) for x in want.split()]
    assert cuff_packet(258) == hx("3E 05 02 01 BA")
    assert cuff_packet(0) == hx("3E 05 00 00 BD")
    assert cuff_packet(150) == hx("3E 05 96 00 27")
    assert sum(cuff_packet(-1)) & 0xFF == 0


def test_vectors_19_20_21_bp_packets() -> None:
    """REQ-SIM-14: BP data packet layout equals vectors 19, 20, 21."""
    v19 = "3E 18 78 00 50 00 20 01 00 00 00 00 00 00 00 00 48 00 5D 00 00 00 00 1C"
    v20 = "3E 18 B6 00 68 00 28 01 00 00 00 00 00 00 00 00 60 00 82 00 00 00 00 81"
    v21 = "3E 18 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 57 00 00 53"
    assert bp_packet(BpResult(120, 80, 32, 1, bytes(8), 72, 93, 0)) == hx(v19)
    assert bp_packet(BpResult(182, 104, 40, 1, bytes(8), 96, 130, 0)) == hx(v20)
    assert bp_packet(BpResult(ec=0x57)) == hx(v21)


def _run(emu: SuntechEmulator, until: float, t: float, poll_every: float = 0.2) -> bytes:
    out = bytearray()
    while t < until:
        emu.feed(GET_CUFF, t)
        t += poll_every
        out += emu.poll(t)
    return bytes(out)


def test_full_measurement_sequence_vector_19() -> None:
    """REQ-SIM-15, REQ-SIM-14: start -> 'O'; polled cuff ramps to 160-180 mmHg then deflates
    stepwise; unsolicited 'K'; get data == vector 19 for a 120/80 patient at 72 bpm (32 beats);
    abort -> 'A', 'K' and the next data read has EC 86."""
    emu = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(duration_s=32.2))
    emu.feed(START_ADULT, 0.0)
    assert emu.poll(0.05) == R_O
    pressures: list[int] = []
    t = 0.05
    got_k_at = None
    while t < 40:
        emu.feed(GET_CUFF, t)
        t += 0.2
        out = emu.poll(t)
        while out:
            if out.startswith(R_K):
                got_k_at = got_k_at or t
                out = out[4:]
            else:
                assert out[:2] == hx("3E 05") and sum(out[:5]) & 0xFF == 0
                pressures.append(int.from_bytes(out[2:4], "little", signed=True))
                out = out[5:]
    assert got_k_at is not None and 32 <= got_k_at <= 33
    peak = max(pressures)
    assert 160 <= peak <= 182
    i_peak = pressures.index(peak)
    assert i_peak * 0.2 < 6  # inflate within a few seconds
    assert pressures[-1] == 0 and not emu.measuring
    # stepwise deflation: many distinct plateaus
    assert len({p // 8 for p in pressures[i_peak:]}) >= 10
    emu.feed(GET_DATA, t)
    data = emu.poll(t + 0.1)
    assert data == hx("3E 18 78 00 50 00 20 01 00 00 00 00 00 00 00 00 48 00 5D 00 00 00 00 1C")
    # abort during a second measurement
    emu.feed(START_ADULT, 50.0)
    assert emu.poll(50.1) == R_O
    emu.feed(START_PED, 51.0)
    assert emu.poll(51.1) == R_B  # start while measuring -> busy
    emu.feed(ABORT, 52.0)
    assert emu.poll(52.1) == R_A
    assert emu.poll(52.5) == R_K
    emu.feed(GET_DATA, 55.0)
    d = emu.poll(55.1)
    assert len(d) == 24 and d[20] == 0x56 and sum(d) & 0xFF == 0
    emu.feed(GET_CUFF, 55.2)
    assert emu.poll(55.3) == hx("3E 05 00 00 BD")


def test_patient_model_drives_bp() -> None:
    """REQ-SIM-14: values come from the patient model (hypertension scenario ~185/112)."""
    p = Patient("hypertension", seed=1)
    emu = SuntechEmulator(p.state)
    emu.feed(START_ADULT, 30.0)
    _run(emu, 70.0, 30.0)
    emu.feed(GET_DATA, 70.0)
    d = emu.poll(70.1)
    sys_, dia = int.from_bytes(d[2:4], "little"), int.from_bytes(d[4:6], "little")
    assert 178 <= sys_ <= 192 and 106 <= dia <= 118 and d[7] == 1 and d[20] == 0


def test_unknown_bad_checksum_and_initial_inflate() -> None:
    """REQ-SIM-16: unknown command or bad checksum -> 'N' (option: silent); set initial inflate
    -> 'O' then 'K'; noise between commands is skipped."""
    emu = SuntechEmulator(fixed(120, 80, 72))
    emu.feed(hx("3A 55 71"), 0.0)
    assert emu.poll(0.1) == R_N
    emu.feed(hx("3A 79 05 00 49"), 1.0)  # bad checksum
    assert emu.poll(1.1) == R_N
    emu.feed(hx("FF 00") + hx("3A 17 B4 00 FB"), 2.0)
    assert emu.poll(2.05) == R_O
    assert emu.poll(2.5) == R_K
    emu.feed(START_ADULT, 3.0)
    emu.poll(3.1)
    assert emu.cuff_pressure(3.0 + 180 / 40) == 180  # inflates to the set initial pressure
    quiet = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(bad_checksum_reply=False))
    quiet.feed(hx("3A 79 05 00 49"), 0.0)
    assert quiet.poll(1.0) == b""
    quiet.feed(hx("3A 79"), 2.0)  # incomplete command -> 'T' after the receive timeout
    assert quiet.poll(3.5) + quiet.poll(3.6) == hx("3E 04 54 6A")


def test_faults_stuck_mute_and_error_code() -> None:
    """REQ-SIM-17: faults: never send 'K'; stop answering mid-measurement; selectable EC."""
    stuck = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(never_send_k=True))
    stuck.feed(START_ADULT, 0.0)
    out = _run(stuck, 60.0, 0.0)
    assert R_K not in out and not stuck.measuring
    stuck.feed(GET_DATA, 60.0)
    assert stuck.poll(60.1)[7] == 1  # data still readable (S31 asks anyway)

    mute = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(mute_after_s=10.0))
    mute.feed(START_ADULT, 0.0)
    assert mute.poll(0.1) == R_O
    assert len(_run(mute, 9.9, 0.1)) > 0
    assert _run(mute, 60.0, 10.0) == b""

    leak = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(error_code=0x57))
    leak.feed(START_ADULT, 0.0)
    out = _run(leak, 40.0, 0.0)
    assert out.endswith(R_K) or R_K in out
    leak.feed(GET_DATA, 40.0)
    assert leak.poll(40.1) == hx(
        "3E 18 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 57 00 00 53"
    )  # vector 21
    assert leak.cuff_pressure(5.0) == 0


@pytest.mark.parametrize("start", [START_PED, START_NEO])
def test_ped_neo_start(start: bytes) -> None:
    """REQ-SIM-15: pediatric and neonate starts are accepted with 'O' and finish with 'K'."""
    emu = SuntechEmulator(fixed(90, 55, 120), SuntechConfig(duration_s=20))
    emu.feed(start, 0.0)
    assert emu.poll(0.1) == R_O
    assert emu.poll(21.0) == R_K
