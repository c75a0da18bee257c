"""Input checks shared by the session services: one clear message per bad value."""

from __future__ import annotations

from typing import Any

NAME_MAX = 32  # the protocol's limit for names (by, patient, escort)


class InvalidInput(ValueError):
    """Bad input from the nurse or a caller: nothing was sent or recorded."""


def check_text(what: str, value: Any, limit: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    v = value.strip()
    if not v and not allow_empty:
        raise InvalidInput(f"{what} must not be empty")
    if len(v) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if not all(c.isprintable() or c in "\n\t" for c in v):
        raise InvalidInput(f"{what} has control characters")
    return v


def check_name(what: str, value: Any, limit: int = NAME_MAX) -> str:
    v = check_text(what, value, limit)
    if not v.isprintable():
        raise InvalidInput(f"{what} has control characters")
    return v


def check_int(what: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number {low}..{high}")
    return value
