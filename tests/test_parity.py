"""The same core scenario gives the same outputs on CPython and on real MicroPython (REQ-SYS-02).

tests/mp/scenario.py drives the whole core (decoder, alarms, annunciator, host link) through a
desaturation, an audio pause, a latched HIGH, a reset and a sensor-off, with a clock that
crosses the 2**30 ms tick wrap; its printed timeline must match byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import micropython  # noqa: E402

MP = ROOT / "tests" / "mp"


def _cpython() -> str:
    env = {"PYTHONPATH": f"{MP}:{ROOT / 'firmware'}", "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, str(MP / "scenario.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=MP,
    )
    return res.stdout


@pytest.mark.skipif(micropython.executable() is None, reason="MicroPython unix port not installed")
def test_scenario_same_on_micropython_with_pico_heap() -> None:
    """REQ-SYS-02: the scenario's canonical timeline is byte-identical on CPython and on the
    MicroPython unix port with the Pico-sized heap."""
    cp = _cpython()
    res = micropython.run(MP / "scenario.py", path=[MP], cwd=MP)
    assert res.returncode == 0, res.stderr + res.stdout
    assert res.stdout == cp
    # and the timeline is the one the slice promises
    assert "alarm 25420 SPO2_LOW medium active raise 88 90" in cp
    assert "SPO2_DESAT high latched end" in cp
    assert "OXI_SENSOR_OFF medium active raise" in cp
    assert cp.count("buzzer") > 100
