"""``bedside report``: one self-contained HTML page for a recorded session (PDF with --pdf).

Trend plots (SpO2, pulse, NIBP) with alarms, events and link gaps on one time axis; the alarm
table with durations and acknowledgements; setting changes with who; link gaps. Images are
embedded, so the page can be mailed or archived as one file. Exit 0 on success, 2 on a missing
file, an unknown session or a bad option. Not a certified medical device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bedside_host.commands._records import UsageError, find_session, open_store, session_id

HELP = "session report: one self-contained HTML page with trend plots and alarm tables"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, type=Path, metavar="FILE", help="record file")
    p.add_argument("--session", required=True, type=session_id, metavar="ID", help="session")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="HTML file")
    p.add_argument(
        "--pdf", action="store_true", help="also write a PDF beside it (same name, .pdf)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.db)
        try:
            session = find_session(store, args.session)
            assert session is not None
            from bedside_host.report import write_report  # matplotlib: only when needed

            pdf = args.output.with_suffix(".pdf") if args.pdf else None
            write_report(store, session, args.output, pdf)
        finally:
            store.close()
    except UsageError as e:
        print(f"bedside report: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"bedside report: error: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"report written to {args.output}" + (f" and {pdf}" if pdf else ""))
    return 0
