"""Bench-test harness: scenario format, standard suite, runners, fault-injection proof, outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bedside_host.bench.protocol import (
    RunRecord,
    junit_xml,
    protocol_html,
    write_outputs,
    write_pdf,
)
from bedside_host.bench.runner import PortTarget, SilTarget, VirtualTarget, run_scenario
from bedside_host.bench.scenario import (
    ACTIONS,
    CRITERIA,
    EXPECT_KINDS,
    FAULTS,
    SESSION_OPS,
    ScenarioError,
    parse_scenario,
)
from bedside_host.bench.stimulus import wrong_baud
from bedside_host.bench.suite import load_suite, run_concurrent, run_one
from bedside_host.bench.verdict import TestResult, crossing_time, judge

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "bench_suite"
DOCS = ROOT / "docs"
BEDSIDE = [sys.executable, "-m", "bedside_host.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))

from bedside.alarms import conditions as fwc  # noqa: E402


def _scenario(sid: str) -> Any:
    return next(s for s in load_suite(SUITE) if s.id == sid)


def _failed(r: TestResult) -> set[str]:
    return {p.name for p in r.phases if p.outcome == "FAIL"}


# --- format and validation --------------------------------------------------------------------


def test_docs_example_scenario_is_valid() -> None:
    """REQ-BENCH-01: docs/scenarios.md holds a complete example of the versioned format (every
    table and step kind) that loads, and it documents every fault kind and action."""
    text = (DOCS / "scenarios.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert blocks, "docs/scenarios.md has no ```toml example"
    sc = parse_scenario(blocks[0], "docs/scenarios.md example")
    more = [
        parse_scenario(b, f"docs/scenarios.md example {i + 2}") for i, b in enumerate(blocks[1:])
    ]
    assert {e.kind for x in [sc, *more] for e in x.expects} == set(EXPECT_KINDS)
    kinds = {e.kind for e in sc.expects}
    assert kinds == {
        "raised",
        "ended",
        "event",
        "not_raised",
        "state",
        "signal",
        "display",
        "heartbeat",
    }
    assert sc.settings and sc.ramps and sc.faults and sc.actions
    for kind in FAULTS:
        assert f"`{kind}`" in text, f"fault kind {kind} not documented"
    for act in ACTIONS:
        assert f"`{act}`" in text, f"action {act} not documented"


_GOOD = """format = "bedside-scenario"
version = 1
id = "x"
title = "t"
requirements = ["REQ-BENCH-01"]
duration_s = 30

[[ramp]]
at_s = 5
over_s = 5
spo2 = 80

[[expect]]
raised = "SPO2_DESAT"
within_s = 5
"""


@pytest.mark.parametrize(
    ("change", "line", "needle"),
    [
        (("version = 1", "version = 2"), 2, "version 2 is not supported"),
        (("spo2 = 80", "spo2 = 180"), 11, "[[ramp]] #1.spo2: must be within 50..100"),
        (('raised = "SPO2_DESAT"', 'raised = "SPO2_GONE"'), 14, "unknown condition 'SPO2_GONE'"),
        (("within_s = 5", "within_s = 5\nwithin = 3"), 16, "[[expect]] #1.within: unknown field"),
        (
            ("duration_s = 30", "duration_s = 30\n[settings]\nspo2_low = 99"),
            8,
            "[settings].spo2_low",
        ),
        (("duration_s = 30", "duration_s = 30\n[settings]\nspo2_desat = 93"), 7, "spo2_desat"),
        (("at_s = 5\nover_s", "at_s = 99\nover_s"), 9, "must be within 0..30"),
        (('id = "x"', 'id = "Bad Id"'), 3, "lower case"),
        (
            ("within_s = 5", 'within_s = 5\n[[fault]]\nkind = "garbage"\nat_s = 1'),
            16,
            "[[fault]] #1.rate: is required",
        ),
        (
            ("within_s = 5", 'within_s = 5\n[[action]]\nat_s = 1\ndo = "session"\nop = "fly"'),
            19,
            "'fly' is not one of",
        ),
    ],
)
def test_bad_scenarios_name_file_line_and_field(
    change: tuple[str, str], line: int, needle: str
) -> None:
    """REQ-BENCH-01: a bad scenario file is refused with one line naming the file, the line
    and the field, and why."""
    text = _GOOD.replace(*change, 1)
    assert text != _GOOD
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(text, "bad.toml")
    msg = str(ei.value)
    assert msg.startswith("bad.toml: "), msg
    assert "\n" not in msg
    assert needle in msg, msg
    if line:
        assert f"line {line}:" in msg, msg


def test_not_toml_and_missing_fields() -> None:
    """REQ-BENCH-01: TOML syntax errors keep the parser's line; missing steps are refused."""
    with pytest.raises(ScenarioError, match=r"bad.toml: not valid TOML: .*line 2"):
        parse_scenario('format = "bedside-scenario"\nversion = = 1\n', "bad.toml")
    no_steps = _GOOD[: _GOOD.index("[[expect]]")]
    with pytest.raises(ScenarioError, match="at least one"):
        parse_scenario(no_steps, "bad.toml")


