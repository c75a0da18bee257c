"""The SIL's flash fails the way the Pico's does, and local alarming survives it: a real full
filesystem (a small tmpfs, filled) and a read-only one as the state directory. Mounting needs
root (CI runs as root); elsewhere these tests are skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from silharness import Sil

pytestmark = pytest.mark.slow


def _mount(path: Path, opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or 'not root'})")


@pytest.fixture
def state_mount(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    state = tmp_path / "state"
    yield state
    subprocess.run(["umount", "-l", str(state)], capture_output=True, check=False)


def _pulses(sil: Sil) -> list[float]:
    return [a["t_ms"] for a in sil.annunciator() if a["dev"] == "buzzer" and a["on"]]


def test_disk_full_during_high_alarm_keeps_alarming(state_mount: Path, tmp_path: Path) -> None:
    """REQ-CORE-14: the state directory's filesystem fills up during a HIGH alarm: the SIL keeps
    running and sounding, raises STORAGE_FAULT and reports the failed writes."""
    _mount(state_mount, "size=64k")
    sil = Sil(tmp_path)
    try:
        sil.feed_oximeter(3, 72, 97)
        filler = state_mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # take every free block of the tmpfs
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        sil.feed_oximeter(2, 72, 80)  # SPO2_DESAT (HIGH) while the disk is full
        for i in range(20):  # settings changes and alarm events: every write fails
            v = 91 + i % 3  # (a lowering during SPO2_LOW needs confirm)
            cmd = {"cmd": "set", "name": "spo2_low", "value": v, "confirm": True}
            sil.write("host", sil.signed(cmd))
        sil.feed_oximeter(8, 72, 80)
        assert sil.proc.poll() is None, "bedside sil died on a full disk"
        raised = {m["condition"] for m in sil.messages if m["type"] == "alarm"}
        assert {"SPO2_DESAT", "STORAGE_FAULT"} <= raised
        # reported: the heartbeat counts the failed flash operations (every second, so a host
        # that missed the one-off `fault` line still sees it)
        hb = [m for m in sil.messages if m["type"] == "heartbeat"]
        assert hb and hb[-1]["storage_errors"] > 0
        pulses = _pulses(sil)
        late = [t for t in pulses if t > pulses[0] + 5000]
        assert late, "the HIGH alarm stopped sounding on a full disk"
    finally:
        sil.kill()


def test_read_only_state_dir_starts_and_alarms(state_mount: Path, tmp_path: Path) -> None:
    """REQ-CORE-14: a read-only state directory never stops the SIL from starting: it runs
    with STORAGE_FAULT and raises and sounds its alarms."""
    _mount(state_mount, "size=64k,ro")
    sil = Sil(tmp_path)
    try:
        sil.feed_oximeter(3, 72, 97)
        sil.feed_oximeter(3, 72, 80)
        time.sleep(0.5)
        sil.host_messages()
        assert sil.proc.poll() is None
        raised = {m["condition"] for m in sil.messages if m["type"] == "alarm"}
        assert {"SPO2_DESAT", "STORAGE_FAULT"} <= raised
        assert _pulses(sil)
    finally:
        sil.kill()
