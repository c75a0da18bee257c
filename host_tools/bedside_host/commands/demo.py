"""``bedside demo`` (``make demo``): the firmware in software-in-the-loop against a simulated
patient, with the live monitor. One command; Ctrl-C stops all three cleanly.

It starts ``bedside sil`` (ptys), ``bedside simulate`` on the SIL's oximeter and NIBP ports
with the ``desat`` course, presses the NIBP key once for a first blood pressure, and runs
``bedside monitor`` on the host port with the SIL's annunciator log.

``bedside demo --station`` (``make demo-station``): several chairs, each a SIL with its own
simulated patient running a different course (STATION_SCENARIOS), watched by ``bedside
station``; it prints the address to open in a browser.
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
# the station demo's chairs take these courses in turn
STATION_SCENARIOS = (
    "desat",
    "normal",
    "tachy",
    "sensor-off",
    "brady",
    "hypertension",
    "artifact",
    "low-perfusion",
)
MAX_CHAIRS = 16


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
    p.add_argument(
        "--station",
        action="store_true",
        help="several simulated chairs watched by the central station in the browser",
    )
    p.add_argument(
        "--chairs",
        type=int,
        default=6,
        metavar="N",
        help="chairs in the station demo (1..%d, default: %%(default)s)" % MAX_CHAIRS,
    )
    p.add_argument(
        "--http",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="station address (default: %(default)s; port 0: any free port)",
    )


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


def _start_chair(
    work: Path,
    n: int,
    scenario: str,
    fmt: str,
    errlog: IO[str],
    procs: list[subprocess.Popen[str]],
) -> tuple[str, threading.Thread] | None:
    """One SIL with its simulated patient; returns its host port and the SIL's log drain."""
    cdir = work / f"chair{n}"
    cdir.mkdir(parents=True, exist_ok=True)
    sil = _spawn(
        [
            "sil",
            "--annunciator-log",
            str(cdir / "annunciator.jsonl"),
            "--state-dir",
            str(cdir / "state"),
            "--oximeter-format",
            fmt,
        ],
        errlog,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    procs.append(sil)
    assert sil.stdout is not None and sil.stdin is not None
    line = sil.stdout.readline()
    if not line:
        return None
    ports = json.loads(line)
    drain = threading.Thread(target=_drain, args=(sil.stdout, errlog), daemon=True)
    drain.start()
    procs.append(
        _spawn(
            [
                "simulate",
                "--oximeter",
                ports["oximeter"],
                "--nibp",
                ports["nibp"],
                "--oximeter-format",
                fmt,
                "--scenario",
                scenario,
                "--quiet",
            ],
            errlog,
            stdout=subprocess.DEVNULL,
        )
    )
    sil.stdin.write("nibp\n")  # a first blood pressure
    sil.stdin.flush()
    return ports["host"], drain


def run_station_demo(args: argparse.Namespace) -> int:
    from bedside_host.commands import station

    if not 1 <= args.chairs <= MAX_CHAIRS:
        print(f"bedside demo: error: --chairs must be 1..{MAX_CHAIRS}", file=sys.stderr)
        return 2
    try:
        host, port = station.parse_http(args.http)
    except station.UsageError as e:
        print(f"bedside demo: error: {e}", file=sys.stderr)
        return 2
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bedside-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    errlog = open(work / "processes.log", "w", encoding="utf-8")
    procs: list[subprocess.Popen[str]] = []
    drains: list[threading.Thread] = []
    chairs: list[station.ChairSpec] = []
    try:
        for i in range(args.chairs):
            scenario = STATION_SCENARIOS[i % len(STATION_SCENARIOS)]
            got = _start_chair(work, i + 1, scenario, args.oximeter_format, errlog, procs)
            if got is None:
                print(
                    f"bedside demo: a SIL did not start; see {work / 'processes.log'}",
                    file=sys.stderr,
                )
                return 1
            chairs.append(station.ChairSpec(f"Chair {i + 1}", f"Chair {i + 1}", got[0]))
            drains.append(got[1])
            print(f"Chair {i + 1}: SIL + simulated patient ({scenario})", flush=True)
        print(
            f"Bedside station demo: {len(chairs)} chairs. Logs, flash files and the record file "
            f"in {work}. Open the address below in a browser; Ctrl-C to stop.",
            flush=True,
        )
        return station.run_station(chairs, work / "station.db", host, port, args.duration)
    finally:
        for p in reversed(procs):
            _stop(p)
        for d in drains:
            d.join(timeout=5)
        errlog.close()
        print(f"demo stopped; logs and flash files in {work}")


def run(args: argparse.Namespace) -> int:
    if args.station:
        return run_station_demo(args)
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
