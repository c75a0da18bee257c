"""The session services: each step of an infusion session, validated by the host rules, sent
to the device through ``DeviceLink.request``, recorded in the record file with who and when.

One ``SessionService`` per open link and record file; the CLI (``bedside session``) and the
web station call the same methods. Every method takes ``by`` (the operator, <= 32 characters)
and returns a ``StepResult``; bad input raises ``InvalidInput`` before anything is sent or
recorded; a step the host rules or the device refuse is recorded (outcome ``host_refused`` or
``refused``) and returned with ``ok = False`` and the reason; a link failure (LinkDown,
LinkTimeout) is recorded as ``no_answer`` and raised.

Before each step the device's state is read (``get_session``): the device owns the phase, the
host model is set from it, and a disagreement with the phase the record last saw is reported
in ``warnings`` and in the step's note. After the step the device's new phase is compared with
the phase the host rules expect.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bedside_host import session_records as rec
from bedside_host.link.messages import LinkError, LinkProblem
from bedside_host.session.clinic import ClinicSettings
from bedside_host.session.rules import Facts, HostModel
from bedside_host.session.scores import Check, Hint, Score, aldrete, hints, padss
from bedside_host.session.screening import Screening, ScreenResult, evaluate
from bedside_host.session.values import InvalidInput, check_int, check_name, check_text
from bedside_host.store import Item, Store

REQUEST_TIMEOUT_S = 3.0
DOSE_REASONS = ("start", "pain", "side_effect", "other")
RATE_MAX = 99_999  # the protocol's limit (a typing error beyond it, whatever the units)
UNITS_MAX = 16
REASON_MAX = 32  # cancel reason (the protocol's limit)
NOTE_MAX = 200
O2_FLOW = (1, 15)
FRESH_S = 3.0  # a hint needs an SpO2/pulse line at most this old (the device sends one a second)
COURSE = (1, 99)
# Clinic settings the device also has: the device's value wins (one source of truth: the
# device decides discharge and SEDATION_DEEP); the host config is the fallback for a device
# without them. host name -> device setting name.
DEVICE_SETTINGS = {
    "aldrete_min": "aldrete_min",
    "padss_min": "padss_min",
    "deep_moaas": "sedation_score_max",
}


class LinkLike(Protocol):
    """What the services need of a DeviceLink."""

    url: str

    @property
    def boot(self) -> int | None: ...
    def request(self, cmd: str, timeout: float = 3.0, **fields: Any) -> dict[str, Any]: ...
    def poll(self, timeout: float = 0.0) -> Sequence[Item]: ...


@dataclass(frozen=True)
class Criterion:
    """One discharge criterion: holds or not, the value seen, what is needed, who judged."""

    name: str
    ok: bool
    value: Any
    need: Any
    source: str  # "device" or "host"


@dataclass
class StepResult:
    op: str
    ok: bool
    session_id: int | None  # the record's session (sessions.id)
    phase_before: str
    phase_after: str
    state: dict[str, Any] | None  # the device's state object after the step
    error: str = ""
    refused_by: str = ""  # "host", "device" or "" (done)
    criteria: list[Criterion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    step_id: int = 0
    screening: ScreenResult | None = None
    scores: list[Score] = field(default_factory=list)


@dataclass
class SessionView:
    """``show``: the device's state and what the record holds for its session."""

    state: dict[str, Any]
    session_id: int | None
    infusion: dict[str, Any] | None
    steps: list[dict[str, Any]]
    doses: list[dict[str, Any]]
    o2: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    screenings: list[dict[str, Any]]
    discharge: dict[str, Any] | None  # the last assessment
    criteria: list[Criterion]
    escort: dict[str, Any] | None
    warnings: list[str]


ALL_DEVICE_CRITERIA = Criterion(
    "device_criteria", True, None, "every device criterion holds", "device"
)


