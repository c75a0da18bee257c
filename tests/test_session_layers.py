"""The session services' place in the layers (link -> store -> services -> interfaces) and
their one way to the device (REQ-SES-69)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "host_tools" / "bedside_host"
SERVICES = sorted((PKG / "session").glob("*.py"))


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_layers_call_only_downward_and_devices_only_through_the_link() -> None:
    """REQ-SES-69: the session services import no interface (commands, cli, report, station)
    and the store layer (store.py, session_records.py) imports no service; the services reach
    the device only through DeviceLink.request (no transport, no raw writes), and the command
    module keeps no session logic of its own (it only calls SessionService methods)."""
    assert SERVICES
    for path in SERVICES:
        up = re.compile(r"bedside_host\.(commands|cli|report|station)")
        bad = {m for m in _imports(path) if up.match(m)}
        assert not bad, (path.name, bad)
        text = path.read_text(encoding="utf-8")
        assert "_transport" not in text and ".write(" not in text, path.name
        for call in re.findall(r"self\.link\.(\w+)", text):
            assert call in ("request", "poll", "url", "boot"), (path.name, call)
    for path in (PKG / "store.py", PKG / "session_records.py"):
        assert not {m for m in _imports(path) if m.startswith("bedside_host.session.")}, path
        assert "bedside_host.session" not in _imports(path)
    cmd = (PKG / "commands" / "session.py").read_text(encoding="utf-8")
    assert "request(" not in cmd and "session_records" not in cmd and "sqlite3" not in cmd
    for op in ("open", "screen", "baseline", "start", "dose", "o2", "check", "stop",
               "discharge", "close", "cancel", "show"):  # fmt: skip
        assert f"svc.{op}(" in cmd, op
