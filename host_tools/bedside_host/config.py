"""Who is operating, and which port by default: command line, environment, config file.

Order (the first that is set wins):
  operator: ``--operator NAME``, ``$BEDSIDE_OPERATOR``, ``operator = "NAME"`` in the config file
  port:     ``--port PORT``, ``$BEDSIDE_PORT``, ``port = "PORT"`` in the config file, else the one
            likely Bedside device that ``bedside ports`` finds
The config file is ``$XDG_CONFIG_HOME/bedside/config.toml`` (default ``~/.config/bedside/``).
The operator name goes with each change to the device as ``by`` (at most 32 characters).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

OPERATOR_MAX = 32  # docs/protocol.md: `by` is at most 32 characters


class ConfigError(ValueError):
    """A bad config file or operator name (a usage error: exit 2)."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bedside" / "config.toml"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None


def _check_operator(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"the operator name from {where} is empty or not text")
    name: str = raw.strip()
    if len(name) > OPERATOR_MAX:
        raise ConfigError(
            f"the operator name from {where} is longer than {OPERATOR_MAX} characters"
        )
    if not name.isprintable():
        raise ConfigError(f"the operator name from {where} has control characters")
    return name


def operator_name(cli: str | None) -> str | None:
    if cli is not None:
        return _check_operator(cli, "--operator")
    env = os.environ.get("BEDSIDE_OPERATOR")
    if env:
        return _check_operator(env, "$BEDSIDE_OPERATOR")
    value = load_config().get("operator")
    if value is None:
        return None
    return _check_operator(value, str(config_path()))


def default_port() -> str | None:
    """$BEDSIDE_PORT, else the config file's `port` (None: neither is set)."""
    env = os.environ.get("BEDSIDE_PORT")
    if env:
        return env
    value = load_config().get("port")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"port in {config_path()} must be a path or URL")
    return value
