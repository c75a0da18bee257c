"""Is this Pico safe to flash? `make flash` asks first: ``python -m bedside_host.flashing PORT``.

The running firmware ignores Ctrl-C (its REPL is unreachable) and feeds a 2 s watchdog, which
would reset the board in the middle of a copy. Only a board powered up with ACK held
(maintenance mode: firmware/main.py does not start the firmware and sets
``BEDSIDE_MAINTENANCE = True`` in the REPL's globals) or a board without a ``main.py`` (plain
MicroPython, first flash) may be flashed. The probe runs ``mpremote connect PORT resume exec``:
``resume`` because mpremote 1.29 otherwise soft-resets the board first, which clears the REPL's
globals (and so the marker) and does not run main.py again.

Exit status: 0 safe to flash, 2 refused (with what to do), as every ``bedside`` command.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "BEDSIDE_MAINTENANCE"  # set by firmware/main.py in maintenance mode
TAG = "BEDSIDE-PROBE"
TIMEOUT_S = 25.0  # mpremote gives up entering the raw REPL after 10 s
HELP = "check that a Pico is in maintenance mode before copying firmware to it"
HOW = "Unplug the Pico (USB and power), hold ACK while powering it up, then flash again."

# Runs on the Pico in the REPL's globals (where main.py ran): prints TAG and one state.
PROBE = f"""\
try:
    _bedside_s = "maintenance" if {MARKER} else "firmware"
except NameError:
    _bedside_s = "firmware"
    try:
        import os
        os.stat("main.py")
    except OSError:
        _bedside_s = "blank"
print("{TAG}", _bedside_s)
"""

Runner = Callable[[list[str], float], "Result"]


@dataclass(frozen=True)
class Result:
    """What one mpremote run gave: exit status and output (timed_out: killed at the timeout)."""

    returncode: int
    stdout: str
    stderr: str = ""
    timed_out: bool = False


@dataclass(frozen=True)
class Verdict:
    ok: bool
    state: str  # maintenance, blank, firmware, running, no_device, error
    message: str

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2


def probe_argv(mpremote: str, port: str) -> list[str]:
    return [mpremote, "connect", port, "resume", "exec", PROBE]


def run_subprocess(argv: list[str], timeout: float) -> Result:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        return Result(-1, out or "", "", timed_out=True)
    except OSError as e:  # mpremote missing or not executable
        return Result(127, "", str(e))
    return Result(res.returncode, res.stdout, res.stderr)


def decide(port: str, res: Result) -> Verdict:
    """The decision, from what the probe printed (no hardware needed to test it)."""
    state = None
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == TAG:
            state = parts[1]
    if not res.timed_out and res.returncode == 0 and state == "maintenance":
        return Verdict(True, state, f"{port}: Bedside in maintenance mode: flashing")
    if not res.timed_out and res.returncode == 0 and state == "blank":
        return Verdict(True, state, f"{port}: no main.py (plain MicroPython): flashing")
    if not res.timed_out and res.returncode == 0 and state == "firmware":
        return Verdict(
            False,
            state,
            f"{port}: the REPL answers but the board is not in maintenance mode ({MARKER} is "
            "not set: the firmware may have started its watchdog, or the board was reset "
            f"since it was powered up with ACK held). {HOW}",
        )
    text = f"{res.stdout}\n{res.stderr}"
    if "failed to access" in text or "no device found" in text:
        return Verdict(False, "no_device", f"{port}: no such device ({res.stderr.strip()})")
    if res.returncode == 127 and not res.timed_out:
        return Verdict(False, "error", f"cannot run mpremote: {res.stderr.strip()}")
    if res.timed_out or "could not enter raw repl" in text or '"type"' in text:
        what = (
            "the Bedside firmware is running" if '"type"' in text else "the REPL does not answer"
        )
        return Verdict(
            False,
            "running",
            f"{port}: {what} (the running firmware ignores Ctrl-C, and its watchdog would reset "
            f"the board in the middle of the copy). {HOW}",
        )
    detail = (res.stderr or res.stdout).strip().splitlines()
    return Verdict(
        False,
        "error",
        f"{port}: the maintenance check failed ({detail[-1] if detail else 'no output'}). {HOW}",
    )


def default_mpremote() -> str:
    venv = Path(sys.executable).parent / "mpremote"
    if venv.exists():
        return str(venv)
    return shutil.which("mpremote") or "mpremote"


def check(
    port: str,
    mpremote: str | None = None,
    run: Runner = run_subprocess,
    timeout: float = TIMEOUT_S,
) -> Verdict:
    return decide(port, run(probe_argv(mpremote or default_mpremote(), port), timeout))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("port", help="serial port of the Pico, e.g. /dev/ttyACM0")
    p.add_argument("--mpremote", default=None, help="mpremote executable (default: the venv's)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds for the probe")
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the check (a board whose main.py predates the maintenance marker)",
    )


def run(args: argparse.Namespace, runner: Runner = run_subprocess) -> int:
    if args.force:
        print(f"{args.port}: maintenance check skipped (--force)", file=sys.stderr)
        return 0
    v = check(args.port, args.mpremote, runner, args.timeout)
    print(v.message, file=sys.stdout if v.ok else sys.stderr)
    return v.exit_code


def main(argv: Sequence[str] | None = None, runner: Runner = run_subprocess) -> int:
    p = argparse.ArgumentParser(prog="python -m bedside_host.flashing", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv), runner)


if __name__ == "__main__":
    sys.exit(main())
