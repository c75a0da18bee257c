"""`bedside demo --station` (make demo-station): several SIL chairs on the central station."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_demo_station_runs_chairs_with_different_courses(tmp_path: Path) -> None:
    """REQ-STA-11: `bedside demo --station --chairs 3` starts three SIL chairs, each with its own
    simulated patient on a different course, prints the station's address, serves every chair
    live there, records them, and stops cleanly on SIGINT."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "demo",
            "--station",
            "--chairs",
            "3",
            "--http",
            "127.0.0.1:0",
            "--workdir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not (lines and lines[-1].startswith("Bedside station: ")):
            line = proc.stdout.readline()
            assert line, f"the demo ended early: {lines}"
            lines.append(line.strip())
        assert [x.split("(")[1] for x in lines[:3]] == ["desat)", "normal)", "tachy)"]
        url = lines[-1].split()[2]
        end = time.monotonic() + 20
        live: list[bool] = []
        while time.monotonic() < end:
            with urllib.request.urlopen(url + "api/state", timeout=5) as r:
                state = json.load(r)
            live = [not t["offline"] and t["spo2"] is not None for t in state["tiles"]]
            if len(live) == 3 and all(live):
                break
            time.sleep(0.5)
        assert live == [True, True, True], state["tiles"]
        assert state["order"] == ["Chair 1", "Chair 2", "Chair 3"]
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    conn = sqlite3.connect(tmp_path / "station.db")
    devices = conn.execute("SELECT count(DISTINCT device) FROM vitals").fetchone()[0]
    conn.close()
    assert devices == 3
