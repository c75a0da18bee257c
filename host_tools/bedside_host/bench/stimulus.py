"""The simulator side of a scenario: patient course, byte-exact module streams, faults.

``Stimulus.step(t, nibp_rx)`` returns what the modules send by scenario time ``t`` (the
oximeter bytes and the SunTech replies), after the faults active at ``t``. It keeps its own
timestamps: when each physiological limit was crossed on the wire and when each NIBP reading
was delivered (the latency clocks of docs/scenarios.md), plus a 1 Hz trace of what it sent
(for the report's plot) and a log of what it injected (``bedside simulate --scenario``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bedside_host.bench.scenario import PATIENT_FAULTS, Fault, Scenario
from bedside_host.sim import patient as pm
from bedside_host.sim.encoders import Emitter, make_encoder
from bedside_host.sim.faults import FaultInjector, FaultSpec
from bedside_host.sim.suntech import (
    BpResult,
    SuntechConfig,
    SuntechEmulator,
    bp_packet,
)


def build_patient(sc: Scenario) -> pm.Patient:
    """The scenario's physiology as a sim.patient course (ramps, events, seeded jitter)."""
    ramps = tuple(
        pm.Ramp(ch, r.at_s, r.over_s, v)  # type: ignore[arg-type]
        for r in sc.ramps
        for ch, v in r.targets.items()
    )
    events = tuple(
        pm.Event(PATIENT_FAULTS[f.kind], f.at_s, (f.for_s if f.for_s is not None else 1e9))
        for f in sc.faults
        if f.kind in PATIENT_FAULTS
    )
    course = pm.Scenario(
        sc.id,
        sc.title,
        spo2=sc.start["spo2"],
        pr=sc.start["pr"],
        sys=sc.start["sys"],
        dia=sc.start["dia"],
        perfusion_index=sc.perfusion_index,
        ramps=ramps,
        events=events,
    )
    jitter = dict(pm.DEFAULT_JITTER)
    jitter.update(sc.jitter)
    return pm.Patient(course, seed=sc.seed, jitter=jitter)


def wrong_baud(data: bytes, tx_baud: int, rx_baud: int, state: list[float]) -> bytes:
    """What a UART at rx_baud (8N1) reads from bytes sent back to back at tx_baud (8N1): the
    line is sampled in the middle of each receiver bit; a start bit is a low level after idle.
    ``state`` carries [line time of the next receiver sample] across calls (bytes are sent
    back to back within a call; the line idles high between calls)."""
    bits: list[int] = []
    for b in data:
        bits.append(0)
        bits += [(b >> i) & 1 for i in range(8)]
        bits.append(1)
    if not bits:
        return b""
    tx_bit = 1.0 / tx_baud
    rx_bit = 1.0 / rx_baud
    end = len(bits) * tx_bit

    def level(t: float) -> int:
        k = int(t / tx_bit)
        return bits[k] if 0 <= k < len(bits) else 1

    out = bytearray()
    t = 0.0
    while t < end:
        if level(t) == 0:  # start bit: sample data bits in the middle of each rx bit
            v = 0
            for i in range(8):
                v |= level(t + (1.5 + i) * rx_bit) << i
            out.append(v)
            t += 10 * rx_bit  # stop bit
        else:
            t += rx_bit / 8  # idle: look for the next falling edge
    state[0] = 0.0
    return bytes(out)


@dataclass
class NibpDelivery:
    t: float
    sys: int
    dia: int
    map: int
    pr: int
    ec: int


