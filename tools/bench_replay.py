"""`make bench` part "replay": how many hours of captured sensor input `bedside replay` runs per
second of wall time (issue 15 figure 6).

A capture in the `bedside sil --capture` format (docs/sil.md) is written first: Nonin Format #2
at its real rate (3 packets a second, one read record per packet), SpO2 97 % with a dip to 88 %
and a desaturation to 80 % every 20 minutes. `bedside replay CAPTURE --json` then runs the
firmware core over it in virtual time (10 ms ticks) in its own process; the figure is its own
`hours_per_s` (virtual time over its time.perf_counter wall time), median of repeats, and the
whole command's wall time including Python start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in ("firmware", "host_tools", "tests/mp", "tools"):
    sys.path.insert(0, str(ROOT / p))

import benchlib  # noqa: E402
from bedside import VERSION  # noqa: E402
from bedside.settings import defaults  # noqa: E402
from mputil import nonin2_packet  # noqa: E402

QUICK = benchlib.quick()
HOURS = 0.1 if QUICK else 1.0
REPEATS = 1 if QUICK else 3


def write_capture(path: Path, hours: float) -> int:
    """A synthetic capture of `hours`; returns its length in ms."""
    packets = {s: nonin2_packet(72, s).hex() for s in (97, 88, 80)}
    header = {
        "format": "bedside-capture",
        "version": 1,
        "oximeter_format": "nonin2",
        "clock_start_ms": (1 << 30) - 60000,
        "reset_cause": "power_on",
        "firmware": VERSION,
        "settings": defaults(),
        "changed": {},
    }
    end = int(hours * 3600 * 1000)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        t = 0
        k = 0
        while t < end:
            s = (t // 1000) % 1200
            spo2 = 88 if 400 <= s < 440 else (80 if 700 <= s < 710 else 97)
            f.write(json.dumps({"t_ms": t, "port": "oximeter", "hex": packets[spo2]}) + "\n")
            k += 1
            t = k * 1000 // 3
        f.write(json.dumps({"t_ms": end, "end": True}) + "\n")
    return end


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as d:
        cap = Path(d) / "capture.jsonl"
        write_capture(cap, HOURS)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
        speeds = []
        walls = []
        events = 0
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-m", "bedside_host.cli", "replay", str(cap), "--json"],
                capture_output=True,
                text=True,
                env=env,
                cwd=d,
                timeout=600,
                check=False,
            )
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                print(res.stdout[-2000:], res.stderr[-2000:], file=sys.stderr)
                return 1
            out = json.loads(res.stdout)
            speeds.append(float(out["hours_per_s"]))
            walls.append(HOURS / wall)
            events = len(out.get("timeline", []))
    sp = benchlib.median(speeds)
    w = benchlib.median(walls)
    print(
        f"bedside replay: {sp:.2f} h of capture per wall second in the replayer "
        f"({w:.2f} h/s with process start-up); {HOURS:g} h capture, {events} alarm events, "
        f"median of {REPEATS}"
    )
    method = (
        f"tools/bench_replay.py: a {HOURS:g} h Nonin #2 capture (3 packets/s, dips and "
        f"desaturations) through `bedside replay --json`; median of {REPEATS}"
    )
    benchlib.write_part(
        "replay",
        [
            benchlib.figure(
                "replay speed (bedside replay)",
                round(sp, 3),
                "h/s",
                None,
                method + "; its own hours_per_s (virtual time / time.perf_counter)",
            ),
            benchlib.figure(
                "replay speed including process start-up",
                round(w, 3),
                "h/s",
                None,
                method + "; capture hours / wall time of the whole command",
            ),
            benchlib.figure("replay alarm events", events, "", None, method),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