def criteria_from(raw: Any, source: str = "device") -> list[Criterion]:
    """The device's ``criteria`` list (malformed entries are skipped)."""
    out: list[Criterion] = []
    if isinstance(raw, list):
        for c in raw:
            if isinstance(c, dict) and isinstance(c.get("name"), str):
                ok = c.get("ok") is True
                out.append(Criterion(c["name"], ok, c.get("value"), c.get("need"), source))
    return out


def host_criteria(al: Score, pa: Score, clinic: ClinicSettings) -> list[Criterion]:
    need_a = f">= {clinic.aldrete_min}" + (", no item 0" if clinic.aldrete_no_zero else "")
    need_p = f">= {clinic.padss_min}" + (", no item 0" if clinic.padss_no_zero else "")
    return [
        Criterion("aldrete_items", al.passed, al.total, need_a, "host"),
        Criterion("padss_items", pa.passed, pa.total, need_p + " (bleeding n/a = 2)", "host"),
    ]


def _as_dicts(cs: Sequence[Criterion]) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "ok": c.ok, "value": c.value, "need": c.need, "source": c.source}
        for c in cs
    ]


class SessionService:
    """The steps of one device's infusion sessions, recorded in one record file."""

    def __init__(
        self,
        link: LinkLike,
        store: Store,
        clinic: ClinicSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.link = link
        self.store = store
        self.clinic = clinic or ClinicSettings()
        self.clock = clock
        self.timeout = timeout

    # --- plumbing -----------------------------------------------------------------------
    @property
    def _conn(self) -> Any:
        return self.store.conn

    @property
    def device(self) -> str:
        return self.link.url

    def _drain(self) -> None:
        """Every line the link received meanwhile into the record file."""
        for item in self.link.poll(0.0):
            self.store.add(item)
        self.store.flush()

    def device_state(self) -> dict[str, Any]:
        """The device's session state (``get_session``)."""
        try:
            reply = self.link.request("get_session", self.timeout)
        except LinkError as e:
            if "unknown command" in e.error:
                e.error = f"this device's firmware has no infusion sessions ({e.error})"
            raise
        state = reply.get("session")
        if not isinstance(state, dict) or not isinstance(state.get("phase"), str):
            raise LinkError("get_session", {"ok": False, "error": "the reply has no session"})
        return state

    def _sync(self) -> tuple[dict[str, Any], int | None, list[str]]:
        """(device state, its session in the record, warnings): the cross-check."""
        self._drain()
        state = self.device_state()
        phase = str(state["phase"])
        warnings: list[str] = []
        dev_id = state.get("id")
        prior = rec.last_infusion(self._conn, self.device)
        if prior is not None and prior["closed"] is None:
            same = prior["dev_session"] == dev_id
            if not same or prior["phase"] != phase:
                what = f"session {dev_id} in phase {phase}" if phase != "idle" else "no session"
                warnings.append(
                    f"the device has {what}; the record last saw device session "
                    f"{prior['dev_session']} in phase {prior['phase']} (the device's phase "
                    "is followed)"
                )
        if state.get("restored"):
            warnings.append("the device restored this session from flash after a restart")
        with rec.transaction(self._conn):
            sid = rec.note_state(
                self._conn, self.device, self.link.boot or 0, state, None, None, self.clock()
            )
        return state, sid, warnings

    def effective_clinic(self) -> ClinicSettings:
        """The clinic settings with the device's values where the device has the same setting
        (its aldrete_min, padss_min, sedation_score_max); the host config's otherwise."""
        try:
            values = self.link.request("get_settings", self.timeout).get("settings")
        except LinkError:
            return self.clinic
        if not isinstance(values, dict):
            return self.clinic
        changes: dict[str, Any] = {}
        for host_name, dev_name in DEVICE_SETTINGS.items():
            v = values.get(dev_name)
            if isinstance(v, int) and not isinstance(v, bool):
                changes[host_name] = v
        return dataclasses.replace(self.clinic, **changes) if changes else self.clinic

    def _facts(self, sid: int | None, state: Mapping[str, Any]) -> Facts:
        accepted = isinstance(state.get("baseline"), dict)
        if not accepted and sid is not None:
            accepted = any(
                s["op"] == "baseline" and s["outcome"] == "done" and '"accept"' in s["args"]
                for s in rec.table(self._conn, "session_steps", sid)
            )
        return Facts(baseline_accepted=accepted)

    def _step(
        self,
        op: str,
        by: str,
        args: Mapping[str, Any],
        send: Mapping[str, Any],
        *,
        model_op: str | None = None,
        facts: Facts | None = None,
        rows: Callable[[int, int, StepResult], None] | None = None,
        host_refused_rows: Callable[[int, int, StepResult], None] | None = None,
        warnings: Sequence[str] = (),
    ) -> StepResult:
        """Check with the host rules, send, record. `rows(session_id, step_id, result)` adds
        the typed rows of a done step (in the step's transaction)."""
        by = check_name("operator (by)", by)
        state, sid, warn = self._sync()
        warn = [*warn, *warnings]
        before = str(state["phase"])
        model = HostModel(before, facts or Facts())
        if facts is None:
            model.facts = self._facts(sid, state)
        elif not facts.baseline_accepted:
            model.facts.baseline_accepted = self._facts(sid, state).baseline_accepted
        mop = model_op or op
        res = StepResult(op, False, sid, before, before, state, warnings=warn)
        why = model.refusal(mop)
        if why is not None:
            res.error, res.refused_by = why, "host"
            self._record(res, by, args, "host_refused", host_refused_rows)
            return res
        expected = model.expect(mop)
        try:
            reply = self.link.request("session", self.timeout, op=op, by=by, **send)
        except LinkError as e:
            res.error, res.refused_by = e.error, "device"
            res.criteria = criteria_from(e.reply.get("criteria"))
            self._record(res, by, args, "refused", host_refused_rows)
            return res
        except LinkProblem as e:
            res.error = str(e)
            self._record(res, by, args, "no_answer", None)
            raise
        new = reply.get("session")
        res.ok = True
        if isinstance(new, dict):
            res.state = new
            res.phase_after = str(new.get("phase"))
            with rec.transaction(self._conn):
                sid2 = rec.note_state(
                    self._conn, self.device, self.link.boot or 0, new, op, by, self.clock()
                )
            res.session_id = sid2 if sid2 is not None else sid
        else:
            res.warnings.append("the device's reply has no session state")
        if res.phase_after != expected:
            res.warnings.append(
                f"the device went to phase {res.phase_after}; the host rules expected {expected}"
            )
        res.criteria = criteria_from(reply.get("criteria")) or res.criteria
        self._record(res, by, args, "done", rows)
        return res

    def _record(
        self,
        res: StepResult,
        by: str,
        args: Mapping[str, Any],
        outcome: str,
        rows: Callable[[int, int, StepResult], None] | None,
    ) -> None:
        self._drain()
        note = "; ".join(res.warnings) or None
        with rec.transaction(self._conn):
            res.step_id = rec.add_step(
                self._conn,
                session_id=res.session_id,
                device=self.device,
                t=self.clock(),
                by=by,
                op=res.op,
                args=args,
                outcome=outcome,
                error=res.error or None,
                phase_before=res.phase_before,
                phase_after=res.phase_after,
                note=note,
            )
            if rows is not None and res.session_id is not None:
                rows(res.session_id, res.step_id, res)

    def _row(self, table: str, sid: int, step: int, by: str, **values: Any) -> None:
        rec.add_row(
            self._conn,
            table,
            {"session_id": sid, "step_id": step, "t": self.clock(), "by": by, **values},
        )

    # --- the steps ------------------------------------------------------------------------
    def open(self, by: str, patient: str, course_day: int, course_total: int) -> StepResult:
        """A new session for `patient` (pseudonymous id), day `course_day` of `course_total`."""
        patient = check_name("patient", patient)
        check_int("course day", course_day, *COURSE)
        check_int("course length", course_total, *COURSE)
        if course_day > course_total:
            raise InvalidInput(
                f"course day {course_day} is after the course's end ({course_total})"
            )
        fields = {"patient": patient, "course_day": course_day, "course_total": course_total}
        return self._step("open", by, fields, fields)

    def screen(self, by: str, screening: Screening) -> StepResult:
        """Record the screening; if it passes (no finding, or every finding overridden by a
        named clinician with a reason) tell the device (``screened``)."""
        result = evaluate(screening, self.clinic)
        args: dict[str, Any] = {
            "answers": {k: bool(v) for k, v in screening.answers.items()},
            "bp": [screening.bp_sys, screening.bp_dia],
            "note": screening.note,
            "override_by": screening.override_by,
            "override_reason": screening.override_reason,
        }

        def rows(sid: int, step: int, res: StepResult) -> None:
            if res.phase_before != "screening":
                return
            cur = self._conn.execute(
                "INSERT INTO screenings (session_id, step_id, t, by, bp_sys, bp_dia, note,"
                " findings, override_by, override_reason, passed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    step,
                    self.clock(),
                    by,
                    screening.bp_sys,
                    screening.bp_dia,
                    screening.note,
                    rec._json(result.findings),
                    screening.override_by,
                    screening.override_reason,
                    int(result.passed and res.ok),
                ),
            )
            for key, question, yes in result.items:
                self._conn.execute(
                    "INSERT INTO screening_answers (screening_id, item, question, answer)"
                    " VALUES (?, ?, ?, ?)",
                    (cur.lastrowid, key, question, int(yes)),
                )

        res = self._step(
            "screened",
            by,
            args,
            {"override": result.overridden},
            facts=Facts(screening_passed=result.passed),
            rows=rows,
            host_refused_rows=rows,
        )
        res.screening = result
        if not result.passed and res.refused_by == "host" and res.phase_before == "screening":
            res.error = result.why
            self._conn.execute(
                "UPDATE session_steps SET error = ? WHERE id = ?", (result.why, res.step_id)
            )
        return res

    def cancel(self, by: str, reason: str) -> StepResult:
        reason = check_name("cancel reason", reason, REASON_MAX)
        return self._step("cancel", by, {"reason": reason}, {"reason": reason})

    def baseline(self, by: str, action: str) -> StepResult:
        """``repeat`` (an NIBP reading now) or ``accept`` (fix the baseline)."""
        if action not in ("repeat", "accept"):
            raise InvalidInput("baseline action must be repeat or accept")
        return self._step(
            "baseline", by, {"action": action}, {"action": action}, model_op=f"baseline_{action}"
        )

    def start(self, by: str) -> StepResult:
        return self._step("start", by, {}, {})

    def dose(
        self, by: str, rate: int, units: str, reason: str, note: str = ""
    ) -> StepResult:
        """A dose-rate change (the first one: reason ``start``)."""
        check_int("rate", rate, 0, RATE_MAX)
        units = check_name("units", units, UNITS_MAX)
        if reason not in DOSE_REASONS:
            raise InvalidInput(f"dose reason must be one of {', '.join(DOSE_REASONS)}")
        note = check_text("note", note, NOTE_MAX, allow_empty=True)
        args = {"rate": rate, "units": units, "reason": reason, "note": note}

        def rows(sid: int, step: int, res: StepResult) -> None:
            self._row("dose_changes", sid, step, by, rate=rate, units=units, reason=reason,
                      note=note or None)  # fmt: skip

        return self._step(
            "dose", by, args, {"rate": rate, "units": units, "reason": reason}, rows=rows
        )

    def o2(self, by: str, on: bool, flow: int | None = None) -> StepResult:
        """Supplemental O2 on (with flow, L/min) or off."""
        if not isinstance(on, bool):
            raise InvalidInput("O2 must be on or off")
        if on:
            if flow is None:
                raise InvalidInput("O2 on needs the flow (L/min)")
            check_int("O2 flow (L/min)", flow, *O2_FLOW)
        elif flow is not None:
            raise InvalidInput("O2 off takes no flow")
        send: dict[str, Any] = {"on": on}
        if on:
            send["flow"] = flow

        def rows(sid: int, step: int, res: StepResult) -> None:
            self._row("o2_changes", sid, step, by, on_o2=int(on), flow=flow)

        return self._step("o2", by, send, send, rows=rows)

    def check(self, by: str, check: Check) -> StepResult:
        """A responsiveness check: MOAA/S (or none), RASS, side effects, note."""
        check.validate()
        args = {
            "moaas": check.moaas,
            "variant": check.variant,
            "rass": check.rass,
            "dissociation": check.dissociation,
            "nausea": check.nausea,
            "pain": check.pain,
            "note": check.note,
        }
        send: dict[str, Any] = {"scale": check.scale()}
        if check.moaas is not None:
            send["score"] = check.moaas
        warnings = []
        deep = self.effective_clinic().deep_moaas if check.moaas is not None else 0
        if check.moaas is not None and check.moaas <= deep:
            warnings.append(f"MOAA/S {check.moaas} is deep sedation (at or below {deep})")

        def rows(sid: int, step: int, res: StepResult) -> None:
            self._row("checks", sid, step, by, scale="MOAA/S", variant=check.variant,
                      score=check.moaas, rass=check.rass, dissociation=check.dissociation,
                      nausea=check.nausea, pain=check.pain, note=check.note or None)  # fmt: skip

        return self._step("check", by, args, send, rows=rows, warnings=warnings)

    def stop(self, by: str) -> StepResult:
        return self._step("stop", by, {}, {})

    def discharge(
        self, by: str, aldrete_items: Mapping[str, int], padss_items: Mapping[str, int]
    ) -> StepResult:
        """Score modified Aldrete and PADSS; if both pass the clinic's rules, ask the device
        for discharge readiness (it checks its own criteria and says which fail)."""
        clinic = self.effective_clinic()
        al = aldrete(aldrete_items, clinic)
        pa = padss(padss_items, clinic)
        hosts = host_criteria(al, pa, clinic)
        args = {"aldrete": al.items, "padss": pa.items}

        def rows(sid: int, step: int, res: StepResult) -> None:
            if res.phase_before != "recovery":
                return
            if res.ok and not res.criteria:  # the device accepts without listing them
                res.criteria = [ALL_DEVICE_CRITERIA]
            res.criteria = [*res.criteria, *hosts]
            self._row("discharge_assessments", sid, step, by, aldrete=al.items,
                      aldrete_total=al.total, aldrete_pass=int(al.passed), padss=pa.items,
                      padss_total=pa.total, padss_pass=int(pa.passed),
                      criteria=_as_dicts(res.criteria), ready=int(res.ok))  # fmt: skip

        res = self._step(
            "discharge",
            by,
            args,
            {"aldrete": al.total, "padss": pa.total},
            facts=Facts(scores_pass=al.passed and pa.passed),
            rows=rows,
            host_refused_rows=rows,
        )
        res.scores = [al, pa]
        if res.refused_by == "host" and res.phase_before == "recovery":
            res.error = "; ".join(
                f"{s.scale}: {s.why}" for s in (al, pa) if not s.passed
            ) or res.error
            self._conn.execute(
                "UPDATE session_steps SET error = ? WHERE id = ?", (res.error, res.step_id)
            )
        if not any(c.source == "host" for c in res.criteria):
            res.criteria = [*res.criteria, *hosts]
        return res

    def close(self, by: str, escort: str, relationship: str, advice: bool) -> StepResult:
        """Close with the escort (name, relationship) and the no-driving advice given."""
        escort = check_name("escort name", escort)
        relationship = check_name("escort relationship", relationship)
        if not isinstance(advice, bool):
            raise InvalidInput("advice must be yes or no")
        args = {"escort": escort, "relationship": relationship, "advice": advice,
                "no_driving_h": self.clinic.no_driving_h}  # fmt: skip

        def rows(sid: int, step: int, res: StepResult) -> None:
            self._row("escorts", sid, step, by, name=escort, relationship=relationship,
                      advice=int(advice), no_driving_h=self.clinic.no_driving_h)  # fmt: skip

        return self._step(
            "close",
            by,
            args,
            {"escort": escort, "relationship": relationship, "advice": advice},
            facts=Facts(escort_recorded=advice),
            rows=rows,
        )

    # --- reading ----------------------------------------------------------------------------
    def discharge_hints(self, state: Mapping[str, Any] | None = None) -> list[Hint]:
        """Aldrete circulation and SpO2 and PADSS vital signs suggested from the latest NIBP,
        pulse and SpO2 in the record against the session's baseline, for the nurse to confirm."""
        st = dict(state) if state is not None else self.device_state()
        self._drain()
        conn = self._conn
        fresh = conn.execute(
            "SELECT max(rx_time) FROM vitals WHERE device = ?", (self.device,)
        ).fetchone()[0]
        if fresh is None or self.clock() - float(fresh) > FRESH_S:
            self._await_oxi()
        n = conn.execute(
            "SELECT sys FROM nibp WHERE device = ? AND sys IS NOT NULL ORDER BY rx_time DESC"
            " LIMIT 1",
            (self.device,),
        ).fetchone()
        v = conn.execute(
            "SELECT spo2, pr FROM vitals WHERE device = ? ORDER BY rx_time DESC LIMIT 1",
            (self.device,),
        ).fetchone()
        o2 = st.get("o2")
        baseline = st.get("baseline")
        return hints(
            baseline if isinstance(baseline, dict) else None,
            None if n is None else n[0],
            None if v is None else v[1],
            None if v is None else v[0],
            bool(isinstance(o2, dict) and o2.get("on")),
        )

    def _await_oxi(self) -> None:
        """Read the link until the device's next SpO2/pulse line (it reports every second)."""
        end = time.monotonic() + FRESH_S
        while time.monotonic() < end:
            got = self.link.poll(0.1)
            for item in got:
                self.store.add(item)
            if any(getattr(i, "msg", {}).get("type") == "oxi" for i in got):
                break
        self.store.flush()

    def show(self) -> SessionView:
        state, sid, warnings = self._sync()
        if sid is None:
            last = rec.last_infusion(self._conn, self.device)
            sid = None if last is None else int(last["session_id"])
        return view(self.store, sid, state, warnings)


