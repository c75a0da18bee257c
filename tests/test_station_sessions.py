"""The infusion-session forms of the station: `POST /api/chairs/{id}/session/{op}` through the
host session services to a device speaking the session protocol (tests/fakedevice.py over a
pty, through the station's own link thread), every step recorded in the station's record file
(REQ-STA-3x). The real-browser test is in tests/test_station_browser.py."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from bedside_host.station.app import Hub, create_app
from bedside_host.station.model import StationModel
from fastapi.testclient import TestClient
from sessionutil import A_FULL, NO, P_FULL, wait_device_readings
from stationutil import BY, rows, station_with_device


@pytest.mark.slow
def test_session_forms_walk_a_session_with_refusals(tmp_path: Path) -> None:
    """REQ-STA-30, REQ-STA-31, REQ-STA-32: every session form through the station: open,
    screening (refused with its findings, then passed), baseline (accept refused by the device
    before its readings, repeat, accept), start (refused by the host rules before the baseline
    is accepted), dose, O2, sedation score (MOAA/S, RASS, side effects), stop, discharge
    (refused by the host with the failing score items, refused by the device with its failing
    criteria, then ready), escort and close (refused without the advice): each valid one is
    done and recorded with the operator's name by the host session services; each refusal
    answers 409 with who refused, why and what still fails, and is recorded as refused; the
    tile shows the phase and the session's times."""
    with station_with_device(tmp_path) as (run, dev):
        c = "Bay 1"
        code, r = run.step(c, "open", by=BY, patient="P-0042", course_day=3, course_total=10)
        assert code == 200 and r["ok"] and r["phase_after"] == "screening", r
        code, r = run.step(c, "screen", by=BY, answers=dict(NO, pregnancy=True), bp_sys=128,
                           bp_dia=82)  # fmt: skip
        assert code == 409 and r["refused_by"] == "host", r
        assert r["screening"]["findings"] and not r["screening"]["passed"]
        code, r = run.step(c, "start", by=BY)
        assert code == 409 and r["refused_by"] == "host"
        code, r = run.step(c, "screen", by=BY, answers=NO, bp_sys=128, bp_dia=82)
        assert code == 200 and r["phase_after"] == "baseline", r
        code, r = run.step(c, "baseline", by=BY, action="accept")
        assert code == 409 and r["refused_by"] == "device" and "baseline" in r["error"], r
        code, r = run.step(c, "start", by=BY)
        assert code == 409 and r["refused_by"] == "host" and "baseline" in r["error"], r
        for n in (1, 2):
            assert run.step(c, "baseline", by=BY, action="repeat")[0] == 200
            wait_device_readings(dev, n)
            time.sleep(dev.baseline_gap_s)
        assert run.step(c, "baseline", by=BY, action="accept")[0] == 200
        code, r = run.step(c, "start", by=BY)
        assert code == 200 and r["phase_after"] == "infusion", r
        assert run.step(c, "dose", by=BY, rate=20, units="mg/h", reason="start")[0] == 200
        assert run.step(c, "o2", by=BY, on=True, flow=2)[0] == 200
        code, r = run.step(c, "check", by=BY, moaas=4, rass=-1, nausea="mild", pain=2)
        assert code == 200 and r["state"]["last_check"]["score"] == 4, r
        assert run.step(c, "stop", by=BY)[0] == 200
        low = dict(A_FULL, spo2=0)
        code, r = run.step(c, "discharge", by=BY, aldrete=low, padss=P_FULL)
        assert code == 409 and r["refused_by"] == "host" and "aldrete_items" in r["failing"], r
        code, r = run.step(c, "discharge", by=BY, aldrete=A_FULL, padss=P_FULL)
        assert code == 409 and r["refused_by"] == "device", r
        assert {"alert", "spo2"} <= set(r["failing"]), r  # last MOAA/S 4; O2 still on
        assert all(set(x) >= {"name", "ok", "value", "need", "source"} for x in r["criteria"])
        assert run.step(c, "o2", by=BY, on=False)[0] == 200
        assert run.step(c, "check", by=BY, moaas=5)[0] == 200
        code, r = run.step(c, "discharge", by=BY, aldrete=A_FULL, padss=P_FULL)
        assert code == 200 and r["phase_after"] == "discharge_ready", r
        code, r = run.step(c, "close", by=BY, escort="Ada Okafor", relationship="daughter",
                           advice=False)  # fmt: skip
        assert code == 409 and r["refused_by"] == "host", r
        tile = run.tile(c)
        assert tile["session"]["phase"] == "discharge_ready" and tile["session"]["stopped_at"]
        code, r = run.step(c, "close", by="Ada Lee", escort="Ada Okafor",
                           relationship="daughter", advice=True)  # fmt: skip
        assert code == 200 and r["phase_after"] == "closed", r
        code, v = run.request("GET", f"/api/chairs/{c.replace(' ', '%20')}/session")
        assert code == 200 and v["state"]["phase"] == "closed"
        assert v["escort"]["name"] == "Ada Okafor"
    db = tmp_path / "station.db"
    steps = rows(db, "SELECT op, outcome, by FROM session_steps ORDER BY id")
    assert steps[:4] == [
        ("open", "done", BY),
        ("screened", "host_refused", BY),
        ("start", "host_refused", BY),
        ("screened", "done", BY),
    ], steps
    assert ("baseline", "refused", BY) in steps and steps[-1] == ("close", "done", "Ada Lee")
    assert ("discharge", "host_refused", BY) in steps and ("discharge", "refused", BY) in steps
    assert ("close", "host_refused", BY) in steps
    checks = rows(db, "SELECT score, rass, nausea, pain, by FROM checks ORDER BY id")
    assert checks == [(4, -1, "mild", 2, BY), (5, None, None, None, BY)], checks
    assert rows(db, "SELECT rate, units, reason, by FROM dose_changes") == [
        (20.0, "mg/h", "start", BY)
    ]
    assert rows(db, "SELECT name, relationship, advice FROM escorts") == [
        ("Ada Okafor", "daughter", 1)
    ]
    ready = rows(db, "SELECT ready FROM discharge_assessments ORDER BY id")
    assert [r[0] for r in ready] == [0, 0, 1]


