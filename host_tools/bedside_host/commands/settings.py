"""``bedside settings get|set|diff|export|import``: the device's settings over the host link.

Every value is checked against the firmware's settings table (``firmware/bedside/settings.py``,
the one source of truth: ranges, choices, who may change it) before anything is sent; the
device checks again (and its cross-limit rules) and its refusal is shown as it gave it.
Changes carry the operator's name (``by``). ``import`` validates the whole file first, refuses
it if any value is invalid, then sets only the values that differ, one line per change.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from bedside_host import ensure_firmware_on_path
from bedside_host.commands._device import (
    Refused,
    UsageError,
    add_operator,
    add_port,
    open_link,
    run_guarded,
)
from bedside_host.link.messages import LinkError

ensure_firmware_on_path()

from bedside import settings as fw  # noqa: E402

HELP = "read, change, compare, export and import the device's settings"
FORMAT = "bedside-settings"
FORMAT_VERSION = 1
SET_TIMEOUT_S = 3.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = sub.add_parser("get", help="show settings (all, or the names given)")
    g.add_argument("names", nargs="*", metavar="NAME")
    g.add_argument("--json", action="store_true", help="one JSON object of name: value")
    s = sub.add_parser("set", help="change settings: NAME=VALUE ...")
    s.add_argument("assignments", nargs="+", metavar="NAME=VALUE")
    d = sub.add_parser("diff", help="settings that differ from the defaults (or from a file)")
    d.add_argument("--against", metavar="FILE", help="a settings file (from export)")
    d.add_argument("--json", action="store_true", help="one JSON line per difference")
    e = sub.add_parser("export", help="write every setting to a JSON file")
    e.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    i = sub.add_parser("import", help="set the values of a settings file that differ")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--dry-run", action="store_true", help="show the changes, change nothing")
    i.add_argument(
        "--operator-settings-only",
        action="store_true",
        help="skip organisation settings in the file instead of refusing it",
    )
    for sp in (g, s, d, e, i):
        add_port(sp)
    for sp in (s, i):
        add_operator(sp)


# --- the firmware table ---------------------------------------------------------------
def is_org(name: str) -> bool:
    return bool(fw.SPEC[name][4] > fw.OPERATOR)


def describe(name: str) -> str:
    _default, low, high, unit, _access = fw.SPEC[name]
    rng = ", ".join(str(c) for c in low) if high is None else f"{low}..{high}"
    return f"{rng} {unit}".strip()


def parse_value(name: str, text: str) -> Any:
    """A command-line value as the table's type (UsageError if unknown or invalid)."""
    if name not in fw.SPEC:
        raise UsageError(f"unknown setting {name!r} (see `bedside settings get`)")
    if fw.is_choice(name):
        choices = fw.SPEC[name][1]
        for c in choices:
            if str(c) == text:
                return c
        raise UsageError(f"{name} must be one of {', '.join(str(c) for c in choices)}")
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number ({describe(name)})") from None
    err = fw.check(name, value)
    if err:
        raise UsageError(err)
    return value


def validate(values: Any, where: str) -> dict[str, Any]:
    """Every entry must be a known setting with a valid value; all problems in one error."""
    if not isinstance(values, dict):
        raise UsageError(f"{where}: settings must be a JSON object of name: value")
    problems = []
    for name, value in values.items():
        if name not in fw.SPEC:
            problems.append(f"unknown setting {name!r}")
            continue
        err = fw.check(name, value)
        if err:
            problems.append(f"{err} (got {json.dumps(value)})")
    if problems:
        raise UsageError(f"{where} refused, nothing changed: " + "; ".join(problems))
    return dict(values)