# --- the standard suite -----------------------------------------------------------------------


def test_suite_covers_every_condition_of_the_table() -> None:
    """REQ-BENCH-02: the standard suite has at least 40 scenarios; every condition id of the
    firmware's table (read from conditions.py) is raised by at least one scenario's step; every
    inactivation rule has a scenario, and the real-time SIL subset has one scenario per priority
    and per inactivation rule."""
    suite = load_suite(SUITE)
    assert len(suite) >= 40
    raised = {e.condition for sc in suite for e in sc.expects if e.kind == "raised"}
    missing = [c for c in fwc.IDS if c not in raised]
    assert not missing, f"no scenario raises {missing}"
    tags = {t for sc in suite for t in sc.tags}
    for rule in ("pause", "break-through", "latching", "reset", "audio-off", "audio-off-end"):
        assert f"inactivation-{rule}" in tags, rule
    events = {e.event for sc in suite for e in sc.expects if e.kind == "event"}
    assert {"ack", "pause_end", "reset", "escalate"} <= events
    # the real-time SIL subset (make bench): one scenario per priority and per rule
    sub = {t for sc in suite if "sil-subset" in sc.tags for t in sc.tags}
    for tag in ("priority-high", "priority-medium", "priority-low", "inactivation-pause",
                "inactivation-break-through", "inactivation-latching", "inactivation-reset",
                "inactivation-audio-off", "inactivation-audio-off-end"):  # fmt: skip
        assert tag in sub, tag


def test_suite_covers_every_session_phase_op_and_rule() -> None:
    """REQ-BENCH-21: the standard suite sends every infusion-session op (the op table of the
    scenario format, which mirrors the firmware's) and checks every session phase of the
    firmware (a `session` or `heartbeat` step), an accepted and a refused reply, every
    discharge criterion failing alone, the reminder, overdue and restored events, CHECK_OVERDUE
    and its escalation, SEDATION_DEEP raised and ended, and the NIBP schedule in infusion and
    recovery."""
    from bedside.session import PHASES

    suite = load_suite(SUITE)
    sent = {a.fields["op"] for sc in suite for a in sc.actions if a.do == "session"}
    assert sent == set(SESSION_OPS), set(SESSION_OPS) - sent
    seen = {e.fields["phase"] for sc in suite for e in sc.expects
            if e.kind in ("session", "heartbeat") and "phase" in e.fields}  # fmt: skip
    assert seen >= set(PHASES), set(PHASES) - seen
    steps = [e for sc in suite for e in sc.expects]
    assert {e.text for e in steps if e.kind == "reply"} == {"ok", "refused"}
    alone = [tuple(e.fields["criteria_failed"]) for e in steps if "criteria_failed" in e.fields]
    assert {c for (c,) in (a for a in alone if len(a) == 1)} == set(CRITERIA)
    events = {e.event for e in steps if e.kind == "session_event"}
    assert {"reminder", "overdue", "restored"} <= events
    raised = {(e.kind, e.condition, e.event) for e in steps if e.condition}
    assert ("raised", "CHECK_OVERDUE", "raise") in raised
    assert ("event", "CHECK_OVERDUE", "escalate") in raised
    assert ("raised", "SEDATION_DEEP", "raise") in raised
    assert ("ended", "SEDATION_DEEP", "end") in raised
    every = {e.fields["every_s"] for e in steps if e.kind == "nibp_every_s"}
    assert {300.0, 900.0} <= every
    tags = {t for sc in suite for t in sc.tags}
    assert {"session-phases", "session-baseline", "session-nibp", "session-checks",
            "session-discharge", "session-restart", "session-full"} <= tags  # fmt: skip


