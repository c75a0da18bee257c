"""Session steps in the record file (bedside_host.session.service, bedside_host.session_records,
the store's migration and derivation): every step with who and when, the typed rows, refusals
recorded, the recorder's session rows from device messages (REQ-SES-52..59, 70, 73)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bedside_host import session_records as rec
from bedside_host.link.messages import Received
from bedside_host.session.scores import Check
from bedside_host.session.screening import Screening
from bedside_host.session.values import InvalidInput
from bedside_host.store import SCHEMA_VERSION, Store
from sessionutil import A_FULL, BY, NO, P_FULL, Rig, rig, walk


def _steps(r: Rig) -> list[dict[str, Any]]:
    return rec.rows(r.store.conn, "SELECT * FROM session_steps ORDER BY id")


def _session_cmds(r: Rig) -> list[dict[str, Any]]:
    return r.dev.commands_of("session")


def test_every_step_is_recorded_with_who_and_when(tmp_path: Path) -> None:
    """REQ-SES-52: a whole session through the services (open, screen, baseline repeat and
    accept, start, dose, O2, check, stop, discharge, close) is one infusion session of the
    record file (sessions kind 'infusion' with its infusions row), and each step is a
    session_steps row with the operator, the host time, what was entered, the outcome and the
    phases before and after; the device got each op with `by`."""
    with rig(tmp_path) as r:
        t0 = time.time()
        walk(r, "infusion")
        s = r.svc
        assert s.o2(BY, True, 2).ok
        assert s.check(BY, Check(moaas=4, rass=-1, dissociation="mild", nausea="none", pain=2,
                                 note="calm")).ok  # fmt: skip
        assert s.o2(BY, False).ok
        assert s.check(BY, Check(moaas=5)).ok
        assert s.stop(BY).ok
        assert s.discharge(BY, A_FULL, P_FULL).ok
        res = s.close(BY, "Ada Okafor", "daughter", True)
        assert res.ok and res.phase_after == "closed"
        conn = r.store.conn
        (sess,) = [x for x in r.store.sessions() if x.kind == "infusion"]
        inf = rec.infusion(conn, sess.id)
        assert inf is not None
        assert (inf["patient"], inf["course_day"], inf["course_total"]) == ("P-0042", 3, 10)
        assert inf["phase"] == "closed" and inf["closed"] is not None
        assert inf["opened_by"] == BY and inf["closed_by"] == BY
        assert json.loads(inf["baseline"])["sys"] == 128
        steps = _steps(r)
        ops = [x["op"] for x in steps]
        assert ops == ["open", "screened", "baseline", "baseline", "baseline", "start", "dose",
                       "o2", "check", "o2", "check", "stop", "discharge", "close"]  # fmt: skip
        assert all(x["by"] == BY and x["session_id"] == sess.id for x in steps)
        assert all(t0 <= x["t"] <= time.time() for x in steps)
        assert [x["outcome"] for x in steps] == ["done"] * len(steps)
        assert (steps[0]["phase_before"], steps[0]["phase_after"]) == ("idle", "screening")
        assert json.loads(steps[0]["args"]) == {"patient": "P-0042", "course_day": 3,
                                                "course_total": 10}  # fmt: skip
        cmds = _session_cmds(r)
        assert [c["op"] for c in cmds] == [x["op"] for x in steps]
        assert all(c["by"] == BY for c in cmds)


def test_typed_rows_of_each_step(tmp_path: Path) -> None:
    """REQ-SES-53: the screening with its answers, each dose change (rate, units, reason, note),
    O2 on/off with flow, each check (MOAA/S with variant, RASS, dissociation, nausea, pain,
    note), the discharge assessment (Aldrete and PADSS items, totals, pass, the criteria) and
    the escort (name, relationship, advice, no-driving hours) are rows of their tables, each
    with who and when and the step that made it."""
    with rig(tmp_path) as r:
        walk(r, "infusion")
        s = r.svc
        assert s.dose(BY, 30, "mg/h", "pain", "pain 7/10").ok
        assert s.o2(BY, True, 3).ok
        assert s.check(BY, Check(moaas=3, variant="B", rass=-2, dissociation="moderate",
                                 nausea="mild", pain=4, note="drowsy")).ok  # fmt: skip
        assert s.o2(BY, False).ok
        assert s.check(BY, Check(moaas=5)).ok
        assert s.stop(BY).ok
        assert s.discharge(BY, A_FULL, {**P_FULL, "pain": 1}).ok
        assert s.close(BY, "Ada Okafor", "daughter", True).ok
        conn = r.store.conn
        sid = int(rec.last_infusion(conn, r.link.url)["session_id"])  # type: ignore[index]
        (scr,) = rec.table(conn, "screenings", sid)
        assert scr["passed"] == 1 and json.loads(scr["findings"]) == []
        assert (scr["bp_sys"], scr["bp_dia"], scr["by"]) == (128, 82, BY)
        answers = rec.screening_answers(conn, int(scr["id"]))
        assert [(a["item"], a["answer"]) for a in answers] == [(k, 0) for k in NO]
        doses = rec.table(conn, "dose_changes", sid)
        assert [(d["rate"], d["units"], d["reason"], d["note"]) for d in doses] == [
            (20, "mg/h", "start", None), (30, "mg/h", "pain", "pain 7/10")]  # fmt: skip
        o2 = rec.table(conn, "o2_changes", sid)
        assert [(x["on_o2"], x["flow"]) for x in o2] == [(1, 3), (0, None)]
        checks = rec.table(conn, "checks", sid)
        c = checks[0]
        assert (c["score"], c["variant"], c["rass"], c["dissociation"], c["nausea"], c["pain"],
                c["note"]) == (3, "B", -2, "moderate", "mild", 4, "drowsy")  # fmt: skip
        assert [x["score"] for x in checks] == [3, 5]
        (dis,) = rec.table(conn, "discharge_assessments", sid)
        assert dis["aldrete_total"] == 10 and dis["padss_total"] == 9 and dis["ready"] == 1
        assert json.loads(dis["padss"])["surgical_bleeding"] == 2
        names = {c["name"]: c for c in json.loads(dis["criteria"])}
        assert names["padss_items"]["ok"] and names["padss_items"]["source"] == "host"
        (esc,) = rec.table(conn, "escorts", sid)
        assert (esc["name"], esc["relationship"], esc["advice"], esc["no_driving_h"]) == (
            "Ada Okafor", "daughter", 1, 24)  # fmt: skip
        step_ids = {x["id"] for x in _steps(r)}
        for t in ("screenings", "dose_changes", "o2_changes", "checks", "escorts"):
            assert all(row["step_id"] in step_ids for row in rec.table(conn, t, sid))


def test_refusals_are_recorded_and_host_refusals_send_nothing(tmp_path: Path) -> None:
    """REQ-SES-54: a step the host rules refuse (start before the baseline is accepted, dose in
    screening, a screening with a finding and no override) is recorded as host_refused with
    its reason and nothing is sent to the device; a step the device refuses (accept with too few
    baseline readings) is recorded as refused with the device's reason; neither changes the
    phase."""
    with rig(tmp_path) as r:
        s = r.svc
        assert s.open(BY, "P-7", 1, 5).ok
        res = s.dose(BY, 10, "mg/h", "start")
        assert not res.ok and res.refused_by == "host" and "phase screening" in res.error
        bad = s.screen(BY, Screening({**NO, "hepatic": True}, 120, 80))
        assert not bad.ok and bad.refused_by == "host"
        assert "override" in bad.error and "severe hepatic disease" in bad.error
        assert len(_session_cmds(r)) == 1  # only the open
        assert s.screen(BY, Screening({**NO, "hepatic": True}, 120, 80, "", "Dr Lee",
                                      "LFTs normal last week")).ok  # fmt: skip
        assert _session_cmds(r)[-1]["override"] is True
        early = s.start(BY)
        assert not early.ok and early.refused_by == "host" and "baseline" in early.error
        acc = s.baseline(BY, "accept")
        assert not acc.ok and acc.refused_by == "device"
        assert "baseline needs 2 NIBP readings" in acc.error
        steps = _steps(r)
        got = [(x["op"], x["outcome"]) for x in steps]
        assert got == [("open", "done"), ("dose", "host_refused"), ("screened", "host_refused"),
                       ("screened", "done"), ("start", "host_refused"),
                       ("baseline", "refused")]  # fmt: skip
        assert "override" in steps[2]["error"] and "baseline needs" in steps[5]["error"]
        assert all(x["phase_before"] == x["phase_after"] for x in steps if x["outcome"] != "done")
        conn = r.store.conn
        sid = int(steps[0]["session_id"])
        scr = rec.table(conn, "screenings", sid)
        assert [(x["passed"], x["override_by"]) for x in scr] == [(0, None), (1, "Dr Lee")]


def test_bad_input_is_refused_before_anything_is_sent_or_recorded(tmp_path: Path) -> None:
    """REQ-SES-55: bad step input (an empty operator, a patient id over 32 characters, course
    day after the course's end, a negative rate, unknown dose reason, O2 on without flow or
    flow out of 1..15, O2 off with a flow, an escort without a name, a bad cancel reason)
    raises InvalidInput; nothing is sent or recorded."""
    with rig(tmp_path) as r:
        s = r.svc
        calls: list[tuple[Callable[[], object], str]] = [
            (lambda: s.open("", "P", 1, 2), "operator"),
            (lambda: s.open(BY, "P" * 33, 1, 2), "patient is longer than 32"),
            (lambda: s.open(BY, "P", 3, 2), "after the course's end"),
            (lambda: s.open(BY, "P", 0, 2), "course day must be"),
            (lambda: s.dose(BY, -1, "mg/h", "start"), "rate must be"),
            (lambda: s.dose(BY, 10, "mg/h", "boredom"), "dose reason must be one of"),
            (lambda: s.dose(BY, 10, "", "start"), "units must not be empty"),
            (lambda: s.o2(BY, True), "needs the flow"),
            (lambda: s.o2(BY, True, 16), "flow"),
            (lambda: s.o2(BY, False, 2), "takes no flow"),
            (lambda: s.close(BY, " ", "son", True), "escort name must not be empty"),
            (lambda: s.cancel(BY, "r" * 33), "cancel reason is longer"),
            (lambda: s.baseline(BY, "redo"), "repeat or accept"),
            (lambda: s.check(BY, Check(moaas=9)), "MOAA/S"),
        ]
        for call, msg in calls:
            with pytest.raises(InvalidInput, match=msg):
                call()
        assert _session_cmds(r) == [] and _steps(r) == []


def test_device_phase_is_followed_and_a_disagreement_reported(tmp_path: Path) -> None:
    """REQ-SES-56: before each step the host reads the device's state; when the device's phase
    differs from the phase the record last saw (here: the infusion was stopped on the device),
    the step follows the device, and the disagreement is reported in the result's warnings and
    in the step's note."""
    with rig(tmp_path) as r:
        walk(r, "infusion")
        with r.dev.lock:  # the nurse stopped the infusion with the device's key sequence
            assert r.dev.sess is not None
            r.dev.sess["phase"] = "recovery"
            r.dev.sess["recovery_t"] = time.monotonic()
        res = r.svc.check(BY, Check(moaas=5))
        assert res.ok and res.phase_before == "recovery"
        assert any("record last saw" in w and "infusion" in w for w in res.warnings)
        assert "record last saw" in (_steps(r)[-1]["note"] or "")
        again = r.svc.stop(BY)
        assert not again.ok and again.refused_by == "host" and "phase recovery" in again.error


