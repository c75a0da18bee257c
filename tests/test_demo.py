"""`bedside demo` (make demo): SIL + simulated patient + monitor, one command (REQ-CLI-02)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
