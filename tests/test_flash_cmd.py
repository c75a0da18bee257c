"""`bedside flash` (host_tools/bedside_host/commands/flash.py) without hardware: a fake mpremote
runner records the commands, the compile step runs the real mpy-cross into a temporary
directory, and the version check reads a fake device's hello over the real link client."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest
from bedside import VERSION
from bedside_host import flashing
from bedside_host.cli import COMMANDS, build_parser
from bedside_host.commands import flash
from bedside_host.commands.flash import (
    CLEAN_TAG,
    FlashError,
    check_version,
    compile_firmware,
    read_hello,
)
from bedside_host.flashing import Result
from fakedevice import FakeDevice

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
PORT = "/dev/ttyACM0"
MPY_MAGIC = ord("M")


class FakeMpremote:
    """Records every mpremote command line; answers the probe with `probe_state`."""

    def __init__(self, probe_state: str = "maintenance", fail: str = "") -> None:
        self.probe_state = probe_state
        self.fail = fail  # "cp", "exec" or "reset": that step exits 1
        self.calls: list[list[str]] = []
        self.copied: dict[str, set[str]] = {}  # what the copy saw in the temporary tree

    def __call__(self, argv: list[str], timeout: float) -> Result:
        self.calls.append(argv)
        if argv[4:6] == ["exec", flashing.PROBE]:
            return Result(0, f"{flashing.TAG} {self.probe_state}\n")
        if "cp" in argv:
            for src in argv[argv.index("-r") + 1 : argv.index(":")]:
                base = Path(src)
                self.copied[base.name] = {
                    p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()
                }
            self.copied["main.py"] = {Path(argv[-2]).read_text(encoding="utf-8")}
            return Result(1, "", "mpremote: OSError: 28") if self.fail == "cp" else Result(0, "")
        if argv[4] == "exec":  # the stale-.py cleanup
            if self.fail == "exec":
                return Result(1, "", "Traceback")
            return Result(0, f"{CLEAN_TAG} bedside/device.py\n{CLEAN_TAG} board/pins.py\n")
        if argv[4] == "reset":
            return Result(1, "", "failed") if self.fail == "reset" else Result(0, "")
        return Result(1, "", "unexpected")


def _args(*extra: str) -> argparse.Namespace:
    ns = build_parser(["flash"]).parse_args(["flash", "--port", PORT, *extra])
    ns.mpremote = "mpremote"
    return ns


def _sources() -> set[str]:
    out = set()
    for pkg in flash.PACKAGES:
        for p in (FIRMWARE / pkg).rglob("*.py"):
            if "__pycache__" not in p.parts:
                out.add(p.relative_to(FIRMWARE).with_suffix(".mpy").as_posix())
    return out


def test_flash_is_in_the_command_table() -> None:
    """REQ-CLI-10: `bedside flash` is a lazy command whose help line is the module's HELP."""
    assert COMMANDS["flash"] == ("flash", flash.HELP)
    ns = _args("--force")
    assert ns.port == PORT and ns.force and ns._run is flash.run


