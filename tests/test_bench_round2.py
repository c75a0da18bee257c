"""Bench-test harness, round 2 (REQ-BENCH-20..): the SIL subset run concurrently within its
`make bench` budget, the session steps (reply, session state, session event, NIBP schedule),
the restart action, and the Nonin #2 poor-signal scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bedside_host.bench.runner import VirtualTarget, run_scenario
from bedside_host.bench.scenario import ScenarioError, load_scenario, parse_scenario
from bedside_host.bench.suite import load_suite, run_concurrent
from bedside_host.bench.verdict import TestResult, judge

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "bench_suite"
sys.path.insert(0, str(ROOT / "tools"))

import bench  # noqa: E402


def _failed(r: TestResult) -> list[str]:
    return [p.name for p in r.phases if p.outcome == "FAIL"]


def _text(sid: str) -> str:
    sc = next(s for s in load_suite(SUITE) if s.id == sid)
    return sc.text


@pytest.mark.slow
def test_sil_subset_part_quick_run_and_budget(tmp_path: Path) -> None:
    """REQ-BENCH-20: tools/bench_sil_subset.py is a `make bench` part with its own budget in
    tools/bench.py (its section name), writes its part where BEDSIDE_BENCH_PARTS says, and in
    quick mode (BEDSIDE_BENCH_QUICK=1) runs one short scenario on the SIL through the concurrent
    runner, its protocol and per-scenario logs (device messages too) where BEDSIDE_BENCH_OUT
    says; its latency figures say in their method that they were measured under load."""
    assert bench.section_of(ROOT / "tools" / "bench_sil_subset.py") == "sil_subset"
    assert 180 <= bench.BUDGET_S["sil_subset"] <= bench.TOTAL_BUDGET_S / 1.5
    parts = tmp_path / "parts"
    env = dict(
        os.environ,
        BEDSIDE_BENCH_PARTS=str(parts),
        BEDSIDE_BENCH_OUT=str(tmp_path / "out"),
        BEDSIDE_BENCH_QUICK="1",
    )
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_sil_subset.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=bench.QUICK_BUDGET_S,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    body = json.loads((parts / "sil_subset.json").read_text())
    assert body["section"] == "sil_subset"
    out = tmp_path / "out" / "sil-subset"  # BEDSIDE_BENCH_OUT
    assert (out / "protocol.html").is_file()
    # beside the annunciator log, every device message the bench saw and the link's counters
    rows = [
        json.loads(x)
        for x in (out / "work" / "quick-desat-ack" / "messages.jsonl").read_text().splitlines()
    ]
    assert any(r.get("msg", {}).get("type") == "heartbeat" for r in rows[:-1])
    assert rows[-1]["link"]["received"] >= len(rows) - 1 and "states" in rows[-1]
    figs = {f["name"]: f for f in body["figures"]}
    assert figs["bench SIL subset: scenarios passed"]["value"] == 1
    lat = [f for n, f in figs.items() if n.startswith("SIL quick-desat-ack:")]
    assert lat and all(isinstance(f["value"], int | float) for f in lat)
    assert all("load average" in f["method"] for f in lat)
    assert not any("virtual time" in n for n in figs)  # quick: no virtual-suite run


def test_concurrent_runner_keeps_order_and_reports_a_dead_worker(tmp_path: Path) -> None:
    """REQ-BENCH-20: the concurrent runner (`bedside bench --jobs N`) runs each scenario in its
    own worker process and returns the results in the scenarios' order, the same verdicts as
    one after the other; a scenario whose worker fails is that scenario's ERROR, not the run's."""
    suite = load_suite(SUITE, ["session-baseline-accept", "session-phase-transitions"])
    rec = run_concurrent(suite, mode="virtual", jobs=2, suite=str(SUITE), operator="t")
    assert [r.id for r in rec.results] == [s.id for s in suite]
    assert [r.outcome for r in rec.results] == ["PASS", "PASS"], [_failed(r) for r in rec.results]
    gone = tmp_path / "gone.toml"
    gone.write_text(suite[0].text)
    broken = [load_scenario(gone), suite[1]]
    gone.unlink()  # the worker cannot read it: its scenario errs, the other passes
    rec = run_concurrent(broken, mode="virtual", jobs=2, suite="t", operator="t")
    assert [r.outcome for r in rec.results] == ["ERROR", "PASS"]
    assert "worker failed" in rec.results[0].error
    with pytest.raises(ValueError, match="mode"):
        run_concurrent(suite, mode="ports", jobs=1, suite="t", operator="t")


def test_session_steps_fail_exactly_the_wrong_step() -> None:
    """REQ-BENCH-22: the session steps judge what the device did: a `reply` step the device's
    answer to the command sent at that time (accepted or refused, the reason, the discharge
    criteria failing), a `session` step the state object, a `session_event` step the event's
    latency, an `nibp_every_s` step the module's reading times; a wrong expectation of each kind
    fails exactly its own step."""
    text = _text("session-baseline-accept")
    sc = parse_scenario(text, "ok.toml")
    assert judge(run_scenario(sc, VirtualTarget())).outcome == "PASS"
    wrong = (
        text.replace('reply = "refused"\nat_s = 120', 'reply = "ok"\nat_s = 120')
        .replace("baseline_readings = 3", "baseline_readings = 4")
        .replace('session_event = "baseline_reading"\nfrom_s = 240\nwithin_s = 60',
                 'session_event = "baseline_reading"\nfrom_s = 240\nwithin_s = 20')
    )  # fmt: skip
    r = judge(run_scenario(parse_scenario(wrong, "wrong.toml"), VirtualTarget()))
    assert sorted(_failed(r)) == sorted(
        [
            "one reading: accept refused",
            "three readings counted",
            "session event per baseline reading",
        ]
    )
    sched = _text("session-nibp-schedule-recovery").replace(
        "nibp_every_s = 900", "nibp_every_s = 600"
    )
    r = judge(run_scenario(parse_scenario(sched, "s.toml"), VirtualTarget()))
    assert _failed(r) == ["recovery: every 15 min"]


def test_session_steps_validated() -> None:
    """REQ-BENCH-22: the new steps are validated with the file, line and field: an unknown
    state field, an unknown criterion, a schedule window shorter than its interval, an unknown
    session event; a restart action only on the virtual target."""
    base = _text("session-baseline-accept")
    cases = [
        (base.replace("baseline_readings = 3", "colour = 3"), "'colour' is not one of"),
        (
            base.replace('error = "(have 2)"', 'criteria_failed = ["mood"]'),
            "criteria_failed: must be a list of",
        ),
        (base.replace('"baseline_reading"', '"coffee"'), "'coffee' is not one of"),
    ]
    for text, msg in cases:
        with pytest.raises(ScenarioError, match=r"line \d+: \[\[expect\]\] #\d+\..*" + msg[:8]):
            parse_scenario(text, "bad.toml")
    rec = _text("session-nibp-schedule-recovery").replace("to_s = 5500", "to_s = 1200")
    with pytest.raises(ScenarioError, match="at least one whole interval"):
        parse_scenario(rec, "bad.toml")
    rs = _text("session-restart-mid-infusion").replace('targets = ["virtual"]\n', "")
    with pytest.raises(ScenarioError, match='restart action needs targets = \\["virtual"\\]'):
        parse_scenario(rs, "bad.toml")


def test_restart_action_restores_the_session_on_the_same_flash() -> None:
    """REQ-BENCH-23: the `restart` action (virtual target) restarts the device on the same flash
    in the middle of a scenario; the messages of the new boot are placed on the scenario's time
    axis (after the restart, not at its start), so the restored session, DEVICE_RESTARTED and
    the check due at once are judged at their real times."""
    sc = next(s for s in load_suite(SUITE) if s.id == "session-restart-mid-infusion")
    obs = run_scenario(sc, VirtualTarget())
    r = judge(obs)
    assert r.outcome == "PASS", _failed(r)
    boots = {m.get("boot") for _t, m in obs.messages}
    assert len(boots) == 3  # power-up and two restarts
    restored = [t for t, m in obs.messages if m.get("type") == "session"
                and m.get("event") == "restored"]  # fmt: skip
    assert len(restored) == 2 and 1500 <= restored[0] < 1503 and 1700 <= restored[1] < 1703
    times = [t for t, _m in obs.messages]
    assert max(times) <= sc.duration_s + 1


def test_sil_target_runs_this_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """REQ-BENCH-26: `--sil` starts `bedside sil` from the same tree as the harness (its host
    tools first on PYTHONPATH, so its firmware too), never an installed or other copy of the
    project that the environment would point to."""
    from bedside_host.bench import runner

    seen: dict[str, str] = {}

    def fake_popen(args: list[str], **kw: object) -> object:
        env = kw["env"]
        assert isinstance(env, dict)
        seen.update(env)
        raise RuntimeError("stop here")

    monkeypatch.setenv("PYTHONPATH", "/elsewhere/host_tools")
    monkeypatch.setattr(subprocess, "Popen", fake_popen)  # the module runner.py uses
    sc = next(s for s in load_suite(SUITE) if s.id == "quick-desat-ack")
    target = runner.SilTarget(tmp_path)
    with pytest.raises(RuntimeError, match="stop here"):
        target.start(sc)
    target.errlog.close()
    path = seen["PYTHONPATH"].split(os.pathsep)
    assert path[0] == str(ROOT / "host_tools") and "/elsewhere/host_tools" in path[1:]


def test_actions_without_an_observation_and_restart_elsewhere() -> None:
    """REQ-BENCH-23: `bedside simulate` performs a scenario's actions without a bench
    observation (a session command is sent, its id kept only when judged), and a `restart`
    action on a target that cannot restart is reported as not done instead of failing."""
    from typing import Any

    from bedside_host.bench.runner import Target, _do_action
    from bedside_host.bench.scenario import Action

    sent: list[tuple[str, dict[str, Any]]] = []

    class FakeLink:
        def send(self, cmd: str, **fields: Any) -> int:
            sent.append((cmd, fields))
            return 7

    op = Action(1.0, "session", {"op": "stop", "args": {}})
    assert _do_action(Target(), FakeLink(), op, 1.0) == "sent"  # type: ignore[arg-type]
    assert sent == [("session", {"op": "stop", "by": "bench"})]
    res = _do_action(Target(), FakeLink(), Action(2.0, "restart"), 2.0)  # type: ignore[arg-type]
    assert res.startswith("not done: the device cannot be restarted")
