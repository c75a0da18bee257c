"""`make bench`: the real-time SIL subset of the bench suite and the virtual suite's speed.

Runs the scenarios tagged `sil-subset` (one per alarm priority and per inactivation rule:
pause, break-through, latching and reset, AUDIO OFF and its end) with `bedside bench --sil`
(about 15 minutes of real time), writes the protocol to bench-out/sil-subset/, and the figures
to bench/parts/bench_sil.json: scenarios passed, and per scenario the measured report and first
sounder-pulse latencies. The whole suite also runs in virtual time (hours of scenario per
second of wall time).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from bedside_host.bench.protocol import write_outputs  # noqa: E402
from bedside_host.bench.runner import SilTarget, VirtualTarget  # noqa: E402
from bedside_host.bench.suite import load_suite, run_suite  # noqa: E402

SUITE = ROOT / "tests" / "bench_suite"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    tag = args[args.index("--only") + 1] if "--only" in args else "sil-subset"
    figures: list[dict[str, Any]] = []
    suite = load_suite(SUITE)
    t0 = time.perf_counter()
    virt = run_suite(suite, VirtualTarget, suite=str(SUITE), operator="make bench")
    wall = time.perf_counter() - t0
    hours = sum(r.duration_s for r in virt.results) / 3600
    figures.append({
        "name": "bench suite, virtual time: scenario hours per wall second",
        "value": round(hours / wall, 3), "unit": "h/s", "target": None,
        "method": f"bedside bench --virtual over tests/bench_suite ({len(suite)} scenarios,"
                  f" {hours:.2f} h) on this PC",
    })  # fmt: skip
    subset = load_suite(SUITE, [tag])
    work = ROOT / "bench-out" / "sil-subset"
    rec = run_suite(subset, lambda: SilTarget(work / "work"), suite=str(SUITE), operator="bench")
    write_outputs(rec, work)
    passed = sum(r.outcome == "PASS" for r in rec.results)
    figures.append({
        "name": "bench SIL subset: scenarios passed", "value": passed, "unit": "scenarios",
        "target": f"{len(rec.results)} of {len(rec.results)}",
        "method": "bedside bench --sil --only sil-subset (real time, ptys, annunciator log)",
    })  # fmt: skip
    for r in rec.results:
        for p in r.phases:
            for m in p.measurements:
                if m.units == "s" and isinstance(m.value, int | float):
                    figures.append({
                        "name": f"SIL {r.id}: {p.name}: {m.name}", "value": m.value,
                        "unit": "s", "target": f"<= {m.high:g} s" if m.high else None,
                        "method": "simulator timestamp to device report / annunciator log",
                    })  # fmt: skip
    out = ROOT / "bench" / "parts" / "bench_sil.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"section": "bench_sil", "figures": figures}, indent=1) + "\n")
    print(f"SIL subset: {passed}/{len(rec.results)} passed; protocol {work / 'protocol.html'}")
    return 0 if rec.outcome == "PASS" and virt.outcome == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
