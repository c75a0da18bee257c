"""Generate the alarm occurrence state diagram in docs/alarms.md from the firmware table.

The diagram (mermaid, by `transitions.extensions.diagrams` with graph_engine="mermaid") is built
by bedside_host.alarm_model.mermaid_diagram() from bedside.alarms.fsm.TRANSITIONS and written
between the BEGIN/END markers. `--check` exits 1 if the committed file differs
(tests/test_alarm_docs.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from bedside_host.alarm_model import mermaid_diagram  # noqa: E402

DOC = ROOT / "docs" / "alarms.md"
BEGIN = "<!-- BEGIN generated: fsm diagram (tools/gen_alarm_docs.py) -->"
END = "<!-- END generated: fsm diagram -->"


def render(text: str) -> str:
    head, sep, rest = text.partition(BEGIN)
    if not sep or END not in rest:
        raise SystemExit(f"{DOC}: markers {BEGIN!r} ... {END!r} not found")
    tail = rest.split(END, 1)[1]
    block = "```mermaid\n" + mermaid_diagram().rstrip("\n") + "\n```"
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/alarms.md is stale")
    args = ap.parse_args()
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print(f"stale: {DOC.relative_to(ROOT)} (run tools/gen_alarm_docs.py)")
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
