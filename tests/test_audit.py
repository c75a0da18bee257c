"""The host's audit table (REQ-SEC-04): every authenticated command the device accepted or
refused, with operator and reason, once, whether it came live, from the flash event log or
both; the command messages come from the real firmware core."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from bedside_host.link.messages import Received
from bedside_host.store import SCHEMA_VERSION, Store
from recordsim import DeviceSim

sys.path.insert(0, str(Path(__file__).parent / "mp"))
from corekit import cmd
from scenario import Bench


def _core_commands() -> list[dict[str, object]]:
    """The `command` messages of the real core for one accepted, one confirmed and one
    refused (unsigned) command."""
    b = Bench()
    b.run(500, 72, 97)
    cmd(b, {"cmd": "set", "name": "pr_high", "value": 140, "by": "nurse a", "confirm": True})
    cmd(b, {"cmd": "selftest", "priority": "low", "by": "nurse b"})
    b.host.push(b'{"cmd": "nibp", "action": "start", "by": "mallory"}\n')
    b.run(200)
    return [m for m in b.messages if m["type"] == "command"]


def test_audit_rows_once_from_live_and_log(tmp_path: Path) -> None:
    """REQ-SEC-04: the audit table holds each authenticated command once with its operator,
    outcome, reason and confirm flag, from the live message and the flash-log record alike."""
    msgs = _core_commands()
    assert [(m["cmd"], m["by"], m["ok"]) for m in msgs] == [
        ("set", "nurse a", True),
        ("selftest", "nurse b", True),
        ("nibp", "mallory", False),
    ]
    sim = DeviceSim(boot=1)
    items: list[Received] = []
    for i, m in enumerate(msgs):
        fields = {k: v for k, v in m.items() if k not in ("v", "seq", "boot", "type", "t_ms")}
        t = 1000 + 100 * i
        items.append(sim.send(t, "command", **fields))
        rec = {"n": i, "b": 1, "u": t, "event": "command", **fields}
        items.append(sim.send(t + 5000, "log", log="event", rec=rec))
    st = Store(tmp_path / "rec.db")
    for it in items + items:  # twice: a recorder restarted
        st.add(it)
    st.flush()
    st.close()
    con = sqlite3.connect(tmp_path / "rec.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = con.execute(
        "SELECT cmd, by_name, ok, reason, confirm, source FROM audit ORDER BY t_ms"
    ).fetchall()
    con.close()
    assert len(rows) == 3
    assert rows[0][:4] == ("set", "nurse a", 1, "") and rows[0][4] == 1
    assert rows[1][:3] == ("selftest", "nurse b", 1)
    assert rows[2][:3] == ("nibp", "mallory", 0) and "authentication required" in rows[2][3]
    assert {r[5] for r in rows} == {"live"}
