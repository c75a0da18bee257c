"""Generate docs from the firmware's single sources of truth: docs/settings.md from
bedside.settings.SPEC. `--check` exits 1 if a committed file differs (tests/test_docs.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))

from bedside import settings  # noqa: E402


def settings_md() -> str:
    out = [
        "# Settings",
        "",
        "Generated from `firmware/bedside/settings.py` (`SPEC`) by `tools/gen_docs.py`; do",
        "not edit by hand. **Defaults are starting points that a clinic must review** before",
        "use; they are not clinical advice. *Operator* settings may be changed at the chair",
        "(over the host link, within the range); *organisation* settings only by the",
        "responsible organisation's configuration (for the SIL: `bedside sil --set NAME=VALUE`).",
        "",
        "| setting | default | range or choices | unit | who | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name in settings.NAMES:
        default, low, high, unit, access, text = settings.SPEC[name]
        rng = ", ".join(str(c) for c in low) if high is None else f"{low} .. {high}"
        who = "operator" if access == settings.OPERATOR else "organisation"
        out.append(f"| `{name}` | {default} | {rng} | {unit} | {who} | {text} |")
    return "\n".join(out) + "\n"


FILES = {ROOT / "docs" / "settings.md": settings_md}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    stale = []
    for path, make in FILES.items():
        text = make()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
    for path in stale:
        print(f"stale: {path.relative_to(ROOT)} (run: python tools/gen_docs.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