def test_suite_scenarios_name_known_requirements() -> None:
    """REQ-BENCH-02: every scenario names requirement ids, and each id is a row of
    docs/requirements.md."""
    rows = set(
        re.findall(r"^\| (REQ-[A-Z]+-\d+) \|", (DOCS / "requirements.md").read_text(), re.M)
    )
    for sc in load_suite(SUITE):
        assert sc.requirements
        unknown = [r for r in sc.requirements if r not in rows]
        assert not unknown, f"{sc.path}: {unknown} not in docs/requirements.md"


def test_standard_suite_passes_in_virtual_time(tmp_path: Path) -> None:
    """REQ-BENCH-03, REQ-BENCH-06, REQ-BENCH-21: the whole standard suite (realistic
    physiology: ketamine response, desaturations of several depths and speeds, brief dips and
    motion artifact that must not alarm, bradycardia, hypotension; a 4-hour infusion; every
    infusion-session scenario, a 5-hour titrated session among them) passes against the
    firmware core in virtual time, in two worker processes; none is skipped (the firmware has
    the session commands)."""
    suite = load_suite(SUITE)
    t0 = time.perf_counter()
    # both cores: the scenarios in two worker processes (bedside bench --virtual --jobs 2)
    rec = run_concurrent(suite, mode="virtual", jobs=2, suite=str(SUITE), operator="ci")
    wall = time.perf_counter() - t0
    bad = {
        r.id: sorted(_failed(r)) or r.error for r in rec.results if r.outcome in ("FAIL", "ERROR")
    }
    assert not bad, bad
    skipped = [r for r in rec.results if r.outcome == "SKIP"]
    assert not skipped, [(r.id, r.error) for r in skipped]  # the firmware has the session
    virtual = sum(r.duration_s for r in rec.results)
    four = next(r for r in rec.results if r.id == "four-hour-infusion")
    assert four.outcome == "PASS" and four.duration_s == 4 * 3600
    paths = write_outputs(rec, tmp_path)
    print(
        f"\nbench suite: {len(rec.results)} scenarios, {virtual / 3600:.2f} h virtual in "
        f"{wall:.1f} s wall; 4-hour infusion {four.wall_s:.1f} s; {paths['protocol']}"
    )


def test_wrong_baud_model_reads_garbage() -> None:
    """REQ-BENCH-03: the wrong-baud fault is a UART model: bytes sent at the receiver's own
    rate come through unchanged, at twice the rate they become framing garbage."""
    data = bytes(range(0, 256, 7))
    assert wrong_baud(data, 9600, 9600, [0.0]) == data
    fast = wrong_baud(data, 19200, 9600, [0.0])
    assert fast != data and len(fast) < len(data)


def test_session_steps_validated_and_skipped_without_session() -> None:
    """REQ-BENCH-04: infusion-session steps are one more kind of operator action (`session`
    op with its arguments, checked against the op table); a scenario that requires the session
    commands is skipped, not failed, on a device without them."""
    sc = _scenario("session-check-overdue")
    ops = [a.fields["op"] for a in sc.actions if a.do == "session"]
    assert ops[:2] == ["open", "screened"] and "start" in ops
    bad = _GOOD.replace(
        "within_s = 5",
        'within_s = 5\n[[action]]\nat_s = 1\ndo = "session"\nop = "dose"\nargs = {speed = 1}',
    )
    with pytest.raises(ScenarioError, match="'speed' is not an argument of session op dose"):
        parse_scenario(bad, "s.toml")
    from bedside_host.bench.runner import has_session_commands

    r = run_one(sc, VirtualTarget)
    if has_session_commands():
        assert r.outcome in ("PASS", "FAIL")
    else:
        assert r.outcome == "SKIP" and "session" in r.error


# --- fault-injection rule ---------------------------------------------------------------------


def _delay(cond: int, extra_ms: int) -> Callable[[Any], None]:
    def hook(dev: Any) -> None:
        eng = dev.alarms
        orig = eng.delay_ms
        eng.delay_ms = lambda i: orig(i) + (extra_ms if i == cond else 0)

    return hook


def _disable(cond: int) -> Callable[[Any], None]:
    def hook(dev: Any) -> None:
        eng = dev.alarms
        orig = eng.report
        eng.report = lambda i, raw, v, lim, now: orig(i, False if i == cond else raw, v, lim, now)

    return hook


def _ignore_lease(dev: Any) -> None:
    orig = dev.set_audio_off
    dev.set_audio_off = lambda on, lease_s, reason: orig(on, lease_s * 100, reason)


