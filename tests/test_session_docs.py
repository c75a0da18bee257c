"""The infusion-session docs agree with the firmware: conditions, protocol, settings."""

from __future__ import annotations

import re
from pathlib import Path

from bedside.alarms.conditions import CONDITIONS, P_LOW, P_MEDIUM, PHYSIOLOGICAL, index
from bedside.session import PHASES, Session
from bedside.sessioncrit import CRITERIA
from bedside.sessionops import OPS
from bedside.settings import SPEC, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_session_conditions_in_the_table_and_docs() -> None:
    """REQ-SES-15: CHECK_OVERDUE is LOW and escalates to MEDIUM after check_escalate_s;
    SEDATION_DEEP is a physiological MEDIUM condition whose priority is the organisation
    setting sedation_priority; docs/alarms.md describes both."""
    co = CONDITIONS[index("CHECK_OVERDUE")]
    assert co[2] == P_LOW and co[5] == ("check_escalate_s", P_MEDIUM)
    sd = CONDITIONS[index("SEDATION_DEEP")]
    assert sd[1] == PHYSIOLOGICAL and sd[2] == P_MEDIUM
    assert SPEC["sedation_priority"][0] == "medium"
    text = (ROOT / "docs" / "alarms.md").read_text(encoding="utf-8")
    row = next(ln for ln in text.splitlines() if ln.startswith("| `SEDATION_DEEP`"))
    assert "sedation_priority" in row and "sedation_score_max" in row
    row = next(ln for ln in text.splitlines() if ln.startswith("| `CHECK_OVERDUE`"))
    assert "check_escalate_s" in row and "MEDIUM" in row


def test_protocol_doc_lists_every_op_field_and_criterion() -> None:
    """REQ-SES-33: docs/protocol.md names the session commands, every op with its arguments,
    every state-object field, every discharge criterion, every session event and every phase."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert "| `session` |" in text and "| `get_session` |" in text
    for op, spec in OPS.items():
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{op}` |")), None)
        assert row is not None, op
        for a in spec[2]:
            assert f"`{a}`" in row, (op, a)
    state = Session(Settings(), 0).state()
    for k in state:
        assert f'"{k}"' in text, k
    for c in CRITERIA:
        assert f"`{c}`" in text, c
    for e in ("reminder", "overdue", "baseline_reading", "restored", "restore_failed"):
        assert f"`{e}`" in text, e
    for p in PHASES:
        assert f"`{p}`" in text, p


def test_session_doc_names_settings_keys_and_persistence() -> None:
    """REQ-SES-34: docs/session.md names every session setting, both key sequences, the
    deviations from the agreed contract, and how the outage is counted after a restart."""
    text = (ROOT / "docs" / "session.md").read_text(encoding="utf-8")
    start = list(SPEC).index("baseline_gap_min")
    session_settings = list(SPEC)[start:]
    assert len(session_settings) == 16
    for name in session_settings:
        assert f"`{name}`" in text, name
    for words in ("hold CHECK 1.5 s", "hold NIBP 1.5 s", "conservatively", "Deviations"):
        assert words in text, words
    assert re.search(r"outage is not\s+added to any timer", text)
