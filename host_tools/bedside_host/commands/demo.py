"""``bedside demo`` (``make demo``): the firmware in software-in-the-loop against a simulated
patient, with the live monitor. One command; Ctrl-C stops all three cleanly.

It starts ``bedside sil`` (ptys), ``bedside simulate`` on the SIL's oximeter and NIBP ports
with the ``desat`` course, presses the NIBP key once for a first blood pressure, and runs
``bedside monitor`` on the host port with the SIL's annunciator log.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from bedside_host.commands import monitor
from bedside_host.sim.patient import DEFAULT_SCENARIO, SCENARIOS

HELP = "run the SIL firmware against a simulated patient with the live monitor (make demo)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        choices=sorted(SCENARIOS),
        help="patient course for the simulator (default: %(default)s)",
    )
    p.add_argument("--oximeter-format", default="nonin2", help="oximeter wire format")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: never)")
    p.add_argument("--json", action="store_true", help="print device messages as JSON lines")
    p.add_argument("--workdir", help="where logs and flash files go (default: a temp directory)")


def _spawn(args: list[str], log: IO[str] | None, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bedside_host.cli", *args],
        text=True,
        stderr=log,
        start_new_session=True,
        **kw,
    )


def _drain(src: IO[str], dst: IO[str]) -> None:
    for line in src:
        dst.write(line)
        dst.flush()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> int:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bedside-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    ann = work / "annunciator.jsonl"
    errlog = open(work / "processes.log", "w", encoding="utf-8")
    procs: list[subprocess.Popen[str]] = []
    drain: threading.Thread | None = None
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sil = _spawn(
            [
                "sil",
                "--annunciator-log",
                str(ann),
                "--state-dir",
                str(work / "state"),
                "--oximeter-format",
                args.oximeter_format,
            ],
            errlog,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        procs.append(sil)
        assert sil.stdout is not None and sil.stdin is not None
        line = sil.stdout.readline()
        if not line:
            print(
                f"bedside demo: the SIL did not start; see {work / 'processes.log'}",
                file=sys.stderr,
            )
            return 1
        ports = json.loads(line)
        # the SIL's later log lines go to the process log (a full pipe would stall it)
        drain = threading.Thread(target=_drain, args=(sil.stdout, errlog), daemon=True)
        drain.start()
        sim = _spawn(
            [
                "simulate",
                "--oximeter",
                ports["oximeter"],
                "--nibp",
                ports["nibp"],
                "--oximeter-format",
                args.oximeter_format,
                "--scenario",
                args.scenario,
                "--quiet",
            ],
            errlog,
            stdout=subprocess.DEVNULL,
        )
        procs.append(sim)
        time.sleep(0.5)
        sil.stdin.write("nibp\n")  # the nurse takes a first blood pressure
        sil.stdin.flush()
        if not args.json:
            print(
                f"Bedside demo: SIL + simulated patient ({args.scenario}) + monitor. "
                f"Logs in {work}. Ctrl-C to stop.",
                flush=True,
            )
        mparser = argparse.ArgumentParser(prog="bedside monitor")
        monitor.add_arguments(mparser)
        margs = mparser.parse_args(
            ["--port", ports["host"], "--annunciator-log", str(ann)]
            + ["--duration", str(args.duration)]
            + (["--json"] if args.json else [])
        )
        return monitor.run(margs)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, old)
        for p in reversed(procs):
            _stop(p)
        if drain is not None:
            drain.join(timeout=5)
        errlog.close()
        if not args.json:
            print(f"demo stopped; logs and flash files in {work}")