@pytest.mark.parametrize(
    ("sid", "hook", "steps"),
    [
        ("desat-moderate-slow", _delay(fwc.SPO2_LOW, 10_000), {"raised SPO2_LOW"}),
        ("desat-deep-fast", _delay(fwc.SPO2_DESAT, 4_000), {"raised SPO2_DESAT"}),
        ("finger-out", _disable(fwc.OXI_SENSOR_OFF), {"raised OXI_SENSOR_OFF"}),
        ("hypertension", _disable(fwc.NIBP_DIA_HIGH), {"raised NIBP_DIA_HIGH"}),
        (
            "audio-off-lease-expires",
            _ignore_lease,
            {"heartbeat audio_off=False", "HIGH sounds again after the lease"},
        ),
    ],
)
def test_broken_device_fails_exactly_the_catching_step(
    sid: str, hook: Callable[[Any], None], steps: set[str]
) -> None:
    """REQ-BENCH-07: each injected device fault (a rule disabled, a delay added, the AUDIO OFF
    lease ignored) fails exactly the step(s) that must catch it; every other step passes, and
    the intact device passes them all."""
    sc = _scenario(sid)
    assert judge(run_scenario(sc, VirtualTarget())).outcome == "PASS"
    broken = judge(run_scenario(sc, VirtualTarget(device_hook=hook)))
    assert _failed(broken) == steps
    assert all(p.outcome == "PASS" for p in broken.phases if p.name not in steps)


def test_latency_from_simulator_crossing_and_marginal() -> None:
    """REQ-BENCH-08: latency runs from the simulator's own timestamp of the crossing (the first
    oximeter unit past the limit on the wire) to the device's report and to the first sounder
    pulse; a latency within 10 % of its limit passes but is marked marginal."""
    sc = _scenario("desat-deep-fast")
    obs = run_scenario(sc, VirtualTarget())
    cross = crossing_time(obs, "SPO2_DESAT", 0.0)
    assert cross is not None
    first_low = next(t for t, s, _p in obs.stimulus.wire if s is not None and s < 85)
    assert cross == first_low
    r = judge(obs)
    ph = next(p for p in r.phases if p.name == "raised SPO2_DESAT")
    ms = {m.name: m for m in ph.measurements}
    raise_t = next(t for t, m in obs.alarm_events() if m["condition"] == "SPO2_DESAT")
    assert ms["report latency"].value == pytest.approx(raise_t - cross, abs=1e-3)
    assert ms["first sounder pulse latency"].value >= ms["report latency"].value - 0.05
    assert not ms["report latency"].marginal
    slow = judge(run_scenario(sc, VirtualTarget(device_hook=_delay(fwc.SPO2_DESAT, 3_000))))
    ph = next(p for p in slow.phases if p.name == "raised SPO2_DESAT")
    lat = next(m for m in ph.measurements if m.name == "report latency")
    assert lat.outcome == "PASS" and lat.marginal and lat.value >= 4.5


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_junit_and_protocol(tmp_path: Path) -> None:
    """REQ-BENCH-09: one record gives JSON, JUnit XML (a testsuite per scenario, a testcase per
    step, the failing step as <failure>) and an HTML test protocol with device, firmware,
    settings hash, simulator and version, operator, date, summary, requirements with verdicts,
    per-scenario measurements and a physiology-vs-alarms plot, marginal table and signatures;
    optionally the same as a PDF."""
    good = judge(run_scenario(_scenario("brady"), VirtualTarget()))
    bad = judge(
        run_scenario(
            _scenario("finger-out"), VirtualTarget(device_hook=_disable(fwc.OXI_SENSOR_OFF))
        )
    )
    rec = RunRecord(
        "SN-0001",
        "bench-1",
        "virtual",
        "0.1.0",
        "bedside-bench",
        "0.1.0",
        "A. Tester",
        "suite",
        "2026-12-03T10:00:00+00:00",
        "2026-12-03T10:01:00+00:00",
        [good, bad],
    )
    assert rec.outcome == "FAIL"
    root = ET.fromstring(junit_xml(rec))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"brady", "finger-out"}
    failing = [
        tc.get("name")
        for tc in suites["finger-out"].iter("testcase")
        if tc.find("failure") is not None
    ]
    assert failing == ["raised OXI_SENSOR_OFF"]
    assert suites["brady"].get("failures") == "0"
    html = protocol_html(rec)
    for text in (
        "SN-0001",
        "0.1.0",
        "bedside-bench",
        "A. Tester",
        "2026-12-03T10:00",
        good.settings_hash,
        "REQ-ALM-07",
        "<svg",
        "Signatures",
        "Marginal",
        "report latency",
    ):
        assert text in html, text
    paths = write_outputs(rec, tmp_path / "out")
    write_pdf(rec, tmp_path / "out" / "protocol.pdf")
    assert (tmp_path / "out" / "protocol.pdf").read_bytes().startswith(b"%PDF")
    data = json.loads(paths["record"].read_text())
    assert data["outcome"] == "FAIL" and data["results"][1]["phases"][0]["outcome"] == "FAIL"
    assert "[[expect]]" in data["results"][0]["source"]  # the scenario file itself


