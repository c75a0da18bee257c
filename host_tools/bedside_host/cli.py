"""The ``bedside`` command: a table of subcommands, each in its own module (mpremote style).

The table below is static: ``bedside --help`` lists it without importing any command module
(nor rich, nor pyserial); only the chosen command's module is imported. Each module in
``bedside_host.commands`` exposes ``HELP`` (the same line as here), ``add_arguments(parser)``
and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence

# command name -> (module in bedside_host.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sil": (
        "sil",
        "run the firmware core in software-in-the-loop (ptys, annunciator log, stdin buttons)",
    ),
    "replay": (
        "replay",
        "replay a sensor capture through a firmware build (or two, compared) in virtual time",
    ),
    "simulate": (
        "simulate",
        "simulate the pulse oximeter and SunTech NIBP module on serial ports (bench testing)",
    ),
    "bench": (
        "bench",
        "run scenario files against the firmware (virtual time, SIL) or a Pico; test protocol",
    ),
    "monitor": (
        "monitor",
        "live view of one device: vitals, alarm state with priority colours, link health",
    ),
    "demo": (
        "demo",
        "run the SIL firmware against a simulated patient with the live monitor (make demo)",
    ),
    "ports": ("ports", "list serial ports and mark the ones likely to be a Bedside device"),
    "settings": ("settings", "read, change, compare, export and import the device's settings"),
    "log": ("log", "read the device's flash alarm log (or event log), every page"),
    "nibp": ("nibp", "start or stop a blood-pressure measurement on the device"),
    "provision": (
        "provision",
        "give the device its command key (made here, stored on the device and this host)",
    ),
    "audio-off": (
        "audio_off",
        "AUDIO OFF while this runs (a renewed lease; only if the organisation allows it)",
    ),
    "session": (
        "session",
        "infusion session steps on the device (open, screen, baseline, ..., close), recorded",
    ),
    "record": (
        "record",
        "record devices into a SQLite record file (every message once, gaps explicit)",
    ),
    "gateway": (
        "gateway",
        "publish one chair's device to an MQTT broker (outbox: no alarm event lost)",
    ),
    "hl7": (
        "hl7",
        "send IHE PCD-01/PCD-04 HL7 messages over MLLP from MQTT or a record file",
    ),
    "station": (
        "station",
        "central station: every chair (ports, MQTT) on one page in the browser, recorded, HL7",
    ),
    "export": (
        "export",
        "export recorded sessions as JSON, CSV tables or VitalDB .vital files",
    ),
    "report": (
        "report",
        "session report: one self-contained HTML page with trend plots and alarm tables",
    ),
    "flash": (
        "flash",
        "compile the firmware to .mpy and install it on a Pico in maintenance mode (mpremote)",
    ),
}


def versions() -> str:
    """The host tools' version and the firmware's (from the firmware tree in use)."""
    from bedside_host import FIRMWARE_DIR, __version__
    from bedside_host.link.messages import PROTOCOL_VERSION

    try:
        from bedside import VERSION as fw
        from bedside.hostlink import PROTOCOL_VERSION as fw_protocol

        firmware = f"firmware {fw} (host-link protocol {fw_protocol}) in {FIRMWARE_DIR}"
    except ImportError as e:
        firmware = f"firmware: not found ({e})"
    return f"bedside host tools {__version__} (host-link protocol {PROTOCOL_VERSION})\n{firmware}"


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *a: object, **k: object) -> None:
        print(versions())
        parser.exit()


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser; `load` names the commands whose options are added (None: all of them)."""
    wanted = set(COMMANDS) if load is None else set(load)
    parser = argparse.ArgumentParser(
        prog="bedside",
        description="Bedside alarm controller host tools (not a certified medical device).",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (modname, help_line) in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if name in wanted:
            mod = importlib.import_module(f"bedside_host.commands.{modname}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    # the top-level parser has no option with a value: the first word is the command
    chosen = next((a for a in args_in if not a.startswith("-")), None)
    parser = build_parser([chosen] if chosen in COMMANDS else [])
    args = parser.parse_args(args_in)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `bedside monitor --json | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
