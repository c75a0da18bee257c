"""``bedside replay``: run a firmware build over a sensor capture and print its alarm timeline.

A capture (``bedside sil --capture FILE``; format in bedside_host.sil.capture) holds the raw
bytes the device read from its oximeter, NIBP and host ports and the keys pressed, so a
replay reproduces the operator's actions as well as the patient's signals. Each build runs
in its own process
(bedside_host.sil.replayer, BEDSIDE_FIRMWARE = the build's firmware/ directory) in virtual
time, so two builds can be compared over the same bytes. Exit 0 (compare: identical
timelines), 1 (compare: they differ), 2 (bad capture, firmware directory or settings).
A host-link capture (``bedside record --raw DIR``) holds what crossed the USB port, not the
sensor bytes: replaying it prints the timeline it recorded (no firmware build runs).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bedside_host import FIRMWARE_DIR
from bedside_host.sil.capture import Capture, CaptureError, read_capture

HELP = "replay a sensor capture through a firmware build (or two, compared) in virtual time"
COLUMNS = ("condition", "priority", "event", "value", "limit")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "capture",
        metavar="CAPTURE",
        help="capture file from `bedside sil --capture` (or `bedside record --raw`: its "
        "recorded timeline only)",
    )
    p.add_argument(
        "--firmware",
        metavar="DIR",
        help="the build to run: a firmware/ directory or a checkout containing one "
        "(default: the firmware these host tools use)",
    )
    p.add_argument(
        "--compare",
        metavar="DIR2",
        help="also run this build and print where the two alarm timelines differ",
    )
    p.add_argument(
        "--all-settings",
        action="store_true",
        help="apply every captured setting (default: only those changed from the defaults, "
        "so each build's own defaults apply)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")


class ReplayError(Exception):
    """One line for the user (exit 2)."""


def firmware_dir(text: str) -> Path:
    """The firmware/ directory named by `text` (itself, or its firmware/ subdirectory)."""
    d = Path(text).expanduser().resolve()
    for cand in (d, d / "firmware"):
        if (cand / "bedside" / "__init__.py").is_file():
            return cand
    raise ReplayError(f"{text}: no firmware core here (want DIR/bedside or DIR/firmware/bedside)")


def start_build(capture: str, fw: Path, all_settings: bool) -> subprocess.Popen[str]:
    host_tools = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, BEDSIDE_FIRMWARE=str(fw))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (host_tools, os.environ.get("PYTHONPATH", "")) if p
    )
    cmd = [sys.executable, "-m", "bedside_host.sil.replayer", capture]
    if all_settings:
        cmd.append("--all-settings")
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish_build(proc: subprocess.Popen[str], fw: Path) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        lines = [x for x in err.strip().splitlines() if x.strip()]
        raise ReplayError(f"firmware {fw}: {lines[-1] if lines else f'exit {proc.returncode}'}")
    try:
        result: dict[str, Any] = json.loads(out)
    except ValueError:
        raise ReplayError(f"firmware {fw}: the replayer printed no result") from None
    return result


def line(ev: dict[str, Any]) -> str:
    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    t = ev["t_ms"] / 1000
    kind = ev.get("kind", "alarm")
    dev = ""
    if ev.get("uptime_ms") is not None:  # a link capture: the device's own time too
        dev = f"  [boot {ev.get('boot')} +{ev['uptime_ms'] / 1000:.2f} s]"
    if kind != "alarm":  # operator actions (key, command) and device changes
        mark = "operator" if kind in ("key", "command") else "device"
        return f"{t:10.2f} s  {mark + ':':<9} {ev.get('text')}{dev}"
    return (
        f"{t:10.2f} s  {cell(ev['condition']):<20} {cell(ev['priority']):<7} "
        f"{cell(ev['event']):<10} value {cell(ev['value']):>5}  limit {cell(ev['limit']):>5}"
        + dev
    )


def rate(result: dict[str, Any]) -> float:
    """Hours of capture replayed per second of wall time."""
    hours = float(result["virtual_ms"]) / 3_600_000
    return hours / max(float(result["wall_s"]), 1e-9)


def speed(result: dict[str, Any]) -> str:
    return (
        f"replayed {result['virtual_ms'] / 1000:.1f} s of capture in {result['wall_s']:.2f} s "
        f"({rate(result):.3f} h of capture per second, {result['ticks']} ticks)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (CaptureError, ReplayError) as e:
        print(f"bedside replay: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    cap = read_capture(args.capture)  # one clear line if it is bad, before any build runs
    if cap.source == "link":
        return _link(args, cap)
    a_dir = firmware_dir(args.firmware) if args.firmware else FIRMWARE_DIR.resolve()
    b_dir = firmware_dir(args.compare) if args.compare else None
    dirs = [a_dir] if b_dir is None else [a_dir, b_dir]
    procs = [start_build(args.capture, d, args.all_settings) for d in dirs]  # both at once
    try:
        results = [finish_build(p, d) for p, d in zip(procs, dirs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    a = results[0]
    if b_dir is None:
        if args.json:
            print(json.dumps({**a, "hours_per_s": rate(a)}))
            return 0
        end = "" if cap.complete else " (no end line: the capture was cut short)"
        print(f"firmware {a['version']} in {a['firmware']}; capture {args.capture}{end}")
        if a["settings_skipped"]:
            skipped = ", ".join(a["settings_skipped"])
            print(f"settings this build does not know (ignored): {skipped}")
        for ev in a["timeline"]:
            print(line(ev))
        if not a["timeline"]:
            print("no alarm events")
        print(speed(a))
        return 0
    b = results[1]
    la = [line(ev) for ev in a["timeline"]]
    lb = [line(ev) for ev in b["timeline"]]
    diff = list(difflib.unified_diff(la, lb, f"A {a['firmware']}", f"B {b['firmware']}", n=1))
    if args.json:
        print(
            json.dumps(
                {
                    "a": {**a, "hours_per_s": rate(a)},
                    "b": {**b, "hours_per_s": rate(b)},
                    "identical": not diff,
                    "diff": diff,
                }
            )
        )
        return 1 if diff else 0
    print(f"A: firmware {a['version']} in {a['firmware']} ({len(la)} alarm events)")
    print(f"B: firmware {b['version']} in {b['firmware']} ({len(lb)} alarm events)")
    if diff:
        print("the alarm timelines differ (- only in A, + only in B):")
        for d in diff:
            print(d.rstrip("\n"))
    else:
        print("the alarm timelines are identical")
    print(f"A: {speed(a)}")
    print(f"B: {speed(b)}")
    return 1 if diff else 0


def _link(args: argparse.Namespace, cap: Capture) -> int:
    """A host-link capture: the timeline it recorded; no build can run over it."""
    from bedside_host.sil.replayer import link_timeline

    if args.firmware or args.compare:
        raise ReplayError(
            f"{args.capture}: a host-link capture (bedside record --raw) holds no sensor "
            "bytes, so no firmware build can run over it; replay a `bedside sil --capture` file"
        )
    rows = link_timeline(cap)
    if args.json:
        print(json.dumps({"source": "link", "url": cap.header.get("url"), "timeline": rows}))
        return 0
    end = "" if cap.complete else " (no end line: the capture was cut short)"
    print(f"host-link capture of {cap.header.get('url')} {args.capture}{end}")
    for ev in rows:
        print(line(ev))
    if not rows:
        print("no alarm events or operator actions")
    return 0
