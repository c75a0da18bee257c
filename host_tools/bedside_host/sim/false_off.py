"""False sensor-off under line noise: the simulator's real encoders and fault injector feeding the
firmware decoders, counting edges into sensor-off while the simulated probe is on.

Used by tests/test_false_sensor_off.py (assertions) and tools/bench_decoders.py (figures). The
decoder is fed the way the device reads its UART: whatever arrived in each 10 ms tick.
"""

from __future__ import annotations

from dataclasses import dataclass

from bedside_host import ensure_firmware_on_path
from bedside_host.sim.encoders import Emitter, make_encoder
from bedside_host.sim.faults import FaultInjector, parse_fault
from bedside_host.sim.patient import Patient

ensure_firmware_on_path()

from bedside.readings import OFF_FLAGS, OxiReading  # noqa: E402
from bedside.sensors import load_oximeter  # noqa: E402

TICK_S = 0.01  # the decoder gets what arrived in each 10 ms tick (the device's loop)
PROBE_ON_SCENARIO = "artifact"  # probe on throughout; artifact, loss of track, low perfusion
SENSOR_OFF_SCENARIO = "sensor-off"  # finger out for 30 s from t=20, every 120 s
SENSOR_OFF_AT_S = 20.0
SENSOR_OFF_FOR_S = 30.0
SENSOR_OFF_LOOP_S = 120.0
FAULTS = ("garbage:0.01", "corrupt:0.01", "drop:0.01")  # 1 % of bytes each


@dataclass(frozen=True)
class FalseOff:
    fmt: str
    fault: str | None
    seconds: float
    edges: int  # transitions into sensor-off (F_SENSOR_OFF | F_NO_FINGER) with the probe on
    off_s: float  # total time the reading showed sensor-off
    readings: int  # readings published

    @property
    def per_hour(self) -> float:
        return self.edges * 3600.0 / self.seconds


def _injector(fault: str | None, seed: int) -> FaultInjector:
    return FaultInjector([parse_fault(fault)] if fault else [], seed)


def false_sensor_off(
    fmt: str, fault: str | None, seconds: float, seed: int = 0, scenario: str = PROBE_ON_SCENARIO
) -> FalseOff:
    """Run `scenario` (probe on) for `seconds` through encoder, fault and decoder."""
    p = Patient(scenario, seed=seed)
    em = Emitter(make_encoder(fmt), p.state)
    inj = _injector(fault, seed)
    r = OxiReading()
    dec = load_oximeter(fmt, r)
    edges = 0
    off_ticks = 0
    was_off = False
    n = round(seconds / TICK_S)
    for i in range(n + 1):
        t = i * TICK_S
        buf = inj.apply(em.emit_until(t), t)
        st = em.last_state  # (asking the patient for t here would restart its phase grid)
        if st is not None and (st.no_finger or st.sensor_off):
            raise ValueError(f"scenario {scenario!r} takes the probe off at {t:.2f} s")
        dec.feed(buf, len(buf), round(t * 1000))
        off = bool(r.flags & OFF_FLAGS)
        if off:
            off_ticks += 1
            if not was_off:
                edges += 1
        was_off = off
    return FalseOff(fmt, fault, seconds, edges, off_ticks * TICK_S, r.count)


@dataclass(frozen=True)
class SensorOffSeen:
    fmt: str
    fault: str | None
    delays_s: list[float]  # per probe removal: from removal until the reading shows sensor-off
    missed: int  # removals never shown within the 30 s the probe stays off


def true_sensor_off(fmt: str, fault: str | None, seconds: float, seed: int = 0) -> SensorOffSeen:
    """Finger out for 30 s every 120 s: how long until the decoder shows it."""
    p = Patient(SENSOR_OFF_SCENARIO, seed=seed)
    em = Emitter(make_encoder(fmt), p.state)
    inj = _injector(fault, seed)
    r = OxiReading()
    dec = load_oximeter(fmt, r)
    delays: list[float] = []
    missed = 0
    pending: float | None = None
    n = round(seconds / TICK_S)
    for i in range(n + 1):
        t = i * TICK_S
        buf = inj.apply(em.emit_until(t), t)
        dec.feed(buf, len(buf), round(t * 1000))
        phase = t % SENSOR_OFF_LOOP_S
        if pending is None and SENSOR_OFF_AT_S <= phase < SENSOR_OFF_AT_S + TICK_S / 2:
            pending = t
        if pending is not None:
            if r.flags & OFF_FLAGS:
                delays.append(t - pending)
                pending = None
            elif t - pending >= SENSOR_OFF_FOR_S:
                missed += 1
                pending = None
    return SensorOffSeen(fmt, fault, delays, missed)
