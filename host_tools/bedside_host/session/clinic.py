"""Clinic settings of the host session workflow: thresholds with defaults, from the host config.

Every value is a clinic setting with the default the reference gives (docs/session.md, host
section); none is a constant of the code. They come from the ``[session]`` table of the host
config file (``bedside_host.config``), each checked against its range; an unknown key or a bad
value is a ConfigError (exit 2), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bedside_host.config import ConfigError

# name -> (low, high) for the int settings; bools are listed in _BOOLS; strings in _CHOICES
_RANGES: dict[str, tuple[int, int]] = {
    "screen_sys_max": (90, 220),
    "screen_dia_max": (50, 140),
    "aldrete_min": (0, 10),
    "padss_min": (0, 10),
    "no_driving_h": (1, 72),
    "deep_moaas": (0, 4),
}
_BOOLS = ("aldrete_no_zero", "padss_no_zero")
_CHOICES: dict[str, tuple[str, ...]] = {"moaas_variant": ("A", "B")}


@dataclass(frozen=True)
class ClinicSettings:
    """The host's clinic settings for infusion sessions (defaults: shared reference session.md)."""

    screen_sys_max: int = 140  # resting BP above this (systolic or diastolic) is a finding
    screen_dia_max: int = 90
    aldrete_min: int = 9  # modified Aldrete pass: total >= this ...
    aldrete_no_zero: bool = True  # ... and no item scored 0
    padss_min: int = 9  # PADSS pass: total >= this (surgical bleeding N/A, scored 2 by rule)
    padss_no_zero: bool = False
    no_driving_h: int = 24  # the no-driving advice given at close
    moaas_variant: str = "A"  # the MOAA/S variant the clinic uses (A: trapezius squeeze)
    deep_moaas: int = 2  # a MOAA/S at or below this is shown as deep sedation

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "[session]") -> ClinicSettings:
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in names:
                raise ConfigError(f"{where}: unknown clinic setting {key!r}")
            if key in _BOOLS:
                if not isinstance(value, bool):
                    raise ConfigError(f"{where}: {key} must be true or false")
            elif key in _CHOICES:
                if value not in _CHOICES[key]:
                    raise ConfigError(f"{where}: {key} must be one of {', '.join(_CHOICES[key])}")
            else:
                low, high = _RANGES[key]
                bad = isinstance(value, bool) or not isinstance(value, int)
                if bad or not low <= value <= high:
                    raise ConfigError(f"{where}: {key} must be a whole number {low}..{high}")
            values[key] = value
        return cls(**values)


def load_clinic() -> ClinicSettings:
    """The ``[session]`` table of the host config file (defaults where it has none)."""
    from bedside_host.config import config_path, load_config

    raw = load_config().get("session", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path()}: [session] must be a table")
    return ClinicSettings.from_mapping(raw, f"{config_path()} [session]")
