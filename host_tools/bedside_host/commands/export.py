"""``bedside export``: a record file (or one session of it) as JSON, CSV tables or ``.vital``.

``json``: one document with every device message (verbatim line, parsed message, device, boot,
seq, receive time). ``csv``: vitals, nibp, alarms, events, settings and link gaps, one file
each, into a directory or a ``.zip``. ``vital``: VitalDB's file format (Vital Recorder, the
``vitaldb`` Python package). Exit 0 on success, 2 on a missing file, an unknown session or a
bad option. Not a certified medical device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bedside_host.commands._records import UsageError, find_session, open_store, session_id
from bedside_host.export import FORMATS, export

HELP = "export recorded sessions as JSON, CSV tables or VitalDB .vital files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, type=Path, metavar="FILE", help="record file")
    p.add_argument("--session", type=session_id, metavar="ID", help="one session (default: all)")
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help="output file (json, vital), directory or .zip (csv)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.db)
        try:
            session = find_session(store, args.session)
            if args.format == "vital" and session is None and len(store.sessions()) > 1:
                print(
                    "bedside export: note: all sessions in one .vital file; "
                    "--session ID exports one",
                    file=sys.stderr,
                )
            print(export(store, args.format, args.output, session))
        finally:
            store.close()
    except UsageError as e:
        print(f"bedside export: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"bedside export: error: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 2
    return 0
