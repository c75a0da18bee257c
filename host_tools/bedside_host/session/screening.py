"""Pre-infusion screening: the guideline's relative contraindications, resting BP, free text,
and the override rule (any finding needs a named clinician's override with a reason).

Items and wording: ASRA/AAPM/ASA consensus guideline (Cohen et al. 2018), ref §1.1; the resting
BP limit is a clinic setting (``ClinicSettings.screen_sys_max``/``screen_dia_max``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bedside_host.session.clinic import ClinicSettings
from bedside_host.session.values import InvalidInput, check_name, check_text

# key -> the question as asked (the order of the form)
CONTRAINDICATIONS: dict[str, str] = {
    "cardiovascular": "poorly controlled cardiovascular disease",
    "hepatic": "severe hepatic disease",
    "substance": "active substance misuse",
    "icp_iop": "raised intracranial or intraocular pressure (glaucoma)",
    "psychosis": "poorly controlled psychosis or schizophrenia",
    "pregnancy": "pregnancy",
}
BP_SYS_RANGE = (50, 300)  # a resting BP outside these is a typing error, not a reading
BP_DIA_RANGE = (20, 200)
NOTE_MAX = 500
REASON_MIN = 5  # an override reason is a sentence, not "ok"
REASON_MAX = 200


@dataclass(frozen=True)
class Screening:
    """One screening as entered (answers: True = yes, the condition applies)."""

    answers: Mapping[str, bool]
    bp_sys: int
    bp_dia: int
    note: str = ""
    override_by: str | None = None
    override_reason: str | None = None


@dataclass(frozen=True)
class ScreenResult:
    findings: list[str]  # what needs an override (yes answers, BP above the limit)
    passed: bool  # may go on to baseline
    overridden: bool  # passed because a clinician overrode the findings
    why: str = ""  # why not passed
    items: list[tuple[str, str, bool]] = field(default_factory=list)  # (key, question, yes)


def validate(s: Screening) -> None:
    """Bad input (InvalidInput): a missing or unknown item, an implausible BP, an override
    without its clinician or reason, over-long text."""
    unknown = sorted(set(s.answers) - set(CONTRAINDICATIONS))
    if unknown:
        raise InvalidInput(f"unknown screening item {unknown[0]!r}")
    missing = [k for k in CONTRAINDICATIONS if k not in s.answers]
    if missing:
        raise InvalidInput(
            "every screening item must be answered yes or no; missing: " + ", ".join(missing)
        )
    for k, v in s.answers.items():
        if not isinstance(v, bool):
            raise InvalidInput(f"screening item {k} must be yes or no")
    for name, bp, (lo, hi) in (
        ("systolic", s.bp_sys, BP_SYS_RANGE),
        ("diastolic", s.bp_dia, BP_DIA_RANGE),
    ):
        if isinstance(bp, bool) or not isinstance(bp, int) or not lo <= bp <= hi:
            raise InvalidInput(f"resting {name} BP must be a whole number {lo}..{hi} mmHg")
    if s.bp_dia >= s.bp_sys:
        raise InvalidInput("resting diastolic BP must be below the systolic")
    check_text("note", s.note, NOTE_MAX, allow_empty=True)
    if (s.override_by is None) != (s.override_reason is None):
        raise InvalidInput("an override needs both the clinician's name and a reason")
    if s.override_by is not None:
        check_name("override clinician", s.override_by)
    if s.override_reason is not None:
        check_text("override reason", s.override_reason, REASON_MAX)
        if len(s.override_reason.strip()) < REASON_MIN:
            raise InvalidInput(f"the override reason must be at least {REASON_MIN} characters")


def evaluate(s: Screening, clinic: ClinicSettings) -> ScreenResult:
    """The findings and whether the session may go on (validate() first)."""
    validate(s)
    items = [(k, q, bool(s.answers[k])) for k, q in CONTRAINDICATIONS.items()]
    findings = [q for _k, q, yes in items if yes]
    if s.bp_sys > clinic.screen_sys_max or s.bp_dia > clinic.screen_dia_max:
        findings.append(
            f"resting BP {s.bp_sys}/{s.bp_dia} above the clinic limit "
            f"{clinic.screen_sys_max}/{clinic.screen_dia_max}"
        )
    if not findings:
        if s.override_by is not None:
            raise InvalidInput("an override was given but nothing needs one (no finding)")
        return ScreenResult([], True, False, items=items)
    if s.override_by is None:
        return ScreenResult(
            findings,
            False,
            False,
            "needs a named clinician's override with a reason: " + "; ".join(findings),
            items,
        )
    return ScreenResult(findings, True, True, items=items)
