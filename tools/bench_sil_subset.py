"""`make bench`: the real-time SIL subset of the bench suite and the virtual suite's speed.

Runs the scenarios tagged `sil-subset` (one per alarm priority and per inactivation rule: pause,
break-through, latching and reset, AUDIO OFF and its end) with `bedside bench --sil`, all at
once: each scenario in its own worker process with its own `bedside sil`, ptys and state
directory (they mostly wait on real time, so the subset takes about as long as its longest
scenario, about 2 minutes, instead of 15 one after the other). Writes the protocol to
bench-out/sil-subset/ (BEDSIDE_BENCH_OUT) and the figures to bench/parts/sil_subset.json
(BEDSIDE_BENCH_PARTS): scenarios passed, per scenario the measured report and first
sounder-pulse latencies, and the machine load while they ran. Then one long scenario (a whole
5-hour session) runs in virtual time for its speed (hours of scenario per second of wall time),
after the SIL so it does not load the machine during the latencies (make test runs the whole
suite).
BEDSIDE_BENCH_QUICK=1: one short scenario (`quick`) on the SIL and no virtual run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "tools"))

import benchlib  # noqa: E402
from bedside_host.bench.protocol import write_outputs  # noqa: E402
from bedside_host.bench.runner import VirtualTarget  # noqa: E402
from bedside_host.bench.suite import load_suite, run_concurrent, run_suite  # noqa: E402

SECTION = "sil_subset"
SUITE = ROOT / "tests" / "bench_suite"
SPEED_IDS = ("session-full-titrated-infusion",)  # 5 h: infusion, recovery, discharge


def _load_text() -> str:
    la = os.getloadavg()
    return f"{la[0]:.2f}/{la[1]:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quick = benchlib.quick()
    tag = (
        args[args.index("--only") + 1]
        if "--only" in args
        else ("quick" if quick else "sil-subset")
    )
    figures: list[dict[str, Any]] = []
    subset = load_suite(SUITE, [tag])
    work = benchlib.out_dir() / "sil-subset"
    load0 = _load_text()
    t0 = time.perf_counter()
    rec = run_concurrent(
        subset,
        mode="sil",
        jobs=len(subset),
        workdir=work / "work",
        suite=str(SUITE),
        operator="make bench",
    )
    wall = time.perf_counter() - t0
    load1 = _load_text()
    write_outputs(rec, work)
    passed = sum(r.outcome == "PASS" for r in rec.results)
    n = len(rec.results)
    cores = os.cpu_count() or 1
    load = (
        f"{n} scenarios at once, each its own worker process and `bedside sil`, on {cores} cores;"
        f" 1/5-min load average {load0} before, {load1} after"
    )
    figures.append(benchlib.figure(
        "bench SIL subset: scenarios passed", passed, "scenarios", f">= {n}",
        f"bedside bench --sil --jobs {n} --only {tag} (real time, ptys, annunciator log); {load}",
    ))  # fmt: skip
    figures.append(benchlib.figure(
        "bench SIL subset: wall time", round(wall, 1), "s", None,
        f"time.perf_counter around the concurrent run of {n} scenarios"
        f" ({sum(r.duration_s for r in rec.results):.0f} s of scenario time); {load}",
    ))  # fmt: skip
    for r in rec.results:
        for p in r.phases:
            for m in p.measurements:
                if m.units == "s" and isinstance(m.value, int | float):
                    figures.append(benchlib.figure(
                        f"SIL {r.id}: {p.name}: {m.name}", m.value, "s",
                        f"<= {m.high:g}" if m.high else None,
                        "simulator timestamp to device report / annunciator log (device"
                        f" t_ms mapped to wall time by the host link), under load: {load}",
                    ))  # fmt: skip
    ok = rec.outcome == "PASS"
    benchlib.write_part(SECTION, figures)  # the SIL figures stand even if the virtual run fails
    if not quick:
        # virtual-time speed on one long scenario (the whole suite runs in make test)
        long = load_suite(SUITE, list(SPEED_IDS))
        t1 = time.perf_counter()
        virt = run_suite(long, VirtualTarget, suite=str(SUITE), operator="make bench")
        vwall = time.perf_counter() - t1
        hours = sum(r.duration_s for r in virt.results) / 3600
        figures.append(benchlib.figure(
            "bench suite, virtual time: scenario hours per wall second",
            round(hours / vwall, 3), "h/s", None,
            f"bedside bench --virtual, one process, on {', '.join(SPEED_IDS)}"
            f" ({hours:.2f} h of scenario in {vwall:.1f} s) on this PC, after the SIL subset",
        ))  # fmt: skip
        ok = ok and virt.outcome == "PASS"
    benchlib.write_part(SECTION, figures)
    print(
        f"SIL subset: {passed}/{n} passed in {wall:.0f} s (concurrently);"
        f" protocol {work / 'protocol.html'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
