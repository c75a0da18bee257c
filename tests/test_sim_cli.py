"""Simulator: the ``bedside simulate`` command end to end over pty pairs."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path
from typing import Any

import pytest
from bedside.readings import OxiReading
from bedside.sensors.nonin2 import Nonin2Decoder
from bedside.sensors.suntech import BAUD
from bedside_host.commands import simulate
from bedside_host.sim.suntech import SuntechConfig, SuntechEmulator

ROOT = Path(__file__).resolve().parents[1]


def _pty() -> tuple[int, str]:
    """A pty pair; the slave stays open here (else reads on the master fail with EIO until
    the simulator opens it by name) and is closed with the master by _close."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    _SLAVES[master] = slave
    return master, os.ttyname(slave)


_SLAVES: dict[int, int] = {}


def _close(master: int) -> None:
    os.close(_SLAVES.pop(master))
    os.close(master)


def _read_for(fd: int, seconds: float) -> bytes:
    out = bytearray()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        r, _, _ = select.select([fd], [], [], min(left, 0.05))
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                time.sleep(0.01)
    return bytes(out)


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'host_tools'}{os.pathsep}{ROOT / 'firmware'}")
    return subprocess.Popen(
        [sys.executable, "-m", "bedside_host.commands.simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


@pytest.mark.slow
def test_nonin2_over_pty_rate_and_decode() -> None:
    """REQ-SIM-05, REQ-SIM-10: `simulate --oximeter PTY` streams Nonin #2 at about 375 B/s that
    the firmware decoder accepts without errors; stops by itself at --duration."""
    master, name = _pty()
    try:
        p = _spawn("--oximeter", name, "--scenario", "normal", "--duration", "2.5")
        _read_for(master, 0.5)  # skip start-up (interpreter import time varies)
        t0 = time.monotonic()
        buf = _read_for(master, 1.5)
        dt = time.monotonic() - t0
        rc = p.wait(timeout=10)
        assert rc == 0, p.stderr.read() if p.stderr else b""
    finally:
        _close(master)
    rate = len(buf) / dt
    assert 250 <= rate <= 500, rate
    r = OxiReading()
    d = Nonin2Decoder(r)
    d.feed(buf, len(buf), 0)
    assert d.packets >= 3 and d.frame_losses <= 1  # first packet may be cut by the read window
    assert 90 <= r.spo2 <= 100 and 50 <= r.pr <= 100


@pytest.mark.slow
def test_sigterm_stops_cleanly() -> None:
    """REQ-SIM-10: SIGTERM stops the simulator with exit status 0 and a status line on stderr."""
    master, name = _pty()
    try:
        p = _spawn("--oximeter", name)
        buf = _read_for(master, 1.0)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=5)
    finally:
        _close(master)
    assert rc == 0 and buf
    assert p.stderr is not None and b"SpO2" in p.stderr.read()


def test_bad_port_and_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-SIM-11: a bad port or a missing port option exits 2 with a one-line message."""
    assert simulate.main(["--oximeter", "/nonexistent/tty0", "--duration", "1"]) == 2
    assert "cannot open --oximeter /nonexistent/tty0" in capsys.readouterr().err
    assert simulate.main(["--duration", "1"]) == 2
    assert "at least one of" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        simulate.main(["--oximeter", "loop://", "--speed", "-1"])
    assert e.value.code == 2


def test_loop_url_in_process() -> None:
    """REQ-SIM-05: pyserial URLs work as ports (loop://), in-process without signals."""
    assert simulate.main(["--oximeter", "loop://", "--duration", "0.3", "--quiet"]) == 0


def _write_read(master: int, data: bytes, seconds: float) -> bytes:
    os.write(master, data)
    return _read_for(master, seconds)


@pytest.mark.slow
def test_nibp_over_pty_sequence() -> None:
    """REQ-SIM-10, REQ-SIM-15: `simulate --nibp PTY` answers start with 'O', cuff polls with
    pressure packets, sends 'K' at the end of a short measurement, then the 24-byte data."""
    master, name = _pty()
    try:
        p = _spawn("--nibp", name, "--nibp-duration", "3", "--duration", "8", "--quiet")
        time.sleep(1.0)  # let it open the port
        got = _write_read(master, bytes.fromhex("3A 20 A6"), 0.3)
        assert got == bytes.fromhex("3E 04 4F 6F")
        seen = bytearray()
        for _ in range(20):
            seen += _write_read(master, bytes.fromhex("3A 79 05 00 48"), 0.2)
        assert bytes.fromhex("3E 04 4B 73") in seen  # unsolicited 'K'
        cuff = [
            seen[i + 2] | seen[i + 3] << 8
            for i in range(len(seen) - 4)
            if seen[i : i + 2] == b"\x3e\x05"
        ]
        assert max(cuff) >= 150
        data = _write_read(master, bytes.fromhex("3A 79 03 00 4A"), 0.3)
        assert len(data) == 24 and data[:2] == b"\x3e\x18" and sum(data) & 0xFF == 0
        assert data[7] == 1 and data[20] == 0
        assert p.wait(timeout=10) == 0
    finally:
        _close(master)


@pytest.mark.slow
def test_cli_fault_silence_and_main_entry() -> None:
    """REQ-SIM-18, REQ-SIM-10: `--fault silence:0-30` keeps the oximeter line quiet; the
    command runs through `bedside_host.cli.main` (the `bedside` entry point)."""
    from bedside_host.cli import main as bedside_main

    master, name = _pty()
    try:
        rc = bedside_main(
            ["simulate", "--oximeter", name, "--fault", "silence:0-30", "--duration", "0.5",
             "--quiet"]
        )  # fmt: skip
        assert rc == 0 and _read_for(master, 0.2) == b""
        rc = bedside_main(["simulate", "--oximeter", name, "--duration", "0.5", "--quiet"])
        assert rc == 0 and len(_read_for(master, 0.2)) >= 100
    finally:
        _close(master)


def test_help_and_fault_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-SIM-11, REQ-SIM-18: --help renders (scenarios listed); a bad --fault exits 2 with
    the reason; a fault for a stream without a port exits 2."""
    with pytest.raises(SystemExit) as e:
        simulate.main(["--help"])
    assert e.value.code == 0 and "desat" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        simulate.main(["--oximeter", "loop://", "--fault", "drop:2"])
    assert e.value.code == 2 and "must be in (0, 1]" in capsys.readouterr().err
    assert simulate.main(["--oximeter", "loop://", "--fault", "drop:0.1@nibp"]) == 2
    assert "needs --nibp" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        simulate.main(["--nibp", "loop://", "--nibp-error", "300"])
    assert e.value.code == 2


def test_nibp_cuff_fault_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ-SEN-34: `--nibp-cuff-stuck MMHG` and `--nibp-ignore-aborts N` are documented in
    --help, validated (exit 2), and reach the emulator's configuration."""
    with pytest.raises(SystemExit) as e:
        simulate.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--nibp-cuff-stuck" in out and "--nibp-ignore-aborts" in out
    for bad in (
        ["--nibp-cuff-stuck", "0"],
        ["--nibp-cuff-stuck", "x"],
        ["--nibp-ignore-aborts", "-1"],
    ):
        with pytest.raises(SystemExit) as e:
            simulate.main(["--nibp", "loop://", *bad])
        assert e.value.code == 2, bad
    seen: list[SuntechConfig] = []
    real = simulate.SuntechEmulator

    def spy(state_at: Any, cfg: SuntechConfig) -> SuntechEmulator:
        seen.append(cfg)
        return real(state_at, cfg)

    monkeypatch.setattr(simulate, "SuntechEmulator", spy)
    argv = ["--nibp", "loop://", "--nibp-cuff-stuck", "290", "--nibp-ignore-aborts", "2"]
    assert simulate.main([*argv, "--duration", "0.2", "--quiet"]) == 0
    assert seen and seen[0].cuff_stuck_mmhg == 290 and seen[0].ignore_aborts == 2
    assert simulate.NIBP_BAUD == BAUD == 9600  # the firmware's SunTech BAUD, one source
