"""A suite: every *.toml scenario under a directory (or one file), run on one target."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import platform
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bedside_host import __version__
from bedside_host.bench import SIMULATOR
from bedside_host.bench.protocol import RunRecord
from bedside_host.bench.runner import (
    BenchError,
    SilTarget,
    SkipScenario,
    Target,
    VirtualTarget,
    run_scenario,
)
from bedside_host.bench.scenario import Scenario, ScenarioError, load_scenario
from bedside_host.bench.verdict import TestResult, error_result, judge, skip_result


def scenario_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.rglob("*.toml"))
    return [path]


def load_suite(path: Path, only: list[str] | None = None) -> list[Scenario]:
    """Every scenario, validated (ScenarioError on the first bad file); ids must be unique."""
    files = scenario_files(path)
    if not files:
        raise ScenarioError(f"{path}: no *.toml scenario files")
    out: list[Scenario] = []
    seen: dict[str, str] = {}
    for f in files:
        sc = load_scenario(f)
        if sc.id in seen:
            raise ScenarioError(f"{f}: id {sc.id!r} is also used by {seen[sc.id]}")
        seen[sc.id] = str(f)
        if only and sc.id not in only and not any(t in only for t in sc.tags):
            continue
        out.append(sc)
    if only and not out:
        raise ScenarioError(f"{path}: no scenario has the id or tag {', '.join(only)}")
    return out


def run_one(sc: Scenario, make_target: Callable[[], Target]) -> TestResult:
    target = make_target()
    if target.mode not in sc.targets:
        return skip_result(sc, target.mode, f"not for the {target.mode} target")
    if "session" in sc.requires and target.mode != "ports" and not target.has_session():
        return skip_result(sc, target.mode, "needs the infusion-session commands (issue 11)")
    try:
        obs = run_scenario(sc, target)
    except SkipScenario as e:
        return skip_result(sc, target.mode, str(e))
    except (BenchError, OSError) as e:
        return error_result(sc, target.mode, str(e))
    return judge(obs)


def run_suite(
    scenarios: list[Scenario],
    make_target: Callable[[], Target],
    *,
    suite: str,
    operator: str,
    dut_id: str = "",
    progress: Callable[[TestResult], None] | None = None,
) -> RunRecord:
    start = dt.datetime.now(dt.UTC)
    results: list[TestResult] = []
    for sc in scenarios:
        r = run_one(sc, make_target)
        results.append(r)
        if progress is not None:
            progress(r)
    return _record(results, start, suite=suite, operator=operator, dut_id=dut_id)


CONCURRENT_MODES = ("sil", "virtual")


def _one_in_worker(path: str, mode: str, workdir: str | None) -> TestResult:
    """One scenario in a worker process of run_concurrent: on its own `bedside sil` (sil) or
    its own in-process firmware core (virtual)."""
    sc = load_scenario(path)
    if mode == "sil":
        return run_one(sc, lambda: SilTarget(Path(workdir) if workdir else None))
    return run_one(sc, VirtualTarget)


def run_concurrent(
    scenarios: list[Scenario],
    *,
    mode: str,
    jobs: int,
    suite: str,
    operator: str,
    workdir: Path | None = None,
    progress: Callable[[TestResult], None] | None = None,
) -> RunRecord:
    """The scenarios on the SIL or in virtual time, up to `jobs` at once: each in its own
    worker process (its own interpreter, so one scenario's loop never waits on another's); on
    the SIL each with its own `bedside sil`, ptys and state directory. Real-time scenarios
    mostly wait, so N of them take about as long as the longest; virtual ones use the cores.
    Results come back in the scenarios' order."""
    if mode not in CONCURRENT_MODES:
        raise ValueError(f"run_concurrent: mode must be one of {CONCURRENT_MODES}, not {mode!r}")
    start = dt.datetime.now(dt.UTC)
    ctx = multiprocessing.get_context("spawn")
    wd = str(workdir) if workdir is not None else None
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
        # the longest first, so no worker is left with a long one at the end
        order = sorted(range(len(scenarios)), key=lambda i: -scenarios[i].duration_s)
        by_index = {i: pool.submit(_one_in_worker, scenarios[i].path, mode, wd) for i in order}
        futures = [by_index[i] for i in range(len(scenarios))]
        results: list[TestResult] = []
        for sc, fut in zip(scenarios, futures, strict=True):
            try:
                r = fut.result()
            except Exception as e:  # a worker that died is the scenario's ERROR, not the run's
                r = error_result(sc, mode, f"worker failed: {type(e).__name__}: {e}")
            results.append(r)
            if progress is not None:
                progress(r)
    return _record(results, start, suite=suite, operator=operator, dut_id="")


def _record(
    results: list[TestResult], start: dt.datetime, *, suite: str, operator: str, dut_id: str
) -> RunRecord:
    end = dt.datetime.now(dt.UTC)
    first = next((r for r in results if r.device), None)
    dev = first.device if first is not None else {}
    return RunRecord(
        dut_id=dut_id or str(dev.get("dut_id", "?")),
        station=platform.node(),
        mode=results[0].mode if results else "?",
        firmware=str(dev.get("fw", "?")),
        simulator=SIMULATOR,
        simulator_version=__version__,
        operator=operator,
        suite=suite,
        start=start.isoformat(timespec="seconds"),
        end=end.isoformat(timespec="seconds"),
        results=results,
    )