def test_a_restart_restores_the_session_and_the_record_continues(tmp_path: Path) -> None:
    """REQ-SES-57: after a device restart in the middle of an infusion the device restores the
    session (same device session number, phase, baseline) and says so; the next step is
    recorded in the same infusion session of the record file, with the restore noted."""
    with rig(tmp_path) as r:
        walk(r, "infusion")
        r.dev.restart()
        end = time.monotonic() + 15
        res = None
        while time.monotonic() < end:
            for item in r.link.poll(0.05):  # recorded, as `bedside record` would
                r.store.add(item)
            if r.link.state == "live":
                try:
                    res = r.svc.dose(BY, 25, "mg/h", "pain")
                    break
                except Exception:
                    time.sleep(0.1)
        assert res is not None and res.ok
        assert any("restored" in w for w in res.warnings)
        infusions = [x for x in r.store.sessions() if x.kind == "infusion"]
        assert len(infusions) == 1
        conn = r.store.conn
        doses = rec.table(conn, "dose_changes", infusions[0].id)
        assert [d["rate"] for d in doses] == [20, 25]

        def events() -> list[dict[str, Any]]:
            return rec.table(conn, "session_events", infusions[0].id)

        # the device's own `session` line of the dose follows its reply: read on until it came
        end = time.monotonic() + 15
        while time.monotonic() < end and not any(
            e["boot"] == 2 and e["event"] == "dose" for e in events()
        ):
            for item in r.link.poll(0.05):
                r.store.add(item)
            r.store.flush()
        assert {e["boot"] for e in events()} == {1, 2}  # both boots' events in one session
        assert [e["event"] for e in events() if e["boot"] == 2] == ["restored", "dose"]


