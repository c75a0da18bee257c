"""Generate docs from the firmware's single sources of truth: docs/settings.md from
bedside.settings (SPEC, INVARIANTS, SCHEMA, RENAMED), bedside.settingsfile (MIGRATIONS) and
bedside.settings_help (HELP). `--check` exits 1 if a committed file differs
(tests/test_docs.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))

from bedside import settings, settings_help, settingsfile  # noqa: E402


def settings_md() -> str:
    out = [
        "# Settings",
        "",
        "Generated from `firmware/bedside/settings.py` (meanings: `settings_help.py`) by",
        "`tools/gen_docs.py`; do not edit by hand. **Defaults are starting points that a",
        "clinic must review** before use; they are not clinical advice. *Operator* settings may",
        "be changed at the chair (over the host link, within the range); *organisation*",
        "settings only by the responsible organisation's configuration (for the SIL:",
        "`bedside sil --set NAME=VALUE`).",
        "",
        "| setting | default | range or choices | unit | who | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name in settings.NAMES:
        default, low, high, unit, access = settings.SPEC[name]
        text = settings_help.HELP[name]
        rng = ", ".join(str(c) for c in low) if high is None else f"{low} .. {high}"
        who = "operator" if access == settings.OPERATOR else "organisation"
        out.append(f"| `{name}` | {default} | {rng} | {unit} | {who} | {text} |")
    out += [
        "",
        "## Limits checked against each other",
        "",
        "From `INVARIANTS`. Each row must hold at all times: a change that would break one is",
        "refused with an error naming both settings, and nothing changes (change both at once",
        "with `Settings.set_many`). A stored file that breaks one loads with the offending",
        "setting back at its default (the one that differs from its default; if both do, the",
        "upper one first, then the lower if still needed), reported as a problem.",
        "",
        "| setting | must be below | by at least | defaults |",
        "|---|---|---|---|",
    ]
    for low, high, gap in settings.INVARIANTS:
        d_low, d_high = settings.SPEC[low][0], settings.SPEC[high][0]
        out.append(f"| `{low}` | `{high}` | {gap} | {d_low} < {d_high} |")
    renamed = (
        ", ".join(f"`{old}` -> `{new}`" for old, new in sorted(settings.RENAMED.items()))
        or "none so far"
    )
    out += [
        "",
        "## Stored settings",
        "",
        f"The device keeps its settings in `{settings.SETTINGS_FILE}` on flash, written whole",
        "after every accepted change (a set to the current value writes nothing). The file is",
        "one line: the CRC-32 (IEEE, as zlib) of the body as 8 hex digits, a space, the body",
        f'`{{"schema": {settings.SCHEMA}, "values": {{name: value}}}}` and a newline. Schema 1 is',
        "the plain JSON `{name: value}` without a checksum that the first releases wrote.",
        "",
        "At boot the file is read once:",
        "",
        "- no file (first boot): the defaults, no alarm;",
        "- unreadable (flash error, not JSON, not a settings object, too large) or a checksum",
        "  mismatch: nothing of it is trusted; the defaults, `SETTINGS_DEFAULTED`;",
        "- otherwise an older schema is migrated (table below), retired names are renamed",
        f"  ({renamed}), and every good value is kept. Only an offending value gets its default:",
        "  an unknown setting is dropped, one out of range or of the wrong type, or one missing",
        "  from the file (one added by a newer schema is filled by its migration, not missing),",
        "  and one breaking a row above. Each is a readable problem (hello",
        "  `settings_problems`) and raises `SETTINGS_DEFAULTED`;",
        "- a file from a newer firmware (after a downgrade) keeps what this firmware knows and",
        "  reports the rest.",
        "",
        "`SETTINGS_DEFAULTED` clears once valid settings are saved (any accepted change) or an",
        "operator reset acknowledges it. A clean file of an older schema is rewritten once in",
        "the current format.",
        "",
        "| from schema | to | migration |",
        "|---|---|---|",
    ]
    for n in sorted(settingsfile.MIGRATIONS):
        doc = " ".join((settingsfile.MIGRATIONS[n].__doc__ or "").split())
        out.append(f"| {n} | {n + 1} | {doc} |")
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
