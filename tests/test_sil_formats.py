"""Every oximeter format and the SunTech module end to end: `bedside simulate` -> `bedside sil`.

REQ-SEN-19: the SIL decodes each format from the simulator (values and sensor-off reach the
host); REQ-SEN-20: an NIBP measurement started by the NIBP key completes against the emulated
SunTech module and its reading reaches the host with its age.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from silharness import ROOT, Sil

pytestmark = pytest.mark.slow
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


@contextmanager
def running(
    tmp: Path, fmt: str, *sim_args: str, sil_args: tuple[str, ...] = ()
) -> Iterator[Sil]:
    sil = Sil(tmp, "--oximeter-format", fmt, *sil_args)
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "simulate",
            "--oximeter",
            sil.ports["oximeter"],
            "--nibp",
            sil.ports["nibp"],
            "--oximeter-format",
            fmt,
            "--quiet",
            *sim_args,
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield sil
    finally:
        sim.terminate()
        _out, err = sim.communicate(timeout=10)
        sil.kill()
        assert "Traceback" not in err


@pytest.mark.parametrize("fmt", ["nonin2", "nonin7", "nonin1", "berrymed", "masimo"])
def test_each_format_reaches_the_host(tmp_path: Path, fmt: str) -> None:
    """REQ-SEN-19: SpO2 and pulse from each format's simulator arrive decoded; no false alarm."""
    with running(tmp_path, fmt, "--scenario", "normal") as sil:
        m = sil.wait_for(
            lambda m: m["type"] == "oxi" and m["spo2"] is not None and m["pr"] is not None, 12
        )
        assert 94 <= m["spo2"] <= 100 and 55 <= m["pr"] <= 100
        sil.host_messages()
        raised = [a for a in sil.messages if a["type"] == "alarm" and a["event"] == "raise"]
        assert not [a for a in raised if a["kind"] == "physiological"]


@pytest.mark.parametrize("fmt", ["nonin2", "berrymed", "masimo"])
def test_sensor_off_from_simulator(tmp_path: Path, fmt: str) -> None:
    """REQ-SEN-19: the simulator's finger-out reaches the core as OXI_SENSOR_OFF."""
    with running(tmp_path, fmt, "--scenario", "sensor-off", "--speed", "4") as sil:
        m = sil.wait_for(lambda m: m["type"] == "alarm" and m["condition"] == "OXI_SENSOR_OFF", 15)
        assert m["event"] == "raise" and m["priority"] == "medium"


def test_nibp_key_measures_against_emulated_suntech(tmp_path: Path) -> None:
    """REQ-SEN-20: NIBP key -> SunTech start, cuff polls, 'K', result -> host with age; the
    reading is judged against the systolic limit at once."""
    # The hypertension course starts at 180 systolic, the default sys_high: a limit of 170 makes
    # the limit check certain whatever the simulator's beat-to-beat variation.
    with running(
        tmp_path,
        "nonin2",
        "--scenario",
        "hypertension",
        "--nibp-duration",
        "4",
        sil_args=("--set", "sys_high=170"),
    ) as sil:
        sil.wait_for(lambda m: m["type"] == "hello", 5)
        sil.button("nibp")
        sil.wait_for(lambda m: m["type"] == "button" and m["button"] == "nibp", 5)
        m = sil.wait_for(lambda m: m["type"] == "nibp", 20)
        assert m["sys"] > 170 and m["dia"] > 100 and m["age_s"] == 0

        def sys_high(a: dict[str, Any]) -> bool:
            return a["type"] == "alarm" and a["condition"] == "NIBP_SYS_HIGH"

        hi = [a for a in sil.messages if sys_high(a)] or [sil.wait_for(sys_high, 3)]
        assert hi[0]["priority"] == "medium" and hi[0]["event"] == "raise"
        assert hi[0]["value"] == m["sys"] and hi[0]["limit"] == 170
