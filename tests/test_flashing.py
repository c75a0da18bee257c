"""`make flash` refuses a board that is not in maintenance mode (bedside_host/flashing.py and
firmware/main.py): the decision with a fake runner, main.py's marker with fake modules, and
the real mpremote against a pty that speaks the MicroPython raw REPL (or, like the running
firmware, ignores Ctrl-C and sends NDJSON)."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import runpy
import select
import subprocess
import sys
import threading
import tty
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside_host import flashing
from bedside_host.flashing import MARKER, PROBE, Result, check, decide, main, probe_argv

ROOT = Path(__file__).resolve().parents[1]
MAIN_PY = ROOT / "firmware" / "main.py"
MPREMOTE = Path(sys.executable).parent / "mpremote"
PORT = "/dev/ttyACM0"


def _probe_out(state: str) -> str:
    return f"{flashing.TAG} {state}\n"


class FakeRunner:
    def __init__(self, result: Result) -> None:
        self.result = result
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: list[str], timeout: float) -> Result:
        self.calls.append((argv, timeout))
        return self.result


# --- the decision ---------------------------------------------------------------------------


def test_maintenance_board_may_be_flashed() -> None:
    """REQ-CORE-49: the probe runs `mpremote connect PORT resume exec` (resume: no soft reset,
    which would clear the marker) with a timeout; the marker means exit 0."""
    run = FakeRunner(Result(0, _probe_out("maintenance")))
    v = check(PORT, "mpremote", run, timeout=12.0)
    assert v.ok and v.exit_code == 0 and v.state == "maintenance"
    assert run.calls == [(["mpremote", "connect", PORT, "resume", "exec", PROBE], 12.0)]
    assert probe_argv("mp", PORT)[3] == "resume"


def test_blank_board_may_be_flashed() -> None:
    """REQ-CORE-49: a board with no main.py (plain MicroPython, first flash) has no watchdog."""
    v = decide(PORT, Result(0, "some banner\n" + _probe_out("blank")))
    assert v.ok and v.state == "blank"


@pytest.mark.parametrize(
    "result, state, words",
    [
        (Result(0, _probe_out("firmware")), "firmware", "not in maintenance mode"),
        (Result(-1, "", timed_out=True), "running", "REPL does not answer"),
        (
            Result(
                1, 'b\'{"v": 2, "seq": 9, "type": "heartbeat"}\\n\'\n', "could not enter raw repl"
            ),
            "running",
            "Bedside firmware is running",
        ),
        (Result(1, "", "mpremote: could not enter raw repl"), "running", "REPL does not answer"),
        (
            Result(1, "", "mpremote: failed to access /dev/ttyACM0 (it may be in use)"),
            "no_device",
            "no such device",
        ),
        (Result(127, "", "No such file or directory: 'mpremote'"), "error", "cannot run"),
        (Result(0, "nothing useful\n"), "error", "check failed"),
        (Result(1, _probe_out("maintenance"), "Traceback ..."), "error", "check failed"),
    ],
)
def test_anything_else_is_refused_with_directions(result: Result, state: str, words: str) -> None:
    """REQ-CORE-49: no marker (the firmware ran, the REPL does not answer, an error): exit 2 with
    a message that says how to get to maintenance mode (hold ACK while powering up)."""
    v = decide(PORT, result)
    assert not v.ok and v.exit_code == 2 and v.state == state
    assert words in v.message
    if result.returncode != 127:  # mpremote itself missing: nothing to say about the board
        assert PORT in v.message
    if state in ("firmware", "running") or (state == "error" and result.returncode != 127):
        assert "hold ACK while powering it up" in v.message


def test_cli_exit_codes_and_force(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-CORE-49: `python -m bedside_host.flashing PORT` exits 2 with the message on stderr;
    --force skips the check (a board whose main.py predates the marker) and says so."""
    assert main([PORT], FakeRunner(Result(-1, "", timed_out=True))) == 2
    err = capsys.readouterr().err
    assert "hold ACK while powering it up" in err
    assert main([PORT], FakeRunner(Result(0, _probe_out("maintenance")))) == 0
    assert "maintenance mode" in capsys.readouterr().out
    never = FakeRunner(Result(0, ""))
    assert main([PORT, "--force"], never) == 0 and never.calls == []
    assert "skipped" in capsys.readouterr().err


