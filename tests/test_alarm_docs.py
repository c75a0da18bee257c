"""docs/alarms.md agrees with the firmware's alarm tables (REQ-ALM-07, REQ-ALM-22)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bedside.alarms.conditions import CONDITIONS, KIND_NAMES, L_NO, L_SETTING, PRIORITY_NAMES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "alarms.md"


def test_state_diagram_generated_from_the_table() -> None:
    """REQ-ALM-22: the committed mermaid diagram equals the one generated from fsm.TRANSITIONS."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_alarm_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    text = DOC.read_text(encoding="utf-8")
    assert "stateDiagram-v2" in text
    for row in ("active --> latched: end [is_latching]", "audio_paused --> active: pause_end"):
        assert row in text


def test_priority_table_lists_every_condition_as_the_firmware() -> None:
    """REQ-ALM-07: one row per condition id with the firmware's kind, priority and latching,
    and a reasoning text."""
    text = DOC.read_text(encoding="utf-8")
    rows = {
        m.group(1): [c.strip() for c in m.group(2).split("|")]
        for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|(.*)\|$", text, re.M)
    }
    assert set(rows) == {c[0] for c in CONDITIONS}
    for cid, kind, prio, latch, _delay, _esc, _title in CONDITIONS:
        cells = rows[cid]
        assert cells[0] == KIND_NAMES[kind], cid
        assert cells[1] == PRIORITY_NAMES[prio].upper(), cid
        if latch == L_SETTING:
            assert cells[2].startswith("setting"), cid
        elif latch == L_NO:
            assert cells[2].startswith("no"), cid
        assert len(cells[5]) > 40, cid  # reasoning