@pytest.mark.slow
def test_session_forms_refuse_bad_input_before_anything_is_sent(tmp_path: Path) -> None:
    """REQ-STA-31: a form without the operator's name, with a blank or over-long one, an
    unknown step, an unknown or mistyped field, a value out of its range (MOAA/S 7, a dose
    reason not on the list, O2 on without a flow) or a body that is not JSON is refused with
    a readable 400 naming the problem; nothing is sent to the device and no step is recorded;
    an unknown chair is a 404."""
    with station_with_device(tmp_path) as (run, dev):
        c = "Bay 1"
        bad: list[tuple[str, dict[str, Any], str]] = [
            ("open", {"patient": "P-1", "course_day": 1, "course_total": 2}, "by"),
            ("open", {"by": "  ", "patient": "P-1", "course_day": 1, "course_total": 2},
             "operator"),
            ("open", {"by": "x" * 33, "patient": "P-1", "course_day": 1, "course_total": 2},
             "operator"),
            ("open", {"by": BY, "patient": "P-1", "course_day": "1", "course_total": 2},
             "course_day"),
            ("open", {"by": BY, "patient": "P-1", "course_day": 1, "course_total": 2, "x": 1},
             "x"),
            ("dance", {"by": BY}, "no session step"),
            ("check", {"by": BY, "moaas": 7}, "MOAA/S"),
            ("check", {"by": BY, "moaas": True}, "moaas"),
            ("baseline", {"by": BY, "action": "maybe"}, "action"),
        ]  # fmt: skip
        for op, body, why in bad:
            code, r = run.step(c, op, **body)
            assert code == 400 and why in r["error"], (op, body, r)
        code, r = run.step(c, "open", by=BY, patient="P-7", course_day=1, course_total=2)
        assert code == 200
        code, r = run.step(c, "dose", by=BY, rate=5, units="mg/h", reason="because")
        assert code == 400 and "dose reason" in r["error"], r
        code, r = run.step(c, "o2", by=BY, on=True)
        assert code == 400 and "flow" in r["error"], r
        req = urllib.request.Request(run.url + "/api/chairs/Bay%201/session/stop", data=b"{no",
                                     method="POST")  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 400
        assert run.step("Bay 9", "stop", by=BY)[0] == 404
    steps = rows(tmp_path / "station.db", "SELECT op, outcome FROM session_steps")
    assert steps == [("open", "done")], steps  # the bad forms recorded nothing
    with dev.lock:
        assert dev.sess is not None and dev.sess["phase"] == "screening"


