"""`bedside sil` and `bedside demo` start-up edges (docs/sil.md): one SIL per state directory
(an flock()ed lock file), logs appended never truncated, bad paths and values refused with
one line on stderr and exit 2 before anything starts, an unknown demo scenario listed."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bedside_host.commands.sil import LOCK_FILE
from bedside_host.sim.patient import SCENARIOS
from silharness import BEDSIDE, ROOT, Sil

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


def _bedside(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BEDSIDE, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def _refused(res: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, nothing on stdout (no ports line), exactly one line on stderr."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bedside sil: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_second_sil_on_one_state_dir_is_refused(tmp_path: Path) -> None:
    """REQ-CLI-14: while a `bedside sil` runs on a state directory, a second one on the same
    directory exits 2 with one line and touches nothing; the first runs on; the lock is gone
    once the first stopped."""
    first = Sil(tmp_path)
    try:
        second = _bedside(
            "sil", "--state-dir", str(first.state), "--annunciator-log", "-", cwd=tmp_path
        )
        _refused(second, "in use by another bedside sil", str(first.state))
        assert first.proc.poll() is None
        first.wait_for(lambda m: m.get("type") == "heartbeat", 10.0)
        rc, out = first.stop()
        assert rc == 0 and "sil: stopped" in out
    finally:
        first.kill()
    with open(first.state / LOCK_FILE, "rb") as f:  # released: a new SIL may start
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_logs_are_appended_on_rerun(tmp_path: Path) -> None:
    """REQ-CLI-15: --annunciator-log and --display-file are appended to, never truncated: after
    a second run each file starts with exactly what the first run left and has more."""
    ann = tmp_path / "annunciator.jsonl"
    display = tmp_path / "display.jsonl"
    ann.write_text('{"t_ms": 0.0, "note": "kept"}\n')
    display.write_text('{"t_ms": 0.0, "note": "kept"}\n')
    before = [ann.read_bytes(), display.read_bytes()]
    for _run in range(2):
        sil = Sil(tmp_path, "--display-file", str(display))
        try:
            end = time.monotonic() + 10.0
            while time.monotonic() < end and (
                len(ann.read_bytes()) <= len(before[0])
                or len(display.read_bytes()) <= len(before[1])
            ):
                time.sleep(0.05)
            assert sil.stop()[0] == 0
        finally:
            sil.kill()
        after = [ann.read_bytes(), display.read_bytes()]
        for old, new in zip(before, after, strict=True):
            assert new.startswith(old) and len(new) > len(old)
            assert all(json.loads(ln) for ln in new.splitlines())
        before = after


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may create files in (a read-only tmpfs for root, else mode 0555)."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() == 0:
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs ({res.stderr.strip()})")
        yield d
        subprocess.run(["umount", "-l", str(d)], capture_output=True, check=False)
    else:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)


@pytest.mark.parametrize(
    "make_args, words",
    [
        (lambda t: ["--annunciator-log", str(t / "missing" / "a.jsonl")], ["--annunciator-log"]),
        (lambda t: ["--display-file", str(t / "missing" / "d.jsonl")], ["--display-file"]),
        (lambda t: ["--annunciator-log", str(t / "afile" / "a.jsonl")], ["Not a directory"]),
        (lambda t: ["--state-dir", str(t / "afile" / "state")], ["--state-dir"]),
        (lambda t: ["--state-dir", str(t / "afile")], ["not a directory"]),
        (lambda t: ["--set", "nope=1"], ["--set wants NAME=VALUE"]),
        (lambda t: ["--set", "spo2_low=abc"], ["whole number"]),
    ],
    ids=[
        "log-missing-dir",
        "display-missing-dir",
        "log-under-a-file",
        "state-under-a-file",
        "state-is-a-file",
        "unknown-setting",
        "setting-not-a-number",
    ],
)
def test_bad_paths_and_values_exit_2(tmp_path: Path, make_args: object, words: list[str]) -> None:
    """REQ-CLI-16: a log file in a missing directory, a state directory that cannot be made or
    is a file, or a bad --set: one line on stderr naming the problem, exit 2, no ports line,
    nothing created."""
    (tmp_path / "afile").write_text("x")
    args = make_args(tmp_path)  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.iterdir())
    _refused(_bedside("sil", *args, cwd=tmp_path), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_log_in_unwritable_dir_exits_2(tmp_path: Path, read_only_dir: Path) -> None:
    """REQ-CLI-16: an annunciator log or display file in a directory that cannot be written
    gives one line and exit 2, before any port is opened."""
    for opt in ("--annunciator-log", "--display-file"):
        res = _bedside("sil", opt, str(read_only_dir / "x.jsonl"), cwd=tmp_path)
        _refused(res, f"cannot write {opt}", str(read_only_dir / "x.jsonl"))


def test_demo_unknown_scenario_lists_them(tmp_path: Path) -> None:
    """REQ-CLI-17: `bedside demo --scenario nope` exits 2 with the list of scenarios and
    starts nothing."""
    res = _bedside("demo", "--scenario", "nope", "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert "invalid choice: 'nope'" in res.stderr
    for name in SCENARIOS:
        assert repr(name) in res.stderr
    assert not (tmp_path / "w").exists()