@dataclass
class Stimulus:
    sc: Scenario
    log: list[str] = field(default_factory=list)
    trace: list[tuple[float, int | None, int | None, int, int]] = field(default_factory=list)
    nibp_readings: list[NibpDelivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        sc = self.sc
        self.patient = build_patient(sc)
        self.encoder = make_encoder(sc.oximeter_format)
        self.baud = self.encoder.link.baud
        self.emitter = Emitter(self.encoder, self.patient.state)
        self.cfg = SuntechConfig()
        self.emulator = SuntechEmulator(self.patient.state, self.cfg)
        specs: list[FaultSpec] = []
        for f in sc.faults:
            if f.kind in ("garbage", "corrupt"):
                specs.append(FaultSpec(f.kind, f.stream, rate=f.rate))
        self._byte_faults = [f for f in sc.faults if f.kind in ("garbage", "corrupt")]
        self._inj = {s: FaultInjector(list(specs), sc.seed, s) for s in ("oximeter", "nibp")}
        self._started: set[int] = set()
        self._ended: set[int] = set()
        self._nibp_log_seen = 0
        self._next_trace = 0.0
        self._baud_state = [0.0]
        self._last_wire: tuple[int | None, int | None] = (-1, -1)
        self.wire: list[tuple[float, int | None, int | None]] = []
        self.oxi_bytes = 0
        self.nibp_bytes = 0

    # -- faults ---------------------------------------------------------------------------
    def active(self, kind: str, t: float, stream: str | None = None) -> Fault | None:
        for f in self.sc.faults:
            if f.kind == kind and f.active(t) and (stream is None or f.stream == stream):
                return f
        return None

    def _announce(self, t: float) -> None:
        for i, f in enumerate(self.sc.faults):
            if i not in self._started and t >= f.at_s:
                self._started.add(i)
                self.log.append(f"t={t:7.2f}s  fault starts: {f.describe()}")
            end = f.end_s
            if end is not None and i not in self._ended and t >= end:
                self._ended.add(i)
                self.log.append(f"t={t:7.2f}s  fault ends: {f.kind}")

    def host_silent(self, t: float) -> bool:
        return self.active("host_silent", t) is not None

    # -- one step -------------------------------------------------------------------------
    def step(self, t: float, nibp_rx: bytes) -> tuple[bytes, bytes]:
        """(oximeter bytes, NIBP module bytes) due by scenario time t, faults applied."""
        self._announce(t)
        oxi = self.emitter.emit_until(t)
        st = self.emitter.last_state
        if st is not None:
            self._watch(st, t)
        if self.active("cable_pulled", t, "oximeter"):
            oxi = b""
        else:
            if any(f.stream == "oximeter" and f.active(t) for f in self._byte_faults):
                oxi = self._byte_fault("oximeter", oxi, t)
            wb = self.active("wrong_baud", t)
            if wb is not None and oxi:
                oxi = wrong_baud(oxi, wb.baud, self.baud, self._baud_state)
        self.oxi_bytes += len(oxi)
        nibp = self._nibp(t, nibp_rx)
        self.nibp_bytes += len(nibp)
        if t >= self._next_trace:
            self._next_trace += 1.0
            s = self.patient.state(t)
            lost = s.signal_lost or s.searching
            self.trace.append((t, None if lost else s.spo2, None if lost else s.pr, s.sys, s.dia))
        return oxi, nibp

    def _byte_fault(self, stream: str, data: bytes, t: float) -> bytes:
        inj = self._inj[stream]
        specs = [
            FaultSpec(f.kind, f.stream, rate=f.rate)
            for f in self._byte_faults
            if f.stream == stream and f.active(t)
        ]
        inj.specs = specs
        return inj.apply(data, t)

    def _nibp(self, t: float, rx: bytes) -> bytes:
        if self.active("cable_pulled", t, "nibp"):
            return b""
        err = self.active("nibp_error", t)
        self.cfg.error_code = err.code if err else 0
        stuck = self.active("nibp_stuck", t)
        self.cfg.cuff_stuck_mmhg = stuck.mmhg if stuck else None
        emu = self.emulator
        if rx:
            emu.feed(rx, t)
        out = emu.poll(t)
        for line in emu.log[self._nibp_log_seen :]:
            self.log.append(f"t={t:7.2f}s  nibp: {line}")
        self._nibp_log_seen = len(emu.log)
        if self.active("nibp_silent", t):
            return b""
        if out:
            self._watch_nibp(out, t)
            if any(f.stream == "nibp" and f.active(t) for f in self._byte_faults):
                out = self._byte_fault("nibp", out, t)
        return out

    # -- the simulator's own timestamps ---------------------------------------------------
    def _watch(self, st: pm.PatientState, t: float) -> None:
        """Keep (t, spo2, pr) each time the values on the wire change (None: no value)."""
        lost = st.signal_lost or st.searching
        v = (None, None) if lost else (st.spo2, st.pr)
        if v != self._last_wire:
            self._last_wire = v
            self.wire.append((t, v[0], v[1]))

    def _watch_nibp(self, out: bytes, t: float) -> None:
        i = 0
        while i < len(out) - 2:
            if out[i] == 0x3E and out[i + 1] == 24 and i + 24 <= len(out):  # the BP data packet
                d = out[i + 2 : i + 23]
                r = NibpDelivery(
                    t,
                    int.from_bytes(d[0:2], "little"),
                    int.from_bytes(d[2:4], "little"),
                    int.from_bytes(d[16:18], "little"),
                    int.from_bytes(d[14:16], "little"),
                    d[18],
                )
                if not self.nibp_readings or self.nibp_readings[-1].t < t - 1.0:
                    self.nibp_readings.append(r)
                    what = f"error 0x{r.ec:02X}" if r.ec else f"{r.sys}/{r.dia} ({r.map})"
                    self.log.append(f"t={t:7.2f}s  nibp reading delivered: {what}")
                i += 24
            else:
                i += 1


__all__ = ["BpResult", "NibpDelivery", "Stimulus", "bp_packet", "build_patient", "wrong_baud"]