def view(
    store: Store, sid: int | None, state: dict[str, Any] | None, warnings: list[str]
) -> SessionView:
    """What the record holds for session `sid` (no device needed: the report uses it too)."""
    conn = store.conn
    if sid is None:
        return SessionView(state or {}, None, None, [], [], [], [], [], None, [], None, warnings)
    inf = rec.infusion(conn, sid)
    dis = rec.table(conn, "discharge_assessments", sid)
    last = dis[-1] if dis else None
    crit: list[Criterion] = []
    if last is not None:
        import json

        for c in json.loads(last["criteria"]):
            crit.append(Criterion(c["name"], bool(c["ok"]), c.get("value"), c.get("need"),
                                  c.get("source", "device")))  # fmt: skip
    esc = rec.table(conn, "escorts", sid)
    scr = rec.table(conn, "screenings", sid)
    for s in scr:
        s["answers"] = rec.screening_answers(conn, int(s["id"]))
    return SessionView(
        state=state if state is not None else {},
        session_id=sid,
        infusion=inf,
        steps=rec.table(conn, "session_steps", sid),
        doses=rec.table(conn, "dose_changes", sid),
        o2=rec.table(conn, "o2_changes", sid),
        checks=rec.table(conn, "checks", sid),
        screenings=scr,
        discharge=last,
        criteria=crit,
        escort=esc[-1] if esc else None,
        warnings=warnings,
    )
