"""What the device commands share: --port and --operator, opening the link, exit codes.

Exit codes: 0 done; 1 the device refused (its reason is printed) or did not answer; 2 bad
input (options, files, values, a port that cannot be opened); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from bedside_host.config import ConfigError, default_port, operator_name
from bedside_host.link.messages import LinkDown, LinkError, LinkTimeout

if TYPE_CHECKING:
    from bedside_host.link.client import DeviceLink

PORT_HELP = (
    "the device's port: a path (/dev/ttyACM0, a pty) or a pyserial URL (socket://HOST:PORT, "
    "rfc2217://..., loop://); default $BEDSIDE_PORT, the config file's port, or the one "
    "Bedside device `bedside ports` finds"
)
OPERATOR_HELP = (
    "your name, sent with each change as `by` (default $BEDSIDE_OPERATOR, then operator = "
    '"..." in ~/.config/bedside/config.toml)'
)
CONNECT_TIMEOUT_S = 5.0


class UsageError(Exception):
    """Bad input: one line on stderr, exit 2."""


class Refused(Exception):
    """The device refused or could not do it: one line on stderr, exit 1."""


def add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", metavar="PORT", help=PORT_HELP)


def add_operator(p: argparse.ArgumentParser) -> None:
    p.add_argument("--operator", metavar="NAME", help=OPERATOR_HELP)


def resolve_port(cli: str | None) -> str:
    if cli:
        return cli
    port = default_port()
    if port:
        return port
    from bedside_host.link.ports import candidates

    likely = [p for p in candidates() if p.likely_bedside]
    if len(likely) == 1:
        return likely[0].device
    if not likely:
        raise UsageError("no --port given and no Bedside device found (see `bedside ports`)")
    names = ", ".join(p.device for p in likely)
    raise UsageError(f"no --port given and several possible devices: {names}")


def open_link(args: argparse.Namespace, *, catch_up: bool = False) -> DeviceLink:
    """Open the port and wait for the device's hello (UsageError, Refused on failure)."""
    from bedside_host.link.client import DeviceLink

    port = resolve_port(getattr(args, "port", None))
    operator = operator_name(getattr(args, "operator", None))
    link = DeviceLink(port, operator=operator, catch_up=catch_up)
    link.poll()
    if link.state == "disconnected":
        link.close()
        raise UsageError(link.last_error or f"cannot open {port}")
    if not link.wait_live(CONNECT_TIMEOUT_S):
        why = link.last_error if link.state == "disconnected" else "no hello"
        link.close()
        raise Refused(
            f"no answer from a Bedside device on {port} within {CONNECT_TIMEOUT_S:g} s ({why})"
        )
    return link


def run_guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; map errors to one line on stderr and the exit code."""
    try:
        return body()
    except (UsageError, ConfigError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except LinkError as e:
        print(f"{prog}: the device refused {e.cmd}: {e.error}", file=sys.stderr)
        return 1
    except (Refused, LinkDown, LinkTimeout) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