def test_makefile_flash_checks_first() -> None:
    """REQ-CORE-49: the Makefile's flash target is `bedside flash`, which runs the check before
    any copy (tests/test_flash_cmd.py::test_refused_board_gets_nothing_copied); no recipe line
    copies around it."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = text[text.index("\nflash:") :].split("\n\n")[0]
    lines = [ln.strip() for ln in recipe.splitlines()[1:]]
    assert any("bedside flash --port $(PORT)" in ln and "--force" in ln for ln in lines)
    assert not any("mpremote" in ln for ln in lines)


# --- firmware/main.py -------------------------------------------------------------------------


class _Pin:
    IN, PULL_UP, PULL_DOWN = 0, 1, 2
    level = 1

    def __init__(self, *a: Any, **k: Any) -> None:
        pass

    def value(self) -> int:
        return _Pin.level


def _run_main(monkeypatch: pytest.MonkeyPatch, ack_level: int) -> tuple[dict[str, Any], list[int]]:
    machine = types.ModuleType("machine")
    machine.Pin = _Pin  # type: ignore[attr-defined]
    started: list[int] = []
    rp2040 = types.ModuleType("board.rp2040")
    rp2040.run = lambda: started.append(1)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "board.rp2040", rp2040)
    _Pin.level = ack_level
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        g = runpy.run_path(str(MAIN_PY), run_name="__main__")
    g["_printed"] = out.getvalue()
    return g, started


def test_main_sets_the_marker_only_in_maintenance_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQ-CORE-50: ACK held at power-up (active low): main.py does not start the firmware,
    prints "Bedside: maintenance mode" and leaves BEDSIDE_MAINTENANCE = True in its globals
    (the REPL's); otherwise it starts the firmware and the marker is False."""
    g, started = _run_main(monkeypatch, ack_level=0)
    assert g[MARKER] is True and started == []
    assert g["_printed"].startswith("Bedside: maintenance mode")
    g, started = _run_main(monkeypatch, ack_level=1)
    assert g[MARKER] is False and started == [1]


def test_main_and_probe_agree_on_the_marker() -> None:
    """REQ-CORE-50: main.py assigns the very name the probe reads (one source of truth)."""
    tree = ast.parse(MAIN_PY.read_text(encoding="utf-8"))
    names = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)}  # fmt: skip
    assert MARKER in names and MARKER in PROBE
    compile(PROBE, "<probe>", "exec")  # valid Python (MicroPython takes the same syntax)


# --- the real mpremote against a pty ------------------------------------------------------------