def test_refused_board_gets_nothing_copied(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-CLI-10: a board not in maintenance mode is refused (exit 2, one line on what to do)
    by the flashing.py check, and no copy, cleanup or reset is sent."""
    runner = FakeMpremote("firmware")
    hellos: list[str] = []

    def hello(port: str, timeout: float) -> None:
        hellos.append(port)

    assert flash.run(_args(), runner, hello, FIRMWARE, lambda s: None) == 2
    assert runner.calls == [flashing.probe_argv("mpremote", PORT)]
    assert hellos == []
    err = capsys.readouterr().err
    assert err.startswith("bedside flash: ") and "hold ACK while powering it up" in err


def test_compile_every_module_to_mpy_and_nothing_else(tmp_path: Path) -> None:
    """REQ-CLI-11: the real mpy-cross (-march=armv6m) compiles every module of bedside/, board/
    and lib/ to .mpy; no sources, no __pycache__, no tests; main.py stays source."""
    out = tmp_path / "out"
    compiled = compile_firmware(out, FIRMWARE)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(compiled.modules) == _sources()
    assert files == _sources() | {"main.py"}
    assert "bedside/alarms/__init__.mpy" in files and "lib/ssd1306.mpy" in files
    assert (out / "main.py").read_bytes() == (FIRMWARE / "main.py").read_bytes()
    for m in compiled.modules:
        head = (out / m).read_bytes()[:4]
        assert head[0] == MPY_MAGIC and head[1] == 6, m  # mpy v6 (MicroPython 1.29)


def _small_firmware(fw: Path) -> Path:
    for pkg in flash.PACKAGES:
        (fw / pkg).mkdir(parents=True)
        (fw / pkg / "__init__.py").write_text("X = 1\n")
    (fw / "main.py").write_text("import bedside\n")
    return fw


def test_compile_skips_pycache_and_tests(tmp_path: Path) -> None:
    """REQ-CLI-11: mpy-cross runs with -march=armv6m for each module; a __pycache__ or tests
    directory inside a package is not shipped; a module that does not compile stops the flash
    with its name and mpy-cross's message."""
    fw = _small_firmware(tmp_path / "fw")
    (fw / "bedside" / "__pycache__").mkdir()
    (fw / "bedside" / "__pycache__" / "junk.py").write_text("x = 1\n")
    (fw / "bedside" / "tests").mkdir()
    (fw / "bedside" / "tests" / "t.py").write_text("x = 1\n")
    log = tmp_path / "argv.log"
    wrapper = tmp_path / "mpy-cross"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {flash.default_mpy_cross()} "$@"\n')
    wrapper.chmod(0o755)
    compiled = compile_firmware(tmp_path / "out", fw, str(wrapper))
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and all(c.startswith("-march=armv6m ") for c in calls)
    assert compiled.modules == ["bedside/__init__.mpy", "board/__init__.mpy", "lib/__init__.mpy"]
    (fw / "board" / "bad.py").write_text("def (:\n")
    with pytest.raises(FlashError, match=r"board/bad\.py"):
        compile_firmware(tmp_path / "out2", fw)


def test_flash_copies_cleans_resets_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-CLI-12: in maintenance mode it copies the compiled trees and main.py in one
    `mpremote connect PORT resume fs cp` session, removes stale .py copies of every module now
    shipped as .mpy, resets, and verifies the hello's fw against bedside.VERSION (exit 0)."""
    runner = FakeMpremote("maintenance")
    asked: list[tuple[str, float]] = []

    def hello(port: str, timeout: float) -> dict[str, Any]:
        asked.append((port, timeout))
        return {"type": "hello", "fw": VERSION, "proto": 2}

    rc = flash.run(_args(), runner, hello, FIRMWARE, lambda s: None)
    out = capsys.readouterr()
    assert rc == 0, out.err
    probe, copy, clean, reset = runner.calls
    assert probe == flashing.probe_argv("mpremote", PORT)
    for argv in (copy, clean, reset):
        assert argv[:4] == ["mpremote", "connect", PORT, "resume"]
    assert copy[4:7] == ["fs", "cp", "-r"] and copy[-6:-2] == [":", "+", "fs", "cp"]
    assert copy[-1] == ":main.py"
    assert {f"{pkg}/{m}" for pkg, ms in runner.copied.items() if pkg != "main.py" for m in ms} == (
        _sources()
    )
    assert runner.copied["main.py"] == {(FIRMWARE / "main.py").read_text(encoding="utf-8")}
    script = clean[5]
    for m in _sources():
        assert repr(m[:-4] + ".py") in script
    assert "main.py" not in script
    assert reset[4:] == ["reset"]
    assert asked == [(PORT, flash.HELLO_TIMEOUT_S)]
    assert "removed 2 stale .py: bedside/device.py, board/pins.py" in out.out
    assert out.out.rstrip().endswith(f"{PORT}: firmware {VERSION} running (hello verified)")


def test_force_skips_the_check_and_failed_steps_stop(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ-CLI-12: --force skips the probe (and says so); a failing copy, cleanup or reset
    stops there with exit 2 and one line; nothing after it runs."""
    ok = {"fw": VERSION}
    fw = _small_firmware(tmp_path / "fw")
    runner = FakeMpremote()
    assert flash.run(_args("--force"), runner, lambda p, t: ok, fw, lambda s: None) == 0
    assert [c[4] for c in runner.calls] == ["fs", "exec", "reset"]
    assert "maintenance check skipped (--force)" in capsys.readouterr().out
    for step, sent in (("cp", 1), ("exec", 2), ("reset", 3)):
        runner = FakeMpremote(fail=step)
        rc = flash.run(_args("--force"), runner, lambda p, t: ok, fw, lambda s: None)
        assert rc == 2 and len(runner.calls) == sent
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "failed" in err and PORT in err


def test_version_check_against_a_device_line(tmp_path: Path) -> None:
    """REQ-CLI-13: the version is read from the device's hello line over the real link client
    (a fake device on a pty): a different fw, or no hello at all, is reported as a failure."""
    with FakeDevice(tmp_path, report_s=0.25) as dev:
        hello = read_hello(dev.path, 10.0)
    assert hello is not None and hello["fw"] == "0.1.0-fake"
    assert check_version(hello, "0.1.0-fake", PORT) == (
        f"{PORT}: firmware 0.1.0-fake running (hello verified)"
    )
    with pytest.raises(FlashError, match=r"reports firmware '0\.1\.0-fake'.*not '0\.1\.0'"):
        check_version(hello, "0.1.0", PORT)
    with pytest.raises(FlashError, match="no hello"):
        check_version(None, VERSION, PORT)
    assert read_hello(str(tmp_path / "gone"), 0.5) is None


def test_version_mismatch_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """REQ-CLI-13: after a good copy, an old version in the hello means exit 2 and one line."""
    runner = FakeMpremote()
    old = {"type": "hello", "fw": "0.0.9"}
    fw = _small_firmware(tmp_path / "fw")
    assert flash.run(_args(), runner, lambda p, t: old, fw, lambda s: None) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'0.0.9'" in err and repr(VERSION) in err


def test_tests_compile_the_firmware_as_flashed() -> None:
    """REQ-RAM-02: the MicroPython test tier compiles the firmware with the optimisation level
    `bedside flash` uses (-O3: no line-number tables, the RAM the device really has)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import micropython

    assert micropython.MPY_OPT == flash.MPY_OPT == "-O3"
