"""`bedside demo` (make demo): SIL + simulated patient + monitor, one command (REQ-CLI-02)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bedside.hostlink import PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_demo_shows_desaturation_alarm_within_a_minute(tmp_path: Path) -> None:
    """REQ-CLI-02: the desat course raises SpO2 alarms within about a minute; clean stop."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "demo",
            "--json",
            "--duration",
            "50",
            "--workdir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    msgs = [json.loads(line) for line in res.stdout.splitlines()]
    alarms = [m for m in msgs if m["type"] == "alarm" and m["event"] == "raise"]
    desat = [m for m in alarms if m["condition"] == "SPO2_DESAT"]
    assert desat and desat[0]["priority"] == "high" and desat[0]["t_ms"] < 60000
    assert any(m["type"] == "nibp" and m["sys"] for m in msgs)  # the first blood pressure
    ann = [json.loads(x) for x in (tmp_path / "annunciator.jsonl").read_text().splitlines()]
    assert any(a["dev"] == "led" and a["color"] == "red" and a["on"] for a in ann)
    assert any(a["dev"] == "buzzer" and a["on"] for a in ann)
    log = (tmp_path / "processes.log").read_text()
    assert "Traceback" not in log


def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """REQ-CLI-02: Ctrl-C (SIGINT) stops the monitor, the simulator and the SIL cleanly."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bedside_host.cli", "demo", "--json", "--workdir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # the device is talking
    assert first["v"] == PROTOCOL_VERSION
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    state = tmp_path / "state"
    assert not (state / "sil.running").exists()  # the SIL ran its clean shutdown
    assert "sil: stopped" in (tmp_path / "processes.log").read_text()
