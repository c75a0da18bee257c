"""Simulator: SunTech Advantage emulator against protocols.md 2.1 and vectors 15-21."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from bedside.readings import NibpReading
from bedside.sensors.suntech import (
    CMD_ABORT,
    DEFAULTS,
    ERR_K_TIMEOUT,
    ERR_OVERPRESSURE,
    ERR_OVERTIME,
    EV_CUFF_DEFLATED,
    EV_CUFF_FAULT,
    SuntechNibp,
)
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


def test_stuck_cuff_fault_ignores_first_aborts() -> None:
    """REQ-SEN-34: `cuff_stuck_mmhg` inflates to the pressure and holds it with no 'K'; the
    first `ignore_aborts` aborts are answered 'A' but leave the cuff up; the next deflates it."""
    emu = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(cuff_stuck_mmhg=290, ignore_aborts=2))
    emu.feed(START_NEO, 0.0)
    assert emu.poll(0.1) == R_O
    out = _run(emu, 90.0, 0.1)
    assert R_K not in out and emu.measuring and emu.cuff_pressure(90.0) == 290
    for i, t in enumerate((91.0, 92.0)):
        emu.feed(ABORT, t)
        assert emu.poll(t + 0.1) == R_A and emu.cuff_pressure(t + 1.0) == 290, i
    assert sum("abort ignored" in line for line in emu.log) == 2
    emu.feed(ABORT, 93.0)
    assert emu.poll(93.1) == R_A and emu.poll(93.5) == R_K
    assert emu.poll(94.6) == b"" and emu.cuff_pressure(94.6) == 0 and not emu.measuring
    emu.feed(GET_DATA, 95.0)
    assert emu.poll(95.1)[20] == 0x56  # EC 86: aborted
    # a healthy neonate measurement stays below the firmware's neonate limit (150 mmHg)
    hyp = SuntechEmulator(fixed(185, 112, 88), SuntechConfig(duration_s=20))
    hyp.feed(START_NEO, 0.0)
    hyp.poll(0.1)
    assert max(hyp.cuff_pressure(x / 10) for x in range(0, 200)) < 150


class _TimedUart:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, b: bytes) -> int:
        self.out += b
        return len(b)


def _drive(
    drv: SuntechNibp, emu: SuntechEmulator, uart: _TimedUart, t_from: int, t_to: int
) -> tuple[int, list[int]]:
    """Run driver and emulator together in 10 ms ticks; (events, ms of each abort sent)."""
    ev = 0
    aborts: list[int] = []
    for t_ms in range(t_from, t_to, 10):
        now = t_ms / 1000
        if uart.out:
            data = bytes(uart.out)
            uart.out.clear()
            if CMD_ABORT in data:
                aborts.append(t_ms)
            emu.feed(data, now)
        rx = emu.poll(now)
        if rx:
            ev |= drv.feed(rx, len(rx), t_ms)
        ev |= drv.step(t_ms)
    return ev, aborts


def test_real_driver_retries_abort_until_stuck_cuff_deflates() -> None:
    """REQ-SEN-34, REQ-SEN-30, REQ-SEN-31: the firmware driver against the emulator with the
    cuff stuck at 290 mmHg in neonate mode and the first 2 aborts ignored: cuff fault at the
    first reading over 150 mmHg, the abort retried until the third deflates the cuff, then
    EV_CUFF_DEFLATED and the driver is free again."""
    emu = SuntechEmulator(fixed(120, 80, 72), SuntechConfig(cuff_stuck_mmhg=290, ignore_aborts=2))
    uart = _TimedUart()
    drv = SuntechNibp(uart, NibpReading(), patient="neonate")
    assert drv.start(0)
    ev, aborts = _drive(drv, emu, uart, 0, 60000)
    assert ev & EV_CUFF_FAULT and ev & EV_CUFF_DEFLATED
    assert len(aborts) == 3 and drv.aborts_sent == 3
    assert all(b - a >= DEFAULTS["abort_retry_ms"] for a, b in itertools.pairwise(aborts))
    assert aborts[0] < 5000  # at the first poll above 150 mmHg (inflating at 40 mmHg/s)
    assert drv.cuff_fault_reason is None and not drv.cuff_fault
    assert drv.error == ERR_OVERPRESSURE and not drv.busy and not emu.measuring
    assert sum("abort ignored" in line for line in emu.log) == 2
    assert drv.start(60000)  # free again


def test_real_driver_keeps_fault_when_aborts_exhausted() -> None:
    """REQ-SEN-34, REQ-SEN-30: more ignored aborts than the driver's retry budget: the fault
    stays (cuff still 290) with polls going on; the NIBP key (abort()) sends a fresh round of
    aborts, which finally deflates the cuff."""
    budget = 1 + DEFAULTS["abort_retries"]
    emu = SuntechEmulator(
        fixed(120, 80, 72), SuntechConfig(cuff_stuck_mmhg=290, ignore_aborts=budget + 1)
    )
    uart = _TimedUart()
    drv = SuntechNibp(uart, NibpReading())  # adult: 290 is below the limit until the K timeout
    drv.start(0)
    ev, aborts = _drive(drv, emu, uart, 0, 200000)
    assert ev & EV_CUFF_FAULT and not ev & EV_CUFF_DEFLATED and drv.cuff_fault
    assert len(aborts) == budget and drv.cuff_mmhg == 290 and emu.measuring
    assert drv.error in (ERR_K_TIMEOUT, ERR_OVERTIME)
    drv.abort(200000)
    ev, aborts = _drive(drv, emu, uart, 200000, 230000)
    assert ev & EV_CUFF_DEFLATED and not drv.cuff_fault and 2 <= len(aborts) <= budget
