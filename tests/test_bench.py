"""`make bench` cannot rot: the bench runs in its quick mode and writes bench/results.json in the
documented shape (docs/performance.md); failing parts are reported, not dropped. No figure is
asserted here (figures are printed, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402
import benchlib  # noqa: E402
import micropython  # noqa: E402

# the figures each of this repository's own parts must report (issue 15 figures 1-6)
EXPECTED = {
    "latency": [
        "alarm signal delay, virtual time: SPO2_DESAT",
        "alarm signal delay, virtual time: NIBP_SYS_HIGH",
        "alarm signal delay, virtual time: BP_RISE",
        "alarm signal delay, SIL SPO2_DESAT p50",
        "alarm signal delay, SIL SPO2_DESAT p99",
        "alarm signal delay, SIL SPO2_DESAT max",
    ],
    "micropython": [
        "MicroPython us per frame, decode + core step: nonin2",
        "MicroPython heaviest second: computation per second (median)",
        "MicroPython heaviest input: mean tick",
        "MicroPython profile, heaviest second: alarm rules and engine",
        "allocation per quiet tick",
        "allocation per frame",
        "heap high-water, whole core (code + state)",
        "heap growth, last hour vs first hour (minimum live)",
        "largest free block at the end",
        "firmware .mpy size: total",
        "firmware .mpy size: bedside/device.mpy",
        "RAM importing the core from .mpy",
        "RAM importing the core from source",
        "smallest heap importing the core from .mpy",
        "smallest heap importing the core from source",
        "virtual-time bench speed (MicroPython soak)",
    ],
    "records": ["recorder: messages stored per second"],
    "replay": ["replay speed (bedside replay)"],
    "decoders": ["decode only, CPython: nonin2", "false sensor-off edges, nonin2, garbage:0.01"],
}


@pytest.mark.slow
@pytest.mark.skipif(micropython.executable() is None, reason="MicroPython unix port not installed")
def test_quick_bench_writes_documented_shape(tmp_path: Path) -> None:
    """REQ-PERF-01, REQ-PERF-03: `tools/bench.py --quick` runs this repository's bench parts and
    writes a results file whose shape validate() accepts (meta with machine, versions, date,
    commit; every part with its status; every figure with name, value, unit, target, met and
    method), holding the figures of issue 15 §1-6."""
    out = tmp_path / "results.json"
    env = dict(
        os.environ,
        BEDSIDE_BENCH_PARTS=str(tmp_path / "parts"),
        BEDSIDE_BENCH_OUT=str(tmp_path / "out"),
    )
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench.py"),
            "--quick",
            "--only",
            ",".join(EXPECTED),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = json.loads(out.read_text())
    assert bench.validate(results) == []
    assert results["meta"]["quick"] is True
    parts = {p["section"]: p for p in results["parts"]}
    assert set(parts) == set(EXPECTED), parts
    for sec, p in parts.items():
        assert p["status"] == "ok", (sec, p["error"])
    names = {(f["section"], f["name"]) for f in results["figures"]}
    for sec, wanted in EXPECTED.items():
        for name in wanted:
            assert (sec, name) in names, (sec, name)
    assert "section" in res.stdout and "written:" in res.stdout  # the printed table


def _script(tmp: Path, name: str, body: str) -> Path:
    p = tmp / name
    p.write_text(body)
    return p


def test_failing_parts_are_reported(tmp_path: Path) -> None:
    """REQ-PERF-02: a part that exits non-zero, overruns its budget or writes no part file is
    recorded as failed with its error; a part file with a bad figure is failed too; a good part
    is ok with its figures (each normalised with its section and met)."""
    parts = tmp_path / "parts"
    parts.mkdir()
    env = dict(os.environ, BEDSIDE_BENCH_PARTS=str(parts), BEDSIDE_BENCH_OUT=str(tmp_path / "o"))
    tools = str(ROOT / "tools")
    ok = _script(
        tmp_path,
        "bench_good.py",
        f"import sys; sys.path.insert(0, {tools!r}); import benchlib\n"
        "benchlib.write_part('good', [benchlib.figure('x', 3, 'ms', '<= 50', 'm')])\n",
    )
    crash = _script(tmp_path, "bench_crash.py", "raise SystemExit('broken on purpose')\n")
    slow = _script(tmp_path, "bench_slow.py", "import time; time.sleep(30)\n")
    silent = _script(tmp_path, "bench_silent.py", "print('nothing written')\n")
    bad = _script(
        tmp_path,
        "bench_bad.py",
        f"import json; open({str(parts / 'bad.json')!r}, 'w').write(json.dumps("
        "{'section': 'bad', 'figures': [{'name': 'y', 'value': 'fast'}]}))\n",
    )
    got = {}
    for script, budget in ((ok, 30), (crash, 30), (slow, 1), (silent, 30), (bad, 30)):
        rec, figs = bench.run_part(script, parts, budget, env)
        got[script.stem] = (rec, figs)
    rec, figs = got["bench_good"]
    assert rec["status"] == "ok" and rec["error"] is None
    assert figs == [
        {
            "section": "good",
            "name": "x",
            "value": 3,
            "unit": "ms",
            "target": "<= 50",
            "met": True,
            "method": "m",
        }
    ]
    assert got["bench_crash"][0]["status"] == "failed"
    assert "exit 1" in got["bench_crash"][0]["error"]
    assert "broken on purpose" in got["bench_crash"][0]["error"]
    assert "over its budget of 1 s" in got["bench_slow"][0]["error"]
    assert "wrote no bench/parts" in got["bench_silent"][0]["error"]
    assert "nothing written" in got["bench_silent"][0]["error"]
    assert got["bench_bad"][0]["status"] == "failed" and "bad.json" in got["bench_bad"][0]["error"]


@pytest.mark.parametrize(
    ("target", "value", "met"),
    [
        ("<= 50", 49.9, True),
        ("<= 50", 50, True),
        ("<= 50", 50.1, False),
        (">= 20000", 19999, False),
        (">= 20,000/s", 25000, True),
        ("<= 0", 0, True),
        ("<= 0", 0.5, False),
        ("< 1", 1, False),
        ("flat", 3, None),
        (None, 3, None),
        ("<= 1", None, None),
    ],
)
def test_target_met(target: str | None, value: float | None, met: bool | None) -> None:
    """REQ-PERF-04: "met" is derived from the target text ("<= 50", ">= 20,000/s"); a figure
    without a target or value, or with a prose target, has met null."""
    assert benchlib.target_met(target, value) is met


def test_validate_rejects_departures() -> None:
    """REQ-PERF-01: validate() names what departs from the documented shape."""
    assert bench.validate([]) == ["not an object"]
    errs = bench.validate({"schema": 0, "meta": {}, "parts": [], "figures": [{"name": "x"}]})
    assert any("schema" in e for e in errs)
    assert any("meta.machine.cpu" in e for e in errs)
    assert any("figures[0]" in e for e in errs)
