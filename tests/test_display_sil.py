"""The bedside display end to end: the real `bedside sil` with --display-file (issue 5).

REQ-HW-07 display shows the highest alarm condition and its priority; REQ-HW-08 display shows
the vitals, the last NIBP with its age, AUDIO PAUSED and the phase; REQ-HW-10 each frame fits
the 8 x 16 grid and is written only when it changed.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from silharness import Sil, sil_running

pytestmark = pytest.mark.slow


@pytest.fixture
def sil(tmp_path: Path) -> Iterator[Sil]:
    yield from sil_running(tmp_path, "--display-file", str(tmp_path / "display.jsonl"),
                           "--set", "spo2_low_delay_s=2")


def frames(tmp_path: Path) -> list[dict[str, Any]]:
    f = tmp_path / "display.jsonl"
    if not f.exists():
        return []
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def wait_frame(sil: Sil, tmp_path: Path, pred: Any, timeout: float,
               feed: tuple[int, int, int] | None = None) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if feed:
            sil.feed_oximeter(1 / 3, *feed)
        else:
            time.sleep(0.1)
        for fr in frames(tmp_path):
            if pred(fr):
                return fr
    raise AssertionError(f"no such frame; last frames: {frames(tmp_path)[-3:]}")


def test_desaturation_then_sensor_off(sil: Sil, tmp_path: Path) -> None:
    """REQ-HW-07, REQ-HW-08: SPO2_LOW with the MEDIUM marker, then SpO2 SENSOR OFF, on screen."""
    sil.feed_oximeter(1.5, 72, 97)
    quiet = wait_frame(sil, tmp_path, lambda f: f["lines"][5] == "SpO2  97  PR  72", 10)
    assert quiet["lines"][0] == "" and quiet["lines"][7].endswith("IDLE")
    assert quiet["tall"] == [0, 2]
    low = wait_frame(sil, tmp_path, lambda f: f["lines"][2] == "SpO2 LOW", 20, feed=(72, 86, 0x82))
    assert low["lines"][0].startswith("!!  MEDIUM")
    assert 0 in low["inverse"]
    # the desaturation goes on: the values follow
    wait_frame(sil, tmp_path, lambda f: f["lines"][5] == "SpO2  86  PR  72", 10,
               feed=(72, 86, 0x82))
    sil.button("ack")
    paused = wait_frame(sil, tmp_path, lambda f: f["lines"][4].startswith("AUDIO PAUSED"), 10,
                        feed=(72, 86, 0x82))
    assert paused["lines"][2] == "SpO2 LOW"  # the visual signal stays while audio is paused
    # sensor off (Nonin SNSA; SpO2/pulse sentinels): a technical alarm, values "--"
    off = wait_frame(sil, tmp_path, lambda f: "SpO2 SENSOR OFF" in f["lines"], 15,
                     feed=(511, 127, 0x88))
    assert off["lines"][0].startswith("!!  MEDIUM")
    wait_frame(sil, tmp_path, lambda f: f["lines"][5] == "SpO2  --  PR  --", 10,
               feed=(511, 127, 0x88))
    all_frames = frames(tmp_path)
    assert all(len(f["lines"]) == 8 and all(len(s) <= 16 for s in f["lines"]) for f in all_frames)
    assert all(a["lines"] != b["lines"] or a["inverse"] != b["inverse"]
               for a, b in itertools.pairwise(all_frames))  # only changed frames are written
    ts = [f["t_ms"] for f in all_frames]
    assert ts == sorted(ts)
    assert min(b - a for a, b in itertools.pairwise(ts)) >= 240  # at most 4 frames a second

