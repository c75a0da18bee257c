"""Reliability figures (docs/reliability.md): restart-to-monitoring time of the SIL after an
unclean stop, the heap over a simulated week on MicroPython, a flood of 10,000 hostile commands.
Prints each figure and writes bench/parts/reliability.json (the `make bench` parts shape).

    python tools/bench_reliability.py [--runs 5] [--hours 168] [--no-week]

Figures are of this PC (the SIL runs the same core in CPython); an RP2040 is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import micropython

ROOT = micropython.ROOT
# BEDSIDE_BENCH_PARTS / BEDSIDE_BENCH_QUICK: as tools/benchlib.py (the `make bench` parts)
PART = Path(os.environ.get("BEDSIDE_BENCH_PARTS", ROOT / "bench" / "parts")) / "reliability.json"
QUICK = os.environ.get("BEDSIDE_BENCH_QUICK") == "1"
# `make bench` keeps its week figure short: 18 virtual hours (heap samples at 6, 12 and 18 h: the
# growth after the 6-hour warm-up; about 100 s); the full simulated week (about 15 minutes of
# wall time) is `make soak` (--hours 168).
BENCH_HOURS = 18
BEDSIDE = [sys.executable, "-m", "bedside_host.cli"]


def _fig(
    name: str, value: float | None, unit: str, target: str | None, method: str
) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "target": target, "method": method}


def restart_once(state: Path, env: dict[str, str]) -> tuple[float, float, bool]:
    """Start `bedside sil` on a state dir left by a killed run; seconds from process start to
    the first alarm evaluation the host sees (the DEVICE_RESTARTED raise) and to the first
    heartbeat; whether DEVICE_RESTARTED was raised."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*BEDSIDE, "sil", "--state-dir", str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        fd = os.open(ports["host"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        buf = b""
        t_alarm = t_hb = None
        restarted = False
        end = t0 + 15
        while time.monotonic() < end and (t_alarm is None or t_hb is None):
            try:
                buf += os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.002)
                continue
            *lines, buf = buf.split(b"\n")
            for line in lines:
                m = json.loads(line)
                now = time.monotonic() - t0
                if m["type"] == "alarm" and t_alarm is None:
                    t_alarm = now
                    restarted = restarted or m["condition"] == "DEVICE_RESTARTED"
                if m["type"] == "alarm" and m["condition"] == "DEVICE_RESTARTED":
                    restarted = True
                if m["type"] == "heartbeat" and t_hb is None:
                    t_hb = now
        os.close(fd)
    finally:
        proc.send_signal(signal.SIGKILL)  # an unclean stop again: the next run restarts
        proc.wait()
    return (t_alarm or float("nan")), (t_hb or float("nan")), restarted


def restart_figures(runs: int) -> list[dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    env.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="bedside-bench-config-"))
    with tempfile.TemporaryDirectory(prefix="bedside-restart-") as tmp:
        state = Path(tmp) / "state"
        restart_once(state, env)  # the first start (power on), then killed: unclean
        alarms, hbs, ok = [], [], True
        for _ in range(runs):
            a, h, r = restart_once(state, env)
            alarms.append(a)
            hbs.append(h)
            ok = ok and r
    print(
        f"SIL restart after an unclean stop ({runs} runs): first alarm evaluation "
        f"(DEVICE_RESTARTED raised: {ok}) median {statistics.median(alarms):.3f} s, max "
        f"{max(alarms):.3f} s; first heartbeat median {statistics.median(hbs):.3f} s, max "
        f"{max(hbs):.3f} s"
    )
    method = (
        f"tools/bench_reliability.py: `bedside sil --state-dir` on a state left by SIGKILL, "
        f"{runs} runs, process start to the line on the host pty (includes CPython start-up)"
    )
    return [
        _fig("restart_to_first_alarm_evaluation_max", round(max(alarms), 3), "s", "<= 5", method),
        _fig("restart_to_first_heartbeat_max", round(max(hbs), 3), "s", "<= 5", method),
        _fig(
            "restart_to_first_heartbeat_median",
            round(statistics.median(hbs), 3),
            "s",
            None,
            method,
        ),
        _fig("device_restarted_raised", 1.0 if ok else 0.0, "bool", "1", method),
    ]


def week_figures(hours: int, heap: str) -> list[dict[str, Any]]:
    method = (
        f"tools/bench_reliability.py: tests/mp/week.py {hours} on the MicroPython unix port, "
        f"-X heapsize={heap}, gc.mem_alloc() after gc.collect() every 6 virtual hours"
    )
    if micropython.executable() is None:
        print("week on MicroPython: skipped (unix port not installed)")
        return [_fig("week_heap_growth_after_warmup", None, "B", "<= 2048", method)]
    fw = micropython.compile_firmware()
    t0 = time.monotonic()
    res = micropython.run("-m week", str(hours), heap=heap, path=[fw], cwd=fw, timeout=7200)
    secs = time.monotonic() - t0
    out = res.stdout + res.stderr
    print(out.strip())
    line = [x for x in out.splitlines() if x.startswith("week:")]
    if res.returncode or not line:
        return [_fig("week_heap_growth_after_warmup", None, "B", "<= 2048", method + " (failed)")]
    samples = json.loads(line[0].split("heap samples ")[1].split("]")[0] + "]")
    if len(samples) < 3:  # warm-up sample and at least one after it
        short = method + " (too short)"
        return [_fig("week_heap_growth_after_warmup", None, "B", "<= 2048", short)]
    growth = max(samples[1:]) - samples[1]
    print(
        f"week: heap after warm-up {samples[1]} B, growth {growth} B over {hours} h ({secs:.0f} s)"
    )
    return [
        _fig("week_heap_growth_after_warmup", growth, "B", "<= 2048", method),
        _fig("week_heap_after_warmup", samples[1], "B", None, method),
        # make bench runs a sample of the week; `make soak` runs the whole week (168 h)
        _fig(
            "week_virtual_hours",
            hours,
            "h",
            ">= 168" if hours >= 168 else "a sample: the 168-hour week is make soak",
            method,
        ),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=2 if QUICK else 5)
    ap.add_argument("--hours", type=int, default=BENCH_HOURS)
    ap.add_argument("--heap", default="256k")  # the week rig's message capture needs > 192k
    ap.add_argument("--no-week", action="store_true")
    args = ap.parse_args()
    figures = restart_figures(args.runs)
    if not args.no_week:
        figures += week_figures(args.hours, args.heap)
    PART.parent.mkdir(parents=True, exist_ok=True)
    PART.write_text(json.dumps({"section": "reliability", "figures": figures}, indent=1) + "\n")
    print(f"wrote {PART}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
