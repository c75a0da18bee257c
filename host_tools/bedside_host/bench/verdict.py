"""Judge an observed run against its scenario's steps; the OpenHTF-like test record.

Record model (after OpenHTF's TestRecord/PhaseRecord/Measurement, copied as a model, not a
dependency): a run has a DUT id, station, operator, start/end and an outcome (PASS, FAIL,
ERROR); each scenario is a test with phases (its [[expect]] steps), each phase has
measurements (name, value, units, limits, outcome, marginal) and an outcome (PASS, FAIL,
SKIP when the target cannot observe it, e.g. the sounder of a real Pico). A measurement is
marginal when it passes within 10 % of a limit (it never changes the outcome).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from bedside_host import ensure_firmware_on_path
from bedside_host.bench.runner import Observation
from bedside_host.bench.scenario import CROSSING, Expect, Scenario

ensure_firmware_on_path()

from bedside.alarms.conditions import PRIORITY_NAMES  # noqa: E402
from bedside.alarms.patterns import AUDITORY, COLOR_NAMES, VISUAL  # noqa: E402

MARGIN = 0.10  # within 10 % of a limit: marginal
CLOCK_SLACK_S = 0.5  # a device event may be stamped this much before the simulator's time
BURST_GAP_S = 1.5  # pulses further apart start a new burst (HIGH's longest inner gap 0.7 s)
PULSES = {PRIORITY_NAMES[p]: len(AUDITORY[p][2]) for p in (1, 2, 3)}  # low 2, medium 3, high 10
LED_OF = {PRIORITY_NAMES[p]: COLOR_NAMES[VISUAL[p][0]] for p in (1, 2, 3)}


@dataclass
class Measurement:
    name: str
    value: Any
    units: str = ""
    low: float | None = None
    high: float | None = None
    equals: Any = None
    outcome: str = "PASS"
    marginal: bool = False
    doc: str = ""

    def judge(self) -> Measurement:
        v = self.value
        ok = True
        if self.equals is not None:
            ok = v == self.equals
        if self.low is not None or self.high is not None:
            if not isinstance(v, int | float) or isinstance(v, bool):
                ok = False
            else:
                if self.low is not None and v < self.low:
                    ok = False
                if self.high is not None and v > self.high:
                    ok = False
                if ok:
                    self.marginal = _marginal(v, self.low, self.high)
        self.outcome = "PASS" if ok else "FAIL"
        return self


def _marginal(v: float, low: float | None, high: float | None) -> bool:
    """Within MARGIN of a limit's span (or of an upper limit alone); a lower limit of 0 is a
    floor (a latency), not a limit to be near."""
    if high is not None and low is not None and high > low:
        span = high - low
        near_low = low != 0 and v <= low + MARGIN * span
        return near_low or v >= high - MARGIN * span
    if high is not None and high > 0:
        return v >= high * (1 - MARGIN)
    return False


@dataclass
class Phase:
    name: str
    kind: str
    line: int
    outcome: str = "PASS"
    measurements: list[Measurement] = field(default_factory=list)
    detail: str = ""


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    id: str
    title: str
    path: str
    requirements: list[str]
    outcome: str
    phases: list[Phase]
    mode: str
    duration_s: float
    wall_s: float
    sha256: str
    settings_hash: str
    device: dict[str, Any]
    error: str = ""
    alarms: list[dict[str, Any]] = field(default_factory=list)
    trace: list[list[Any]] = field(default_factory=list)
    nibp: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)
    injected: list[str] = field(default_factory=list)
    source: str = ""  # the scenario file itself (OpenHTF keeps the test's code in the record)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_hash(values: dict[str, Any]) -> str:
    body = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def error_result(sc: Scenario, mode: str, why: str) -> TestResult:
    return TestResult(
        id=sc.id,
        title=sc.title,
        path=sc.path,
        requirements=list(sc.requirements),
        outcome="ERROR",
        phases=[],
        mode=mode,
        duration_s=sc.duration_s,
        wall_s=0.0,
        sha256=hashlib.sha256(sc.text.encode()).hexdigest(),
        settings_hash="",
        device={},
        error=why,
    )


def skip_result(sc: Scenario, mode: str, why: str) -> TestResult:
    r = error_result(sc, mode, why)
    r.outcome = "SKIP"
    return r


# --- the judge -------------------------------------------------------------------------------


def judge(obs: Observation) -> TestResult:
    sc = obs.scenario
    phases = [_phase(obs, e) for e in sc.expects]
    outcome = "FAIL" if any(p.outcome == "FAIL" for p in phases) else "PASS"
    events = obs.alarm_events()
    alarms = [
        {
            "t": round(t, 3),
            "condition": m.get("condition"),
            "event": m.get("event"),
            "state": m.get("state"),
            "priority": m.get("priority"),
        }
        for t, m in events
    ]
    return TestResult(
        id=sc.id,
        title=sc.title,
        path=sc.path,
        requirements=list(sc.requirements),
        outcome=outcome,
        phases=phases,
        mode=obs.mode,
        duration_s=sc.duration_s,
        wall_s=round(obs.wall_s, 3),
        sha256=hashlib.sha256(sc.text.encode()).hexdigest(),
        settings_hash=settings_hash(obs.settings),
        device=dict(obs.device),
        alarms=alarms,
        trace=[list(x) for x in obs.stimulus.trace],
        nibp=[asdict(r) for r in obs.stimulus.nibp_readings],
        faults=[
            {"kind": f.kind, "at_s": f.at_s, "end_s": f.end_s, "text": f.describe()}
            for f in sc.faults
        ],
        actions=[
            {"t": round(t, 3), "do": a.do, "text": a.describe(), "result": r}
            for t, a, r in obs.actions
        ],
        signals=_signal_summary(obs),
        injected=obs.stimulus.log[:400],
        source=sc.text,
    )


def _phase(obs: Observation, e: Expect) -> Phase:
    ph = Phase(e.name, e.kind, e.line)
    try:
        if e.kind in ("raised", "ended", "event"):
            _event(obs, e, ph)
        elif e.kind == "not_raised":
            _not_raised(obs, e, ph)
        elif e.kind == "state":
            _state(obs, e, ph)
        elif e.kind == "signal":
            _signal(obs, e, ph)
        elif e.kind == "display":
            _display(obs, e, ph)
        elif e.kind == "reply":
            _reply(obs, e, ph)
        elif e.kind == "session":
            _session(obs, e, ph)
        elif e.kind == "session_event":
            _session_event(obs, e, ph)
        elif e.kind == "nibp_every_s":
            _nibp_every(obs, e, ph)
        else:
            _heartbeat(obs, e, ph)
    except _Skip as s:
        ph.outcome = "SKIP"
        ph.detail = str(s)
        return ph
    for m in ph.measurements:
        m.judge()
    if any(m.outcome == "FAIL" for m in ph.measurements):
        ph.outcome = "FAIL"
    return ph


class _Skip(Exception):
    pass


def crossing_time(obs: Observation, cond: str, after: float) -> float | None:
    """When the simulator put the physiology for `cond` past its limit on the wire (first time
    at or after `after`), by its own timestamps; NIBP conditions: when the module delivered the
    reading."""
    ch, op, setting = CROSSING[cond]
    sc = obs.scenario
    limit = sc.setting(setting)
    if ch in ("spo2", "pr"):
        idx = 1 if ch == "spo2" else 2
        beyond = False
        for t, *vals in obs.stimulus.wire:
            v = vals[idx - 1]
            now = v is not None and (v < limit if op == "<" else v > limit)
            if now and not beyond and t >= after:
                return float(t)
            beyond = now
        return None
    base: int | None = None
    for r in obs.stimulus.nibp_readings:
        if r.ec:
            continue
        if base is None:
            base = r.sys
        v = {"nibp_sys": r.sys, "nibp_dia": r.dia, "nibp_map": r.map}[ch]
        if op == "rise":
            hit = limit > 0 and r.sys * 100 > base * (100 + limit)
        else:
            hit = v < limit if op == "<" else v > limit
        if hit and r.t >= after:
            return r.t
    return None


def _event(obs: Observation, e: Expect, ph: Phase) -> None:
    if e.from_s == "crossing":
        ref = crossing_time(obs, e.condition, e.after_s)
        if ref is None:
            ph.measurements.append(
                Measurement(
                    "limit crossed by the simulator",
                    False,
                    equals=True,
                    doc=f"{e.condition}: the physiology never crossed the limit",
                )
            )
            return
        ph.detail = f"limit crossed at {ref:.2f} s (simulator)"
    else:
        ref = float(e.from_s)
        ph.detail = f"from {ref:g} s"
    found = None
    for t, m in obs.alarm_events():
        if m.get("condition") != e.condition or m.get("event") != e.event:
            continue
        if t < ref - CLOCK_SLACK_S:
            continue
        found = (t, m)
        break
    if found is None:
        ph.measurements.append(
            Measurement(
                f"{e.condition} {e.event} reported",
                False,
                equals=True,
                doc=f"no {e.event} of {e.condition} after {ref:.2f} s",
            )
        )
        return
    t, m = found
    lat = max(0.0, t - ref)
    ph.measurements.append(
        Measurement(
            "report latency",
            round(lat, 3),
            "s",
            0.0,
            e.within_s,
            doc=f"{e.condition} {e.event} at {t:.2f} s (device report)",
        )
    )
    if e.priority:
        ph.measurements.append(Measurement("priority", m.get("priority"), equals=e.priority))
    if e.event == "raise" and obs.annunciator is not None:
        pulses = _pulse_starts(obs)
        first = next((p for p in pulses if p >= t - 0.05), None)
        if first is not None:
            v = round(first - ref, 3)
            meas = Measurement(
                "first sounder pulse latency",
                v,
                "s",
                doc="from the simulator's crossing/start to the annunciator log",
            )
            if e.sounder_within_s is not None:
                meas.low, meas.high = 0.0, e.sounder_within_s
            ph.measurements.append(meas)
        elif e.sounder_within_s is not None:
            ph.measurements.append(
                Measurement(
                    "first sounder pulse latency",
                    None,
                    "s",
                    0.0,
                    e.sounder_within_s,
                    doc="no sounder pulse after the report",
                )
            )


def _not_raised(obs: Observation, e: Expect, ph: Phase) -> None:
    to = e.to_s if e.to_s is not None else obs.scenario.duration_s
    hits = [
        (t, m.get("condition"))
        for t, m in obs.alarm_events()
        if m.get("event") == "raise"
        and m.get("condition") in e.conditions
        and float(e.from_s) <= t <= to
    ]
    ph.measurements.append(
        Measurement(
            "raise events",
            len(hits),
            "",
            None,
            0,
            doc="; ".join(f"{c} at {t:.2f} s" for t, c in hits) or "none",
        )
    )
    ph.detail = f"{float(e.from_s):g}-{to:g} s"


def state_at(obs: Observation, cond: str, at: float) -> str:
    st = "inactive"
    for t, m in obs.alarm_events():
        if t > at:
            break
        if m.get("condition") == cond:
            st = str(m.get("state"))
    return st


def _state(obs: Observation, e: Expect, ph: Phase) -> None:
    ph.measurements.append(
        Measurement(f"{e.condition} state", state_at(obs, e.condition, e.at_s), equals=e.state)
    )


def _pulse_starts(obs: Observation) -> list[float]:
    out: list[float] = []
    on = False
    for t, r in obs.annunciator or []:
        if r.get("dev") != "buzzer" or r.get("selftest"):
            continue
        if r.get("on") and not on:
            out.append(t)
        on = bool(r.get("on"))
    return out


def _bursts(pulses: list[float]) -> list[list[float]]:
    out: list[list[float]] = []
    for p in pulses:
        if out and p - out[-1][-1] <= BURST_GAP_S:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _signal(obs: Observation, e: Expect, ph: Phase) -> None:
    lo, hi = float(e.from_s), float(e.to_s or 0.0)
    hbs = [(t, m) for t, m in obs.heartbeats() if lo <= t <= hi]
    if hbs:
        heard = sorted({str(m.get("audible")) for _t, m in hbs})
        ph.measurements.append(
            Measurement("audible priority (heartbeat)", ",".join(heard), equals=e.signal)
        )
    if obs.annunciator is None:
        if not hbs:
            raise _Skip("no heartbeat in the window and no annunciator log on this target")
        ph.detail = "sounder/LED not observable on this target: heartbeat only"
        return
    every = _pulse_starts(obs)
    pulses = [p for p in every if lo <= p <= hi]
    if e.signal == "none":
        ph.measurements.append(Measurement("sounder pulses", len(pulses), "", None, 0))
    else:
        # bursts from every pulse, then those wholly inside the window (not cut by its edges)
        bursts = [b for b in _bursts(every) if b[-1] >= lo and b[0] <= hi]
        inner = [b for b in bursts if b[0] >= lo and b[-1] <= hi]
        counts = Counter(len(b) for b in (inner or bursts))
        common = counts.most_common(1)[0][0] if counts else 0
        ph.measurements.append(
            Measurement(
                "pulses per burst",
                common,
                "",
                equals=PULSES[e.signal],
                doc=f"bursts seen: {dict(counts)}",
            )
        )
    if e.led:
        leds = [
            (t, r) for t, r in obs.annunciator if r.get("dev") == "led" and not r.get("selftest")
        ]
        state = False
        for t, r in leds:  # the LED's state at the window start
            if t > lo:
                break
            if r.get("color") == e.led:
                state = bool(r.get("on"))
        ons = [t for t, r in leds if lo <= t <= hi and r.get("color") == e.led and r.get("on")]
        lit = state or bool(ons)
        ph.measurements.append(Measurement(f"{e.led} LED lit", lit, equals=True))
        if e.led_hz is not None:
            rate = len(ons) / (hi - lo)
            tol = max(0.2 * e.led_hz, 1.0 / (hi - lo))
            ph.measurements.append(
                Measurement(
                    f"{e.led} LED flash rate", round(rate, 3), "Hz", e.led_hz - tol, e.led_hz + tol
                )
            )


def _display(obs: Observation, e: Expect, ph: Phase) -> None:
    if obs.display is None:
        raise _Skip("the display is not observable on this target")
    lo, hi = float(e.from_s), float(e.to_s or 0.0)
    shown: list[str] = []
    before: list[str] | None = None
    for t, lines in obs.display:
        if t < lo:
            before = lines
        elif t <= hi:
            shown.append(" | ".join(lines))
    if before is not None:
        shown.insert(0, " | ".join(before))
    hit = any(e.text in s for s in shown)
    ph.measurements.append(
        Measurement(
            f"display shows {e.text!r}",
            hit,
            equals=True,
            doc=(shown[-1] if shown else "no frame")[:200],
        )
    )


def _heartbeat(obs: Observation, e: Expect, ph: Phase) -> None:
    hb = next((m for t, m in obs.heartbeats() if t >= e.at_s), None)
    if hb is None:
        ph.measurements.append(Measurement("heartbeat after %g s" % e.at_s, None, equals=True))
        return
    for k, want in e.fields.items():
        want2 = None if want == "none" and k == "top" else want
        ph.measurements.append(Measurement(f"heartbeat {k}", hb.get(k), equals=want2))


def _reply(obs: Observation, e: Expect, ph: Phase) -> None:
    """The device's reply to the session command sent at at_s: accepted or refused (and why)."""
    ids = [rid for at, rid in obs.sent if abs(at - e.at_s) < 1e-6]
    if not ids:
        ph.measurements.append(
            Measurement(f"a session command at {e.at_s:g} s", None, equals=True)
        )
        return
    rep = next((m for _t, m in obs.of_type("reply") if m.get("id") == ids[0]), None)
    if rep is None:
        ph.measurements.append(Measurement("reply received", False, equals=True))
        return
    ph.measurements.append(
        Measurement(
            f"reply to {rep.get('op', rep.get('cmd'))}",
            "ok" if rep.get("ok") else "refused",
            equals=e.text,
            doc=str(rep.get("error", ""))[:200],
        )
    )
    failed = e.fields.get("criteria_failed")
    if failed is not None:
        crit = rep.get("criteria") or []
        bad = sorted(str(c.get("name")) for c in crit if not c.get("ok"))
        doc = "; ".join(f"{c.get('name')}={c.get('value')} need {c.get('need')}" for c in crit)
        ph.measurements.append(
            Measurement("criteria failing", bad, equals=list(failed), doc=doc[:200])
        )
    want = e.fields.get("error")
    if want is not None:
        err = str(rep.get("error", ""))
        ph.measurements.append(
            Measurement(f"error names {want!r}", want in err, equals=True, doc=err[:200])
        )