def _line(seq: int, boot: int, t_ms: int, event: str, state: dict[str, Any],
          by: str | None = None) -> Received:  # fmt: skip
    msg = {"v": 2, "seq": seq, "boot": boot, "type": "session", "t_ms": t_ms, "event": event,
           "by": by, "session": state}  # fmt: skip
    rx = 1000.0 + 100 * boot + seq
    return Received("/dev/ttyACM0", json.dumps(msg), msg, rx, rx, False)


def _state(phase: str, **kw: Any) -> dict[str, Any]:
    return {"id": 7, "patient": "P-9", "course_day": 2, "course_total": 4, "phase": phase,
            "baseline": None, **kw}  # fmt: skip


def test_recorder_derives_session_rows_from_device_messages(tmp_path: Path) -> None:
    """REQ-SES-58: the store (so `bedside record` and `monitor --db`) turns device `session`
    messages into an infusion session and session_events rows: open creates it, later events
    (also a `restored` one in a new boot, and events without an operator from the device's
    keys) join it, the baseline is kept, close ends it, and a line of the session read after
    its close joins the closed session instead of opening another; a duplicate line is stored
    once."""
    path = tmp_path / "rec.db"
    base = {"sys": 130, "dia": 80, "map": 97, "pr": 70, "spo2": 98}
    with Store(path) as st:
        st.add(_line(1, 3, 1000, "open", _state("screening"), "RN A"))
        st.add(_line(2, 3, 2000, "screened", _state("baseline"), "RN A"))
        st.add(_line(3, 3, 3000, "baseline", _state("baseline", baseline=base), "RN A"))
        st.add(_line(4, 3, 4000, "start", _state("infusion", baseline=base)))
        st.add(_line(4, 3, 4000, "start", _state("infusion", baseline=base)))  # again
        st.add(_line(1, 4, 500, "restored", _state("infusion", baseline=base, restored=True)))
        st.add(_line(2, 4, 900, "stop", _state("recovery", baseline=base), "RN B"))
        st.flush()
        (s,) = [x for x in st.sessions() if x.kind == "infusion"]
        assert s.label == "infusion P-9 day 2/4 (device session 7)"
        events = rec.table(st.conn, "session_events", s.id)
        assert [(e["event"], e["boot"], e["by"]) for e in events] == [
            ("open", 3, "RN A"), ("screened", 3, "RN A"), ("baseline", 3, "RN A"),
            ("start", 3, None), ("restored", 4, None), ("stop", 4, "RN B")]  # fmt: skip
        inf = rec.infusion(st.conn, s.id)
        assert inf is not None and inf["phase"] == "recovery" and inf["closed"] is None
        assert json.loads(inf["baseline"]) == base and inf["opened_by"] == "RN A"
        st.add(_line(3, 4, 1900, "close", _state("closed", baseline=base), "RN B"))
        # a line of the session read after its close (order of reply and message under load)
        late = _line(9, 4, 1500, "discharge", _state("discharge_ready", baseline=base), "RN B")
        st.add(late)
        st.add(_line(4, 4, 2900, "open", {**_state("screening"), "id": 8, "patient": "P-10"},
                     "RN B"))  # fmt: skip
        st.flush()
        late_rows = [e for e in rec.table(st.conn, "session_events", s.id) if e["event"] ==
                     "discharge"]  # fmt: skip
        assert len(late_rows) == 1  # the late line joined the closed session
        inf = rec.infusion(st.conn, s.id)
        assert inf is not None and inf["closed"] == pytest.approx(1403.0)
        assert inf["closed_by"] == "RN B"
        labels = [str(x.label) for x in st.sessions() if x.kind == "infusion"]
        assert len(labels) == 2 and labels[1].startswith("infusion P-10")  # nothing reopened
        assert st.session(s.id).ended == pytest.approx(1403.0)


