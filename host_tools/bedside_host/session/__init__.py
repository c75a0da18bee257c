"""Infusion sessions on the host (services layer: link -> store -> services -> interfaces).

The CLI (``bedside session``) and the web station call these; nothing here prints or parses
command lines. See docs/session.md (host section) for the rules and the records. Names are
loaded on first use, so a command's ``--help`` can read the forms (screening items, score
tables) without importing ``transitions``, the link or the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bedside_host.session.clinic import ClinicSettings, load_clinic
    from bedside_host.session.rules import PHASES, HostModel
    from bedside_host.session.scores import ALDRETE, PADSS, Check, Hint, aldrete, hints, padss
    from bedside_host.session.screening import CONTRAINDICATIONS, Screening, evaluate
    from bedside_host.session.service import (
        Criterion,
        SessionService,
        SessionView,
        StepResult,
        view,
    )
    from bedside_host.session.values import InvalidInput

_WHERE = {
    "ClinicSettings": "clinic",
    "load_clinic": "clinic",
    "PHASES": "rules",
    "HostModel": "rules",
    "ALDRETE": "scores",
    "PADSS": "scores",
    "Check": "scores",
    "aldrete": "scores",
    "Hint": "scores",
    "hints": "scores",
    "padss": "scores",
    "CONTRAINDICATIONS": "screening",
    "Screening": "screening",
    "evaluate": "screening",
    "Criterion": "service",
    "SessionService": "service",
    "SessionView": "service",
    "StepResult": "service",
    "view": "service",
    "InvalidInput": "values",
}
__all__ = [
    "ALDRETE",
    "CONTRAINDICATIONS",
    "PADSS",
    "PHASES",
    "Check",
    "ClinicSettings",
    "Criterion",
    "Hint",
    "HostModel",
    "InvalidInput",
    "Screening",
    "SessionService",
    "SessionView",
    "StepResult",
    "aldrete",
    "evaluate",
    "hints",
    "load_clinic",
    "padss",
    "view",
]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bedside_host.session.{mod}"), name)
