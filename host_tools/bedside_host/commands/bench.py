"""``bedside bench``: run a suite of scenario files against a device and write the test record,
JUnit XML and an HTML test protocol (docs/bench.md).

Targets: ``--virtual`` (the firmware core in-process in virtual time, for CI), ``--sil``
(starts ``bedside sil`` and drives its ptys in real time), or ``--oximeter PORT --nibp PORT
--host PORT`` (a real Pico through USB-UART adapters). Exit 0 when every scenario passes, 1 when
one fails or errs, 2 on a bad option or scenario file (one line naming file, line and field).
Not a certified medical device: a verification aid.
"""

from __future__ import annotations

import argparse
import getpass
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from bedside_host.bench.protocol import write_outputs
from bedside_host.bench.runner import PortTarget, SilTarget, Target, VirtualTarget
from bedside_host.bench.scenario import ScenarioError
from bedside_host.bench.suite import load_suite, run_concurrent, run_suite
from bedside_host.bench.verdict import TestResult

HELP = "run scenario files against the firmware (virtual time, SIL) or a Pico; test protocol"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", required=True, metavar="PATH", help="a scenario file or directory")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--virtual", action="store_true", help="firmware core in virtual time")
    how.add_argument("--sil", action="store_true", help="start `bedside sil`, real time")
    p.add_argument("--oximeter", metavar="PORT", help="adapter wired to the Pico's oximeter UART")
    p.add_argument("--nibp", metavar="PORT", help="adapter wired to the Pico's NIBP UART")
    p.add_argument("--host", metavar="PORT", help="the Pico's USB host port")
    p.add_argument(
        "--keys",
        metavar="CMD",
        help="command run with the key word appended to press a device key (a jig); without"
        " it the operator is prompted (ports only)",
    )
    p.add_argument("--only", action="append", metavar="ID", help="run only these ids or tags")
    p.add_argument("--out", metavar="DIR", default="bench-out", help="output directory")
    p.add_argument("--operator", default="", help="who runs the test (default: login name)")
    p.add_argument("--dut-id", default="", help="device under test id (serial number)")
    p.add_argument("--workdir", metavar="DIR", help="SIL logs and state per scenario")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="--sil/--virtual: up to N scenarios at once, each in its own process (default 1)",
    )
    p.add_argument("--check", action="store_true", help="only validate the scenario files")
    p.add_argument("--pdf", action="store_true", help="also write protocol.pdf (matplotlib)")


def _fail(msg: str) -> int:
    print(f"bedside bench: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    ports = [args.oximeter, args.nibp, args.host]
    if any(ports) and (args.virtual or args.sil):
        return _fail("--oximeter/--nibp/--host go with neither --virtual nor --sil")
    if any(ports) and not all(ports):
        return _fail("a real device needs all three of --oximeter, --nibp and --host")
    if args.jobs < 1 or (args.jobs > 1 and not (args.sil or args.virtual)):
        return _fail("--jobs N (N >= 1) goes with --sil or --virtual (not a real device)")
    if not args.check and not (args.virtual or args.sil or all(ports)):
        return _fail("choose --virtual, --sil or --oximeter/--nibp/--host")
    try:
        scenarios = load_suite(Path(args.suite), args.only)
    except ScenarioError as e:
        return _fail(str(e))
    if args.check:
        print(f"{len(scenarios)} scenario files valid")
        return 0
    make: Callable[[], Target]
    if args.virtual:
        make = VirtualTarget
    elif args.sil:
        workdir = Path(args.workdir) if args.workdir else None
        make = lambda: SilTarget(workdir)  # noqa: E731
    else:
        keys = shlex.split(args.keys) if args.keys else None
        make = lambda: PortTarget(  # noqa: E731
            args.oximeter, args.nibp, args.host, keys, args.dut_id
        )

    def progress(r: TestResult) -> None:
        bad = [p.name for p in r.phases if p.outcome == "FAIL"]
        why = f"  failed: {'; '.join(bad)}" if bad else (f"  {r.error}" if r.error else "")
        print(f"{r.outcome:5} {r.id:40} {r.wall_s:6.1f} s{why}", flush=True)

    operator = args.operator or getpass.getuser()
    if (args.sil or args.virtual) and args.jobs > 1:
        rec = run_concurrent(
            scenarios,
            mode="sil" if args.sil else "virtual",
            jobs=args.jobs,
            workdir=Path(args.workdir) if args.workdir else None,
            suite=str(args.suite),
            operator=operator,
            progress=progress,
        )
    else:
        rec = run_suite(
            scenarios,
            make,
            suite=str(args.suite),
            operator=operator,
            dut_id=args.dut_id,
            progress=progress,
        )
    paths = write_outputs(rec, Path(args.out))
    if args.pdf:
        from bedside_host.bench.protocol import write_pdf

        paths["pdf"] = Path(args.out) / "protocol.pdf"
        write_pdf(rec, paths["pdf"])
    n = len(rec.results)
    passed = sum(r.outcome == "PASS" for r in rec.results)
    print(
        f"{rec.outcome}: {passed}/{n} scenarios passed; protocol {paths['protocol']}, "
        f"JUnit {paths['junit']}, record {paths['record']}"
    )
    return 0 if rec.outcome == "PASS" else 1