def test_migration_adds_the_session_tables_and_keeps_rows(tmp_path: Path) -> None:
    """REQ-SES-59: one migration takes a record file of the previous version to
    SCHEMA_VERSION: the session tables exist, boot sessions and lines are kept; an infusion
    session's lines are the device's lines from open to close (any boot)."""
    path = tmp_path / "old.db"
    with Store(path) as st:
        st.add(Received("/dev/ttyACM0", "{}", {"v": 2, "seq": 1, "boot": 3, "type": "oxi",
                                               "t_ms": 10, "spo2": 97, "pr": 70}, 999.0, 999.0,
                        False))  # fmt: skip
    conn = sqlite3.connect(path)
    for t in rec.TABLES[::-1]:
        conn.execute(f"DROP TABLE {t}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.commit()
    conn.close()
    with Store(path) as st:
        assert st.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert all(st.counts()[t] == 0 for t in rec.TABLES)
        assert [x.kind for x in st.sessions()] == ["boot"]
        st.add(_line(2, 3, 20, "open", _state("screening")))  # rx 1302
        st.add(Received("/dev/ttyACM0", "{}", {"v": 2, "seq": 3, "boot": 3, "type": "oxi",
                                               "t_ms": 30, "spo2": 96, "pr": 71}, 1304.0, 1304.0,
                        False))  # fmt: skip
        st.flush()
        inf = next(x for x in st.sessions() if x.kind == "infusion")
        assert [v["spo2"] for v in st.vitals(inf)] == [96]  # not the line before the open
        assert inf.messages == 2


def test_the_devices_thresholds_win_over_the_host_config(tmp_path: Path) -> None:
    """REQ-SES-70: where the device has the same clinic setting (aldrete_min, padss_min,
    sedation_score_max) the host scores and warns with the device's value, so host and device
    never disagree on a discharge or on deep sedation; the host config is the fallback."""
    with rig(tmp_path) as r:
        walk(r, "recovery")
        s = r.svc
        eight = {**A_FULL, "spo2": 1, "circulation": 1}
        res = s.discharge(BY, eight, {**P_FULL, "pain": 1, "ambulation": 1})
        assert not res.ok and res.refused_by == "host" and "total 8 below 9" in res.error
        with r.dev.lock:
            r.dev.settings.values.update(aldrete_min=8, padss_min=8, sedation_score_max=3)
            r.dev.aldrete_min = r.dev.padss_min = 8
        assert s.effective_clinic().aldrete_min == 8
        chk = s.check(BY, Check(moaas=3))
        assert chk.ok and "deep sedation (at or below 3)" in " ".join(chk.warnings)
        assert s.check(BY, Check(moaas=5)).ok
        res = s.discharge(BY, eight, {**P_FULL, "pain": 1, "ambulation": 1})
        assert res.ok, res.error
        host = {c.name: c for c in res.criteria if c.source == "host"}
        assert host["aldrete_items"].ok and host["aldrete_items"].need.startswith(">= 8")


def test_cancel_closes_and_the_next_open_is_a_new_session(tmp_path: Path) -> None:
    """REQ-SES-73: cancel (screening or baseline, with a reason) closes the session in the
    record with who and why; close without the no-driving advice is refused by the host; the
    next open is a new infusion session of the record file with the device's next number."""
    with rig(tmp_path) as r:
        s = r.svc
        assert s.open(BY, "P-1", 1, 2).ok
        assert s.screen(BY, Screening(NO, 120, 80)).ok
        res = s.cancel(BY, "patient unwell today")
        assert res.ok and (res.phase_before, res.phase_after) == ("baseline", "closed")
        first = res.session_id
        assert first is not None
        inf = rec.infusion(r.store.conn, first)
        assert inf is not None and inf["closed"] is not None and inf["closed_by"] == BY
        assert json.loads(_steps(r)[-1]["args"]) == {"reason": "patient unwell today"}
        again = s.open(BY, "P-2", 1, 2)
        assert again.ok and again.session_id not in (None, first)
        assert again.state is not None and again.state["id"] == inf["dev_session"] + 1
        assert len([x for x in r.store.sessions() if x.kind == "infusion"]) == 2
        with r.dev.lock:  # straight to discharge_ready on the device
            assert r.dev.sess is not None
            r.dev.sess["phase"] = "discharge_ready"
        no_advice = s.close(BY, "Ada", "sister", False)
        assert not no_advice.ok and no_advice.refused_by == "host"
        assert "no-driving advice" in no_advice.error