def _states(obs: Observation) -> list[tuple[float, dict[str, Any]]]:
    """Every session state object the device sent: in `session` messages and in replies."""
    out = [
        (t, m["session"])
        for t, m in obs.messages
        if m.get("type") in ("session", "reply") and isinstance(m.get("session"), dict)
    ]
    return sorted(out, key=lambda x: x[0])


def _session(obs: Observation, e: Expect, ph: Phase) -> None:
    st = next((s for t, s in _states(obs) if t >= e.at_s), None)
    if st is None:
        ph.measurements.append(Measurement(f"session state after {e.at_s:g} s", None, equals=True))
        return
    for k, want in e.fields.items():
        ph.measurements.append(Measurement(f"session {k}", st.get(k), equals=want))


def _session_event(obs: Observation, e: Expect, ph: Phase) -> None:
    lo = float(e.from_s)
    t = next(
        (t for t, m in obs.of_type("session") if t >= lo - 0.05 and m.get("event") == e.event),
        None,
    )
    ph.measurements.append(
        Measurement(
            f"session event {e.event} latency",
            None if t is None else round(max(0.0, t - lo), 3),
            units="s",
            low=0.0,
            high=e.within_s,
        )
    )


def _nibp_every(obs: Observation, e: Expect, ph: Phase) -> None:
    """The NIBP module's readings in the window come every `every_s` (+- tolerance_s): the
    device's schedule in force, seen from the simulator's own delivery times."""
    lo, hi = float(e.from_s), float(e.to_s or 0.0)
    every, tol = float(e.fields["every_s"]), float(e.fields["tolerance_s"])
    ts = [r.t for r in obs.stimulus.nibp_readings if lo <= r.t <= hi]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(ts)]
    want = int((hi - lo) // every)
    ph.measurements.append(
        Measurement("NIBP readings in the window", len(ts), low=max(2, want), high=want + 1)
    )
    doc = ", ".join(f"{g:g}" for g in gaps)[:200]
    for name, v in (
        ("shortest gap", min(gaps, default=None)),
        ("longest gap", max(gaps, default=None)),
    ):
        ph.measurements.append(
            Measurement(name, v, units="s", low=every - tol, high=every + tol, doc=doc)
        )


def _signal_summary(obs: Observation) -> dict[str, Any]:
    if obs.annunciator is None:
        return {}
    bursts = _bursts(_pulse_starts(obs))
    return {
        "bursts": len(bursts),
        "pulses": sum(len(b) for b in bursts),
        "first_pulse_s": round(bursts[0][0], 3) if bursts else None,
        "pattern_counts": dict(Counter(len(b) for b in bursts)),
        "burst_starts": [round(b[0], 2) for b in bursts[:200]],
    }
