"""Scripted patient model for the bench simulator.

A scenario is data: starting vitals, per-channel ramps ("from time `at`, move toward `target`
over `over` seconds") and timed events (finger out, probe unplugged, artifact, searching, low
perfusion). ``Patient.state(t_s)`` gives the vitals at scenario time ``t_s`` with small smooth
jitter that is a pure function of (seed, t): the same seed and t always give the same state,
whatever order the times are asked in (the pleth phase is integrated on a fixed 10 ms grid).

Not a physiological model: it produces plausible, reproducible courses for alarm testing.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Literal

Perfusion = Literal["good", "marginal", "low"]
Channel = Literal["spo2", "pr", "sys", "dia"]

CHANNELS: tuple[Channel, ...] = ("spo2", "pr", "sys", "dia")
EVENT_KINDS = ("finger_out", "unplugged", "artifact", "searching", "low_perfusion")

# Jitter amplitude per channel (peak, in the channel's unit); smooth value noise, 1 s knots.
DEFAULT_JITTER: dict[str, float] = {"spo2": 0.4, "pr": 1.5, "sys": 3.0, "dia": 2.0, "pi": 1.0}
PHASE_STEP_S = 0.01  # pleth phase integration grid
PI_BY_PERFUSION: dict[str, float] = {"good": 1.0, "marginal": 0.35, "low": 0.12}


@dataclass(frozen=True)
class Ramp:
    """From time ``at`` (s) move ``channel`` linearly to ``target`` over ``over`` seconds."""

    channel: Channel
    at: float
    over: float
    target: float


@dataclass(frozen=True)
class Event:
    """A condition that holds for ``at <= t < at + duration`` (one of EVENT_KINDS)."""

    kind: str
    at: float
    duration: float

    def active(self, t: float) -> bool:
        return self.at <= t < self.at + self.duration


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    spo2: float = 98.0
    pr: float = 72.0
    sys: float = 120.0
    dia: float = 80.0
    perfusion_index: float = 2.5  # PI % with good perfusion (Masimo PI field)
    ramps: tuple[Ramp, ...] = ()
    events: tuple[Event, ...] = ()
    loop_s: float | None = None  # repeat the course with this period (None: hold the end)

    def __post_init__(self) -> None:
        for ev in self.events:
            if ev.kind not in EVENT_KINDS:
                raise ValueError(f"scenario {self.name}: unknown event kind {ev.kind!r}")
        for ch in CHANNELS:
            rs = sorted((r for r in self.ramps if r.channel == ch), key=lambda r: r.at)
            for a, b in itertools.pairwise(rs):
                if a.at + a.over > b.at:
                    raise ValueError(f"scenario {self.name}: overlapping {ch} ramps")


def _r(channel: Channel, at: float, over: float, target: float) -> Ramp:
    return Ramp(channel, at, over, target)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "normal",
            "healthy adult: SpO2 97-99 %, PR ~72, BP ~120/80, slow drift",
            ramps=(_r("pr", 30, 30, 76), _r("pr", 90, 30, 70), _r("spo2", 40, 20, 97.5)),
            loop_s=150.0,
        ),
        Scenario(
            "desat",
            "SpO2 97-98 % for 15 s, falls to 84 % by 35 s, holds 40 s, back to 97 % by 105 s;"
            " repeats every 180 s",
            spo2=97.6,
            ramps=(
                _r("spo2", 15, 20, 84),
                _r("spo2", 75, 30, 97.5),
                _r("pr", 15, 20, 92),
                _r("pr", 75, 30, 74),
            ),
            loop_s=180.0,
        ),
        Scenario(
            "sensor-off",
            "normal vitals; finger removed from the probe for 30 s at t=20",
            events=(Event("finger_out", 20, 30),),
            loop_s=120.0,
        ),
        Scenario(
            "probe-unplugged",
            "normal vitals; probe unplugged from the module for 20 s at t=20",
            events=(Event("unplugged", 20, 20),),
            loop_s=120.0,
        ),
        Scenario(
            "brady",
            "PR falls from 64 to 38 between 10 s and 40 s and holds; SpO2 96 %",
            spo2=96.0,
            pr=64.0,
            ramps=(_r("pr", 10, 30, 38),),
        ),
        Scenario(
            "tachy",
            "PR rises from 84 to 148 between 10 s and 40 s and holds",
            pr=84.0,
            ramps=(_r("pr", 10, 30, 148),),
        ),
        Scenario(
            "hypertension",
            "BP about 185/112 (MAP ~136), PR 88",
            pr=88.0,
            sys=180.0,
            dia=108.0,
            ramps=(_r("sys", 5, 20, 185), _r("dia", 5, 20, 112)),
        ),
        Scenario(
            "artifact",
            "normal vitals with artifact bursts (15 s, 30 s), sustained artifact with loss of"
            " track at 45-60 s, low perfusion 70-90 s",
            events=(
                Event("artifact", 15, 5),
                Event("artifact", 30, 8),
                Event("artifact", 45, 15),
                Event("searching", 48, 12),
                Event("low_perfusion", 70, 20),
            ),
            loop_s=120.0,
        ),
        Scenario(
            "low-perfusion",
            "low perfusion (weak pulse) from 10 s to 60 s, SpO2 95 %",
            spo2=95.0,
            events=(Event("low_perfusion", 10, 50),),
            loop_s=90.0,
        ),
    )
}
DEFAULT_SCENARIO = "desat"


@dataclass(frozen=True)
class PatientState:
    """Vitals at one instant. Rounded integers are what the modules report."""

    t: float  # scenario time, s
    spo2: int  # %
    pr: int  # beats/min
    sys: int  # mmHg
    dia: int
    map: int
    phase: float = 0.0  # position in the current beat, 0..1 (0 = pulse upstroke)
    beat: int = 0  # beats since start (a change marks a new pulse)
    pleth: float = 0.0  # pleth waveform 0..1, already scaled by perfusion; 0 with no finger
    perfusion: Perfusion = "good"
    pi: float = 2.5  # perfusion index %
    no_finger: bool = False  # finger out of the probe
    sensor_off: bool = False  # probe unplugged / disconnected (implies no_finger)
    artifact: bool = False
    searching: bool = False  # out of track / pulse search

    @property
    def signal_lost(self) -> bool:
        return self.no_finger or self.sensor_off

    @property
    def low_perfusion(self) -> bool:
        return self.perfusion == "low"


def mean_arterial(sys: float, dia: float) -> int:
    """MAP = DIA + (SYS - DIA) / 3, rounded (120/80 -> 93, 182/104 -> 130)."""
    return round(dia + (sys - dia) / 3.0)


def pleth_wave(phase: float) -> float:
    """One beat of a finger pleth, 0..1: fast systolic upstroke, dicrotic notch, decay."""
    p = phase % 1.0
    v = math.exp(-(((p - 0.18) / 0.08) ** 2)) + 0.38 * math.exp(-(((p - 0.45) / 0.09) ** 2))
    return min(1.0, v / 1.02)


class Patient:
    """Scenario + seed -> PatientState at any time."""

    def __init__(
        self,
        scenario: Scenario | str = DEFAULT_SCENARIO,
        seed: int = 0,
        jitter: dict[str, float] | None = None,
    ) -> None:
        if isinstance(scenario, str):
            try:
                scenario = SCENARIOS[scenario]
            except KeyError:
                raise ValueError(
                    f"unknown scenario {scenario!r} (choose from {', '.join(SCENARIOS)})"
                ) from None
        self.scenario = scenario
        self.seed = seed
        self.jitter = dict(DEFAULT_JITTER if jitter is None else jitter)
        self._knots: dict[tuple[str, int], float] = {}
        # each channel's ramps in time order, sorted once (value() runs per emitted unit)
        self._ramps: dict[str, list[Ramp]] = {
            ch: sorted((r for r in scenario.ramps if r.channel == ch), key=lambda r: r.at)
            for ch in CHANNELS
        }
        self._grid_n = 0  # phase integrated up to grid point n (time n * PHASE_STEP_S)
        self._phase_acc = 0.0

    # -- course -------------------------------------------------------------------------------

    def _course_t(self, t: float) -> float:
        loop = self.scenario.loop_s
        return t % loop if loop else t

    def _base(self, channel: Channel, t: float) -> float:
        sc = self.scenario
        v = float(getattr(sc, channel))
        for r in self._ramps[channel]:
            if t < r.at:
                break
            frac = 1.0 if r.over <= 0 else min(1.0, (t - r.at) / r.over)
            v += (r.target - v) * frac
        return v

    def _knot(self, channel: str, k: int) -> float:
        key = (channel, k)
        v = self._knots.get(key)
        if v is None:
            if len(self._knots) > 4096:
                self._knots.clear()
            v = random.Random(f"{self.seed}/{channel}/{k}").uniform(-1.0, 1.0)
            self._knots[key] = v
        return v

    def _noise(self, channel: str, t: float) -> float:
        amp = self.jitter.get(channel, 0.0)
        if amp == 0.0:
            return 0.0
        k = math.floor(t)
        f = t - k
        w = (1.0 - math.cos(math.pi * f)) / 2.0
        return amp * ((1.0 - w) * self._knot(channel, k) + w * self._knot(channel, k + 1))

    def value(self, channel: Channel, t: float) -> float:
        """Channel value (float, with jitter) at scenario time t."""
        return self._base(channel, self._course_t(t)) + self._noise(channel, t)

    def _events(self, t: float) -> set[str]:
        ct = self._course_t(t)
        return {e.kind for e in self.scenario.events if e.active(ct)}

    # -- pleth phase ------------------------------------------------------------------------------

    def _rate_hz(self, t: float) -> float:
        return max(self.value("pr", t), 1.0) / 60.0

    def _phase_total(self, t: float) -> float:
        """Beats elapsed since t=0 (integral of PR/60), on a fixed grid: order-independent."""
        n = max(0, math.floor(t / PHASE_STEP_S))
        if n < self._grid_n:
            self._grid_n = 0
            self._phase_acc = 0.0
        while self._grid_n < n:
            self._phase_acc += self._rate_hz(self._grid_n * PHASE_STEP_S) * PHASE_STEP_S
            self._grid_n += 1
        return self._phase_acc + self._rate_hz(n * PHASE_STEP_S) * (t - n * PHASE_STEP_S)

    def _artifact_noise(self, t: float) -> float:
        return random.Random(f"{self.seed}/art/{round(t * 1000)}").uniform(-0.6, 0.6)

    # -- public -----------------------------------------------------------------------------------

    def state(self, t_s: float) -> PatientState:
        t = max(0.0, t_s)
        ev = self._events(t)
        sensor_off = "unplugged" in ev
        no_finger = sensor_off or "finger_out" in ev
        artifact = "artifact" in ev and not no_finger
        searching = "searching" in ev and not no_finger
        if "low_perfusion" in ev:
            perf: Perfusion = "low"
        elif artifact:
            perf = "marginal"
        else:
            perf = "good"
        sys_v = self.value("sys", t)
        dia_v = self.value("dia", t)
        total = self._phase_total(t)
        phase = total - math.floor(total)
        if no_finger:
            pleth = 0.0
        else:
            pleth = pleth_wave(phase) * PI_BY_PERFUSION[perf]
            if artifact:
                pleth = min(1.0, max(0.0, pleth + self._artifact_noise(t)))
        pi = self.scenario.perfusion_index * PI_BY_PERFUSION[perf]
        pi = max(0.02, pi * (1.0 + 0.05 * self._noise("pi", t)))
        return PatientState(
            t=t,
            spo2=max(0, min(100, round(self.value("spo2", t)))),
            pr=max(0, round(self.value("pr", t))),
            sys=round(sys_v),
            dia=round(dia_v),
            map=mean_arterial(sys_v, dia_v),
            phase=phase,
            beat=math.floor(total),
            pleth=pleth,
            perfusion=perf,
            pi=round(pi, 2),
            no_finger=no_finger,
            sensor_off=sensor_off,
            artifact=artifact,
            searching=searching,
        )
