"""The host's model of an infusion session: a ``transitions`` machine from the host's own
statement of the rules (docs/session.md, "Host model"), not from the firmware's table.

The host uses it twice: before sending a step (is this op allowed in this phase, with what the
host knows: screening passed, baseline accepted, discharge scores passing, escort recorded?)
and after the device answered (did the device go where the rules say?). The device owns the
phase: the model is always set from the device's reported phase before it is asked, and a
disagreement between the two is reported and recorded, never resolved by the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transitions import Machine, MachineError

PHASES = ("idle", "screening", "baseline", "infusion", "recovery", "discharge_ready", "closed")
# The ops a host can ask for (SESSION_PROTOCOL op names; baseline split by action).
OPS = (
    "open",
    "screened",
    "cancel",
    "baseline_repeat",
    "baseline_accept",
    "start",
    "dose",
    "o2",
    "check",
    "stop",
    "discharge",
    "close",
)
_LIVE = ["screening", "baseline", "infusion", "recovery", "discharge_ready"]

# The rules, one row per transition (tests/test_session_model.py has a test per row).
RULES: list[dict[str, Any]] = [
    {"trigger": "open", "source": ["idle", "closed"], "dest": "screening"},
    {"trigger": "screened", "source": "screening", "dest": "baseline",
     "conditions": "screening_passed"},
    {"trigger": "cancel", "source": ["screening", "baseline"], "dest": "closed"},
    {"trigger": "baseline_repeat", "source": "baseline", "dest": None},
    {"trigger": "baseline_accept", "source": "baseline", "dest": None},
    {"trigger": "start", "source": "baseline", "dest": "infusion",
     "conditions": "baseline_accepted"},
    {"trigger": "dose", "source": "infusion", "dest": None},
    {"trigger": "o2", "source": _LIVE, "dest": None},
    {"trigger": "check", "source": ["infusion", "recovery", "discharge_ready"], "dest": None},
    {"trigger": "stop", "source": "infusion", "dest": "recovery"},
    {"trigger": "discharge", "source": "recovery", "dest": "discharge_ready",
     "conditions": "scores_pass"},
    {"trigger": "close", "source": "discharge_ready", "dest": "closed",
     "conditions": "escort_recorded"},
]  # fmt: skip

# Why a condition refuses, in the words the nurse sees.
_WHY = {
    "screening_passed": "screening is not complete: every item answered, any finding "
    "overridden by a named clinician with a reason",
    "baseline_accepted": "the baseline has not been accepted yet (baseline accept)",
    "scores_pass": "the modified Aldrete and PADSS scores do not meet the clinic's minimum",
    "escort_recorded": "an escort (name, relationship) and the no-driving advice must be "
    "recorded",
}


@dataclass
class Facts:
    """What the host knows that the conditions read (set before asking)."""

    screening_passed: bool = False
    baseline_accepted: bool = False
    scores_pass: bool = False
    escort_recorded: bool = False


class HostModel:
    """One session's phase under the host's rules. ``state`` is the phase."""

    state: str

    def __init__(self, phase: str = "idle", facts: Facts | None = None) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self.facts = facts or Facts()
        self.machine = Machine(
            model=self,
            states=list(PHASES),
            transitions=RULES,
            initial=phase,
            auto_transitions=False,
        )

    # conditions (names used in RULES)
    def screening_passed(self) -> bool:
        return self.facts.screening_passed

    def baseline_accepted(self) -> bool:
        return self.facts.baseline_accepted

    def scores_pass(self) -> bool:
        return self.facts.scores_pass

    def escort_recorded(self) -> bool:
        return self.facts.escort_recorded

    def set_phase(self, phase: str) -> None:
        """Follow the device (it owns the phase)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self.machine.set_state(phase)

    def allowed_in(self, op: str) -> list[str]:
        """The phases in which `op` is allowed at all."""
        out: list[str] = []
        for row in RULES:
            if row["trigger"] == op:
                src = row["source"]
                out.extend([src] if isinstance(src, str) else src)
        return out

    def refusal(self, op: str) -> str | None:
        """None if `op` is allowed now, else why not (readable)."""
        if op not in OPS:
            return f"unknown session step {op!r}"
        if self.state not in self.allowed_in(op):
            where = ", ".join(self.allowed_in(op))
            return f"{op} is not allowed in phase {self.state} (only in {where})"
        if bool(getattr(self, f"may_{op}")()):
            return None
        for row in RULES:
            cond = row.get("conditions")
            if row["trigger"] == op and cond and not getattr(self, cond)():
                return _WHY[cond]
        return f"{op} is not allowed now"  # pragma: no cover (every condition has a reason)

    def expect(self, op: str) -> str:
        """The phase `op` leads to from the current one (the model is not changed)."""
        for row in RULES:
            src = row["source"]
            if row["trigger"] == op and self.state in ([src] if isinstance(src, str) else src):
                return self.state if row["dest"] is None else str(row["dest"])
        raise ValueError(f"{op} is not allowed in phase {self.state}")

    def apply(self, op: str) -> str:
        """Take the step (ValueError if the rules refuse it); returns the new phase."""
        why = self.refusal(op)
        if why is not None:
            raise ValueError(why)
        try:
            getattr(self, op)()
        except MachineError as e:  # pragma: no cover (refusal() checked it)
            raise ValueError(str(e)) from None
        return self.state