def test_session_forms_of_a_chair_without_a_command_path(tmp_path: Path) -> None:
    """REQ-STA-32: a chair from MQTT (no link at this station) has no session forms: a step
    is refused with 409 and a readable reason, nothing is published; the forms' wording and
    where each step is allowed come from the session services."""
    model = StationModel()
    model.add_chair("clinic1/c1", "c1", device="clinic1/c1")
    with TestClient(create_app(Hub(model, tmp_path / "s.db"))) as client:
        r = client.post("/api/chairs/clinic1%2Fc1/session/stop", json={"by": BY})
        assert r.status_code == 409 and "no command path" in r.json()["error"]
        f = client.get("/api/session/forms").json()
        assert "pregnancy" in f["contraindications"] and "spo2" in f["aldrete"]
        assert f["allowed"]["check"] == ["infusion", "recovery", "discharge_ready"]
        assert f["allowed"]["open"] == ["idle", "closed"] and "5" in f["moaas"]["A"]


def test_bad_clinic_settings_stop_the_station_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-STA-31: the clinic's session settings (the `[session]` table of the host config)
    are read when the station starts: an unknown or bad one is exit 2 with one line naming
    it, before anything is served (the forms never run on settings nobody checked)."""
    import argparse

    from bedside_host.commands import station as station_cmd

    (tmp_path / "bedside").mkdir()
    (tmp_path / "bedside" / "config.toml").write_text("[session]\naldrete_mni = 9\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = argparse.Namespace(
        port=["loop://"], chair=[], db=tmp_path / "s.db", http="127.0.0.1:0", duration=0.0
    )
    assert station_cmd.run(args) == 2
    err = capsys.readouterr().err
    assert "aldrete_mni" in err and "Traceback" not in err and err.count("\n") == 1


def test_store_thread_runs_session_work_in_order(tmp_path: Path) -> None:
    """REQ-STA-30: a session step runs in the station's store thread (the Store's SQLite
    connection lives there) after the items queued before it; its drain takes the items
    queued meanwhile, in order, and stops at the next job (run after it); a job after the
    stop is refused, never left hanging; every item is recorded."""
    import threading as th

    from bedside_host.station.links import StoreThread
    from bedside_host.store import Store
    from recordsim import DeviceSim

    sim = DeviceSim(boot=3, port="/dev/ttyX")
    items = [sim.send(100 * i, "oxi", spo2=96, pr=60) for i in range(1, 5)]
    st = StoreThread(tmp_path / "s.db")
    st.start()
    assert st.ready.wait(5)
    go = th.Event()
    seen: dict[str, Any] = {}

    def first(store: Store) -> int:
        seen["thread"] = th.get_ident()
        go.wait(5)
        drained = st.take_items()
        for i in drained:
            store.add(i)  # as SessionService._drain does
        seen["drained"] = [i.msg["seq"] for i in drained]
        return 1

    st.put(items[0])
    f1 = st.call(first)
    st.put(items[1])
    st.put(items[2])
    f2 = st.call(lambda store: seen.setdefault("second", store.counts()["raw_lines"]))
    st.put(items[3])
    go.set()
    assert f1.result(5) == 1 and f2.result(5) is not None
    st.stop()
    assert seen["thread"] == st.ident and seen["drained"] == [2, 3]
    with pytest.raises(ConnectionError):
        st.call(lambda store: None).result(1)
    s = Store(tmp_path / "s.db")
    try:
        assert s.counts()["raw_lines"] == 4
    finally:
        s.close()
