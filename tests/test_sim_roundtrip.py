"""Simulator vs firmware: every oximeter format and the SunTech emulator against the independent
firmware decoders/driver (firmware/bedside/sensors), over whole scenarios."""

from __future__ import annotations

import pytest
from bedside.readings import F_NO_FINGER, F_SENSOR_OFF, NONE, NibpReading, OxiReading
from bedside.sensors import load_oximeter
from bedside.sensors.suntech import COND_FAILED, SuntechNibp
from bedside_host.sim.encoders import Emitter, make_encoder
from bedside_host.sim.patient import Patient
from bedside_host.sim.suntech import SuntechConfig, SuntechEmulator

FORMATS = ["nonin2", "nonin7", "nonin1", "berrymed", "masimo"]


def _stream(fmt: str, scenario: str, t_end: float, seed: int = 0) -> tuple[OxiReading, Emitter]:
    """Encode `scenario` up to t_end in 20 ms chunks, decoding as we go."""
    p = Patient(scenario, seed=seed)
    em = Emitter(make_encoder(fmt), p.state)
    r = OxiReading()
    dec = load_oximeter(fmt, r)
    t = 0.0
    while t < t_end:
        buf = em.emit_until(t)
        dec.feed(buf, len(buf), int(t * 1000))
        t += 0.02
    return r, em


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_roundtrip_normal(fmt: str) -> None:
    """REQ-SIM-20: each format's stream decodes with the firmware decoder to the patient values."""
    r, em = _stream(fmt, "normal", 12.0)
    st = em.last_state
    assert st is not None and r.count >= 5
    assert r.flags & (F_SENSOR_OFF | F_NO_FINGER) == 0
    assert abs(r.spo2 - st.spo2) <= 1 and abs(r.pr - st.pr) <= 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_roundtrip_sensor_off(fmt: str) -> None:
    """REQ-SIM-20: finger removal (sensor-off scenario, 20-50 s) reaches the firmware as
    sensor-off / no-finger, and the values stop being reported (at once, or after the 10 s
    display hold where the format/decoder uses display values). Format #1 (1 frame/s, no
    checksum) shows it after two frames in a row, each closed by the next (REQ-SEN-36): 2 s."""
    r, _ = _stream(fmt, "sensor-off", 22.5 if fmt == "nonin1" else 21.5)
    assert r.flags & (F_SENSOR_OFF | F_NO_FINGER)
    r, _ = _stream(fmt, "sensor-off", 33.0)
    assert r.flags & (F_SENSOR_OFF | F_NO_FINGER)
    assert r.spo2 == NONE and r.pr == NONE
    r, _ = _stream(fmt, "sensor-off", 60.0)
    assert r.flags & (F_SENSOR_OFF | F_NO_FINGER) == 0 and r.spo2 != NONE


def test_desat_scenario_course() -> None:
    """REQ-SIM-01: `desat` (default) holds 97-98 % to 15 s, is below 90 % from ~26 s and below
    85 % within 60 s (both firmware alarms can fire), holds >= 40 s, and is >= 96 % by ~110 s."""
    p = Patient("desat", seed=0)
    s = {t: p.state(float(t)).spo2 for t in range(0, 181)}
    assert all(97 <= s[t] <= 98 for t in range(0, 15))
    assert all(s[t] < 90 for t in range(28, 86))
    assert min(s[t] for t in range(0, 60)) < 85
    assert sum(1 for t in range(0, 120) if s[t] <= 85) >= 40
    assert all(s[t] >= 96 for t in range(110, 180))
    assert p.state(180.0 + 40).spo2 < 85  # loops


def test_desat_seen_by_firmware_decoder() -> None:
    """REQ-SIM-01, REQ-SIM-20: the decoded Nonin #2 SpO2 is < 85 % within 60 s of start."""
    r, _ = _stream("nonin2", "desat", 45.0)
    assert r.spo2 != NONE and r.spo2 < 85


def test_scenarios_deterministic_and_other_courses() -> None:
    """REQ-SIM-01: same seed -> same states regardless of query order; brady/tachy/hypertension."""
    a, b = Patient("artifact", seed=5), Patient("artifact", seed=5)
    ts = [0.0, 13.37, 47.1, 2.0, 99.9, 50.0]
    assert [a.state(t) for t in ts] == [b.state(t) for t in reversed(ts)][::-1]
    assert Patient("artifact", seed=6).state(13.37) != a.state(13.37)
    assert Patient("brady").state(60).pr <= 40 and Patient("tachy").state(60).pr >= 140
    h = Patient("hypertension").state(60)
    assert 180 <= h.sys <= 190 and 108 <= h.dia <= 116
    art = Patient("artifact")
    assert art.state(16).artifact and art.state(50).searching and art.state(75).low_perfusion


class _Uart:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, b: bytes) -> int:
        self.out += b
        return len(b)


def _nibp_session(
    cfg: SuntechConfig, scenario: str = "normal", abort_at: float | None = None
) -> tuple[SuntechNibp, NibpReading, SuntechEmulator, Patient]:
    p = Patient(scenario, seed=2)
    emu = SuntechEmulator(p.state, cfg)
    uart = _Uart()
    reading = NibpReading()
    drv = SuntechNibp(uart, reading)
    t_ms = 0
    drv.start(t_ms)
    while t_ms < 60000:
        now = t_ms / 1000
        if abort_at is not None and abs(now - abort_at) < 1e-9:
            drv.abort(t_ms)
        if uart.out:
            emu.feed(bytes(uart.out), now)
            uart.out.clear()
        rx = emu.poll(now)
        if rx:
            drv.feed(rx, len(rx), t_ms)
        drv.step(t_ms)
        t_ms += 10
    return drv, reading, emu, p


def test_suntech_emulator_with_firmware_driver() -> None:
    """REQ-SIM-21: the firmware SunTech driver completes a measurement against the emulator and
    reads the patient's BP; cuff polls see the inflation."""
    drv, reading, emu, p = _nibp_session(SuntechConfig())
    assert reading.valid and drv.error == 0 and not drv.busy
    st = p.state(35.0)
    assert abs(reading.sys - st.sys) <= 4 and abs(reading.dia - st.dia) <= 4
    assert reading.map == pytest.approx(st.map, abs=4) and abs(reading.pr - st.pr) <= 3
    assert emu.measurements == 1 and emu.commands > 100  # cuff polled every 200 ms


def test_suntech_emulator_faults_reach_driver() -> None:
    """REQ-SIM-21, REQ-SIM-17: EC 0x57 -> driver failure 0x57; abort -> no failure, no result;
    never-'K' -> driver still fetches the data after its timeout (not within 60 s here)."""
    drv, reading, _, _ = _nibp_session(SuntechConfig(error_code=0x57))
    assert not reading.valid and drv.error == 0x57 and drv.condition == COND_FAILED
    drv, reading, emu, _ = _nibp_session(SuntechConfig(), abort_at=10.0)
    assert not reading.valid and drv.error == 0 and not drv.busy and emu.measurements == 0
    drv, reading, _, _ = _nibp_session(SuntechConfig(never_send_k=True))
    assert not reading.valid and drv.busy  # still waiting for 'K' (adult timeout 140 s)