class Board(threading.Thread):
    """The device end of a pty. mode "repl": MicroPython's friendly and raw REPL (Ctrl-A raw,
    Ctrl-B friendly, Ctrl-D runs the line, or soft-resets on an empty line: the REPL's globals
    are cleared and, in raw mode, main.py is not run again); no raw-paste support, so mpremote
    falls back to the plain raw REPL. The probe runs with CPython in `globals_` and in `cwd`
    (the board's filesystem). mode "firmware": ignores every byte, sends NDJSON heartbeats."""

    def __init__(self, mode: str, globals_: dict[str, Any], cwd: Path) -> None:
        super().__init__(daemon=True)
        self.mode, self.globals, self.cwd = mode, globals_, cwd
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.raw = False
        self.line = bytearray()
        self.soft_resets = 0
        self.stop = threading.Event()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if self.mode == "firmware" and not ready:
                seq += 1
                self.send(b'{"v": 2, "seq": %d, "type": "heartbeat"}\n' % seq)
            if not ready:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            if self.mode == "repl":
                for c in data:
                    self._repl(c)

    def _repl(self, c: int) -> None:
        if not self.raw:
            if c == 0x01:
                self.raw = True
                self.send(b"\r\nraw REPL; CTRL-B to exit\r\n>")
            return  # friendly REPL: typed text is not needed here
        if c == 0x01:
            self.line.clear()
            self.send(b"raw REPL; CTRL-B to exit\r\n>")
        elif c == 0x02:
            self.raw = False
            self.send(b"\r\nMicroPython (test double)\r\n>>> ")
        elif c == 0x03:
            self.line.clear()
        elif c == 0x04 and not self.line:
            self.soft_resets += 1
            self.globals.clear()  # a soft reset: new __main__ globals; main.py not run (raw)
            self.send(b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>")
        elif c == 0x04:
            code = self.line.decode()
            self.line.clear()
            out, err = io.StringIO(), ""
            here = os.getcwd()
            try:
                os.chdir(self.cwd)
                with contextlib.redirect_stdout(out):
                    exec(code, self.globals)
            except Exception as e:
                err = f"Traceback (most recent call last):\r\n{type(e).__name__}: {e}\r\n"
            finally:
                os.chdir(here)
            self.send(b"OK" + out.getvalue().encode() + b"\x04" + err.encode() + b"\x04>")
        else:
            self.line.append(c)

    def close(self) -> None:
        self.stop.set()
        self.join(2)
        os.close(self.master)
        os.close(self.slave)


@contextlib.contextmanager
def board(mode: str, globals_: dict[str, Any], cwd: Path) -> Iterator[Board]:
    b = Board(mode, globals_, cwd)
    b.start()
    try:
        yield b
    finally:
        b.close()


def _mpremote_runner(argv: list[str], timeout: float) -> Result:
    return flashing.run_subprocess([str(MPREMOTE), *argv[1:]], timeout)


needs_mpremote = pytest.mark.skipif(not MPREMOTE.exists(), reason="mpremote not installed")


@needs_mpremote
@pytest.mark.parametrize(
    "globals_, main_py, ok, state",
    [
        ({MARKER: True}, True, True, "maintenance"),
        ({}, False, True, "blank"),
        ({}, True, False, "firmware"),
        ({MARKER: False}, True, False, "firmware"),
    ],
)
def test_real_mpremote_probe(
    tmp_path: Path, globals_: dict[str, Any], main_py: bool, ok: bool, state: str
) -> None:
    """REQ-CORE-49: the real mpremote 1.29 runs the probe over a serial port without a soft
    reset (the marker survives) and the decision follows what the board reports."""
    if main_py:
        (tmp_path / "main.py").write_text("# firmware\n")
    with board("repl", dict(globals_), tmp_path) as b:
        v = check(b.path, str(MPREMOTE), _mpremote_runner, timeout=20)
        assert b.soft_resets == 0
    assert (v.ok, v.state) == (ok, state), v.message


@needs_mpremote
def test_without_resume_the_marker_would_be_lost(tmp_path: Path) -> None:
    """REQ-CORE-49: why the probe says `resume`: a plain `mpremote exec` soft-resets first, which
    clears the REPL's globals, so a board in maintenance mode would look like a running one."""
    (tmp_path / "main.py").write_text("# firmware\n")
    with board("repl", {MARKER: True}, tmp_path) as b:
        argv = [str(MPREMOTE), "connect", b.path, "exec", PROBE]
        res = flashing.run_subprocess(argv, 20)
        assert b.soft_resets == 1
    assert decide(b.path, res).state == "firmware"


@needs_mpremote
@pytest.mark.slow
def test_real_mpremote_against_running_firmware(tmp_path: Path) -> None:
    """REQ-CORE-49: the running firmware ignores Ctrl-C and only sends NDJSON: mpremote cannot
    enter the raw REPL (over a pty it would wait for ever) and the check's own timeout ends the
    wait with a refusal and directions."""
    with board("firmware", {}, tmp_path) as b:
        v = check(b.path, str(MPREMOTE), _mpremote_runner, timeout=8)
    assert not v.ok and v.state == "running" and v.exit_code == 2
    assert "hold ACK while powering it up" in v.message


def test_module_runs_as_a_script() -> None:
    """REQ-CORE-49: `python -m bedside_host.flashing` exists and prints usage on a bad call."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    res = subprocess.run(
        [sys.executable, "-m", "bedside_host.flashing"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode == 2 and "port" in res.stderr