def load_file(path: str) -> dict[str, Any]:
    """A settings file: the export format, or a plain object of name: value."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeError) as e:
        raise UsageError(f"{path} is not valid JSON: {e}") from None
    if isinstance(data, dict) and "format" in data:
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise UsageError(
                f"{path}: not a {FORMAT} file of version {FORMAT_VERSION} "
                f"(format {data.get('format')!r}, version {data.get('version')!r})"
            )
        data = data.get("settings")
    return validate(data, path)


def _device_settings(link: Any) -> dict[str, Any]:
    reply = link.request("get_settings")
    values = reply.get("settings")
    if not isinstance(values, dict):
        raise Refused("the device's get_settings reply has no settings")
    return values


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v)


# --- actions --------------------------------------------------------------------------
def _get(args: argparse.Namespace, link: Any) -> int:
    values = _device_settings(link)
    for n in args.names:
        if n not in values:
            raise UsageError(f"unknown setting {n!r}")
    names = args.names or sorted(values)
    if args.json:
        print(json.dumps({n: values[n] for n in names}))
        return 0
    for n in names:
        v = values[n]
        known = n in fw.SPEC
        default = fw.SPEC[n][0] if known else None
        mark = "*" if known and v != default else " "
        who = ("organisation" if is_org(n) else "operator") if known else "?"
        unit = fw.SPEC[n][3] if known else ""
        print(f"{mark} {n:<24} {_show(v):>9} {unit:<5} default {_show(default):<9} {who}")
    print("* differs from the default")
    return 0


def _apply(link: Any, changes: dict[str, Any], before: dict[str, Any]) -> int:
    """Set each change, retrying the refused ones after the others (two limits that must
    stay in order may need the other one first). Exit 1 if any stays refused."""
    pending = dict(changes)
    errors: dict[str, str] = {}
    while pending:
        progress = False
        for name, value in list(pending.items()):
            try:
                reply = link.request("set", SET_TIMEOUT_S, name=name, value=value)
            except LinkError as e:
                errors[name] = e.error
                continue
            del pending[name]
            errors.pop(name, None)
            progress = True
            old = reply.get("old", before.get(name))
            if reply.get("changed", True):
                print(f"{name}: {_show(old)} -> {_show(value)}")
            else:
                print(f"{name}: already {_show(value)}")
        if not progress:
            break
    if pending:
        if len(changes) == 1:
            name = next(iter(pending))
            raise Refused(f"the device refused {name}={_show(pending[name])}: {errors[name]}")
        for name in pending:
            print(f"bedside settings: {name} not set: {errors[name]}", file=sys.stderr)
        done = len(changes) - len(pending)
        raise Refused(f"the device refused {len(pending)} of {len(changes)} changes ({done} set)")
    return 0


def parse_assignments(items: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for a in items:
        name, eq, text = a.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"expected NAME=VALUE, got {a!r}")
        changes[name.strip()] = parse_value(name.strip(), text.strip())
    return changes


def _set(args: argparse.Namespace, link: Any) -> int:
    before = _device_settings(link)
    return _apply(link, args.changes, before)


def _diff(args: argparse.Namespace, link: Any) -> int:
    other = load_file(args.against) if args.against else fw.defaults()
    label = "file" if args.against else "default"
    values = _device_settings(link)
    rows = [(n, values.get(n), other[n]) for n in sorted(other) if values.get(n) != other[n]]
    if args.json:
        for n, v, o in rows:
            print(json.dumps({"name": n, "device": v, label: o}))
        return 0
    for n, v, o in rows:
        print(f"{n:<24} device {_show(v):<9} {label} {_show(o)}")
    if not rows:
        print(f"no differences from the {'file' if args.against else 'defaults'}")
    return 0


def _export(args: argparse.Namespace, link: Any) -> int:
    values = _device_settings(link)
    hello = link.hello or {}
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": {"port": link.url, "fw": hello.get("fw"), "boot": link.boot},
        "settings": {n: values[n] for n in sorted(values)},
    }
    text = json.dumps(doc, indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {args.output}: {e.strerror or e}") from None
        print(f"{len(values)} settings written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _import(args: argparse.Namespace, link: Any) -> int:
    wanted = load_file(args.file)
    values = _device_settings(link)
    changes = {n: v for n, v in wanted.items() if values.get(n) != v}
    org = sorted(n for n in changes if is_org(n))
    if org and args.operator_settings_only:
        for n in org:
            print(f"{n}: skipped (organisation setting; device {_show(values.get(n))})")
            del changes[n]
    elif org:
        detail = ", ".join(
            f"{n} (device {_show(values.get(n))}, file {_show(wanted[n])})" for n in org
        )
        raise UsageError(
            f"{args.file} refused, nothing changed: it changes organisation settings that only "
            f"the responsible organisation may set: {detail} "
            "(--operator-settings-only skips them)"
        )
    if not changes:
        print("nothing to change: the device already has the file's values")
        return 0
    if args.dry_run:
        for n, v in sorted(changes.items()):
            print(f"{n}: {_show(values.get(n))} -> {_show(v)} (dry run)")
        return 0
    return _apply(link, dict(sorted(changes.items())), values)


_ACTIONS = {"get": _get, "set": _set, "diff": _diff, "export": _export, "import": _import}


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        # bad input is refused before the device is opened
        if args.action == "import":
            load_file(args.file)
        elif args.action == "set":
            args.changes = parse_assignments(args.assignments)
        elif args.action == "diff" and args.against:
            load_file(args.against)
        link = open_link(args)
        try:
            return _ACTIONS[args.action](args, link)
        finally:
            link.close()

    return run_guarded(f"bedside settings {args.action}", body)