# --- command line -----------------------------------------------------------------------------


def _bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BEDSIDE, "bench", *args], capture_output=True, text=True, env=ENV, timeout=timeout
    )


def test_bench_cli_exit_codes(tmp_path: Path) -> None:
    """REQ-BENCH-10: `bedside bench` exits 0 when every scenario passes (writing the protocol,
    JUnit and record), 2 with one line on a bad scenario file or options; --check validates."""
    ok = _bench("--suite", str(SUITE), "--only", "brady", "--virtual", "--out", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout and (tmp_path / "protocol.html").exists()
    assert (tmp_path / "junit.xml").exists() and (tmp_path / "record.json").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(_GOOD.replace("spo2 = 80", "spo2 = 180"))
    r = _bench("--suite", str(bad), "--virtual")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "line 11" in r.stderr and "spo2" in r.stderr
    r = _bench("--suite", str(SUITE), "--oximeter", "/dev/null")
    assert r.returncode == 2 and "all three" in r.stderr
    r = _bench("--suite", str(SUITE), "--check")
    assert r.returncode == 0 and "valid" in r.stdout


# --- the same file through the SIL and through ports (real time) -----------------------------


@pytest.mark.slow
def test_same_scenario_on_sil_and_through_ports(tmp_path: Path) -> None:
    """REQ-BENCH-05: the same scenario file runs on `--sil` (real time, ptys, keys on the SIL's
    stdin, annunciator log and display file read back) and through `--oximeter/--nibp/--host`
    ports with `bedside sil` standing in for a real Pico (keys pressed by a jig command, the
    operator settings applied with `set`): both pass, with latencies from the simulator's
    timestamps to the device report and the first sounder pulse."""
    sc = _scenario("quick-desat-ack")
    sil = judge(run_scenario(sc, SilTarget(tmp_path / "sil")))
    assert sil.outcome == "PASS", _failed(sil)
    ph = next(p for p in sil.phases if p.name == "raised SPO2_DESAT")
    names = {m.name for m in ph.measurements}
    assert {"report latency", "first sounder pulse latency"} <= names
    fifo = tmp_path / "keys"
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR)  # held open: the SIL's stdin never sees end of file
    proc = subprocess.Popen(
        [*BEDSIDE, "sil", "--state-dir", str(tmp_path / "pico")],
        stdin=keep,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        keys = ["sh", "-c", f'printf "%s\\n" "$1" >> {fifo}', "sh"]
        target = PortTarget(ports["oximeter"], ports["nibp"], ports["host"], keys, "sil-as-pico")
        real = judge(run_scenario(sc, target))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(keep)
    assert real.outcome == "PASS", [(p.name, p.detail) for p in real.phases if p.outcome != "PASS"]
    assert real.device["dut_id"] == "sil-as-pico"
    disp = next(p for p in real.phases if p.kind == "display")
    assert disp.outcome == "SKIP"  # a real Pico's OLED is not observable from the bench


@pytest.mark.slow
def test_simulate_plays_a_scenario_file(tmp_path: Path) -> None:
    """REQ-BENCH-11: `bedside simulate --scenario FILE` plays a bench scenario by hand on the
    device's ports and prints each injection and operator action as it happens."""
    proc = subprocess.Popen(
        [*BEDSIDE, "sil", "--state-dir", str(tmp_path / "st")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        sim = subprocess.run(
            [
                *BEDSIDE,
                "simulate",
                "--scenario",
                str(SUITE / "technical" / "finger-out.toml"),
                "--oximeter",
                ports["oximeter"],
                "--nibp",
                ports["nibp"],
                "--duration",
                "22",
            ],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=60,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert sim.returncode == 0, sim.stderr
    out = sim.stdout
    assert "scenario finger-out" in out
    assert re.search(r"t= *2[01]\.\d\ds  fault starts: finger_out at 20 s for 20 s", out), out
    bad = subprocess.run(
        [*BEDSIDE, "simulate", "--scenario", str(tmp_path / "none.toml"), "--oximeter", "loop://"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert bad.returncode == 2 and "cannot read" in bad.stderr
