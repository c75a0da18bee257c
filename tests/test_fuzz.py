"""The short fuzz run of `make test` (REQ-REL-05): every byte-input target of tools/fuzz.py
for about a second each, plus every kept corpus input and every saved crash replayed (each
crash found and fixed stays a regression test). `make fuzz` runs >= 1,000,000 per target."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import fuzz  # noqa: E402

TARGETS = sorted(fuzz.targets())


@pytest.mark.parametrize("name", TARGETS)
def test_short_fuzz_run(name: str) -> None:
    """REQ-REL-05: a short mutation run per target: no exception escapes, every output in
    range, memory bounded (tools/fuzz.py's checks)."""
    done, _secs, failures = fuzz.fuzz(name, 1500, seed=7)  # a count, never a time budget
    assert not failures, failures
    assert done == 1500


def test_saved_crashes_and_corpus_pass() -> None:
    """REQ-REL-05: every input kept under tests/fuzz/ (corpus and fixed crashes) runs clean."""
    ran = 0
    for name in TARGETS:
        run = fuzz.targets()[name]()
        for sub in ("corpus", "crashes"):
            for p in sorted((fuzz.FUZZ_DIR / sub / name).glob("*.bin")):
                run(p.read_bytes())
                ran += 1
    assert ran >= 0


def test_every_decoder_is_a_target() -> None:
    """REQ-REL-05: each oximeter format of the firmware's table is fuzzed."""
    from bedside.sensors import OXIMETER_FORMATS

    assert {"oxi_" + f for f in OXIMETER_FORMATS} <= set(TARGETS)
    assert {"suntech", "host", "settings", "log", "auth"} <= set(TARGETS)
