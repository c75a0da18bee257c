"""Nurse-entered scores: modified Aldrete, PADSS, MOAA/S with variant, RASS, side effects.

Item wording and thresholds: shared reference session.md §1.4-1.6 (ref §1.5 Aldrete, §1.6
PADSS). Pass rules are clinic settings (ClinicSettings). PADSS "surgical bleeding" does not
apply to an infusion: it is scored 2 by rule (so the 10-point scale and its >= 9 rule keep their
meaning) and shown as "n/a (2 by rule)" on every display and report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bedside_host.session.clinic import ClinicSettings
from bedside_host.session.values import InvalidInput, check_int, check_text

# item -> (title, wording of 2, 1, 0)
ALDRETE: dict[str, tuple[str, tuple[str, str, str]]] = {
    "activity": ("Activity", ("moves 4 extremities", "moves 2 extremities", "moves none")),
    "respiration": (
        "Respiration",
        ("breathes deeply, coughs freely", "dyspnoea, shallow or limited", "apnoeic"),
    ),
    "circulation": (
        "Circulation",
        ("BP within 20 % of baseline", "BP 20-50 % from baseline", "BP beyond 50 % of baseline"),
    ),
    "consciousness": ("Consciousness", ("fully awake", "arousable on calling", "not responding")),
    "spo2": (
        "O2 saturation",
        ("> 92 % on room air", "needs O2 to keep > 90 %", "< 90 % even with O2"),
    ),
}
PADSS: dict[str, tuple[str, tuple[str, str, str]]] = {
    "vital_signs": (
        "Vital signs",
        ("within 20 % of baseline", "20-40 % of baseline", "beyond 40 % of baseline"),
    ),
    "ambulation": (
        "Ambulation",
        ("steady gait, no dizziness", "needs assistance", "unable to walk"),
    ),
    "nausea_vomiting": ("Nausea/vomiting", ("minimal", "moderate, treated", "severe")),
    "pain": ("Pain", ("VAS 0-3, acceptable", "VAS 4-6", "VAS 7-10")),
}
PADSS_BLEEDING = ("surgical_bleeding", "Surgical bleeding", 2)  # not applicable: 2 by rule
MOAAS: dict[str, dict[int, str]] = {
    "A": {
        5: "responds readily to name spoken in normal tone (alert)",
        4: "lethargic response to name spoken in normal tone",
        3: "responds only after name is called loudly and/or repeatedly",
        2: "responds only after mild prodding or shaking",
        1: "responds only after painful trapezius squeeze",
        0: "does not respond to painful trapezius squeeze",
    },
    "B": {
        5: "responds readily to name spoken in normal tone (alert)",
        4: "lethargic response to name spoken in normal tone",
        3: "responds only after name is called loudly and/or repeatedly",
        2: "responds only after mild prodding or shaking",
        1: "does not respond to mild prodding or shaking",
        0: "does not respond to pain",
    },
}
RASS_RANGE = (-5, 4)
LEVELS = ("none", "mild", "moderate", "severe")  # dissociation, nausea
NOTE_MAX = 500


@dataclass(frozen=True)
class Score:
    """A scored form: each item's points, the total, whether it passes and why not."""

    scale: str
    items: dict[str, int]
    total: int
    passed: bool
    why: str = ""


def _items(
    scale: str, table: Mapping[str, tuple[str, tuple[str, str, str]]], raw: Mapping[str, int]
) -> dict[str, int]:
    unknown = sorted(set(raw) - set(table))
    if unknown:
        raise InvalidInput(f"unknown {scale} item {unknown[0]!r} (items: {', '.join(table)})")
    missing = [k for k in table if k not in raw]
    if missing:
        raise InvalidInput(f"every {scale} item must be scored; missing: {', '.join(missing)}")
    return {k: check_int(f"{scale} {k}", raw[k], 0, 2) for k in table}


def aldrete(raw: Mapping[str, int], clinic: ClinicSettings) -> Score:
    """Modified Aldrete (5 items, 0-10); pass: total >= aldrete_min (and no item 0)."""
    items = _items("Aldrete", ALDRETE, raw)
    total = sum(items.values())
    why = []
    if total < clinic.aldrete_min:
        why.append(f"total {total} below {clinic.aldrete_min}")
    zero = [k for k, v in items.items() if v == 0]
    if clinic.aldrete_no_zero and zero:
        why.append("item scored 0: " + ", ".join(zero))
    return Score("aldrete", items, total, not why, "; ".join(why))


def padss(raw: Mapping[str, int], clinic: ClinicSettings) -> Score:
    """PADSS (4 items entered + surgical bleeding n/a = 2 by rule, 0-10); pass: >= padss_min."""
    items = _items("PADSS", PADSS, raw)
    items[PADSS_BLEEDING[0]] = PADSS_BLEEDING[2]
    total = sum(items.values())
    why = []
    if total < clinic.padss_min:
        why.append(f"total {total} below {clinic.padss_min}")
    zero = [k for k, v in items.items() if v == 0]
    if clinic.padss_no_zero and zero:
        why.append("item scored 0: " + ", ".join(zero))
    return Score("padss", items, total, not why, "; ".join(why))


def pain_item(vas: int) -> int:
    """The PADSS pain item from a 0-10 pain score (ref §1.6: 0-3 / 4-6 / 7-10)."""
    check_int("pain score", vas, 0, 10)
    return 2 if vas <= 3 else 1 if vas <= 6 else 0


@dataclass(frozen=True)
class Check:
    """One responsiveness check: MOAA/S (or none: check done, no score) and observations."""

    moaas: int | None = None
    variant: str = "A"
    rass: int | None = None
    dissociation: str | None = None
    nausea: str | None = None
    pain: int | None = None
    note: str = ""

    def validate(self) -> None:
        if self.moaas is not None:
            check_int("MOAA/S", self.moaas, 0, 5)
        if self.variant not in MOAAS:
            raise InvalidInput(f"MOAA/S variant must be one of {', '.join(MOAAS)}")
        if self.rass is not None:
            check_int("RASS", self.rass, *RASS_RANGE)
        for what, v in (("dissociation", self.dissociation), ("nausea", self.nausea)):
            if v is not None and v not in LEVELS:
                raise InvalidInput(f"{what} must be one of {', '.join(LEVELS)}")
        if self.pain is not None:
            check_int("pain score", self.pain, 0, 10)
        check_text("note", self.note, NOTE_MAX, allow_empty=True)

    def scale(self) -> str:
        """The scale sent to the device: "MOAA/S", the name the device compares with its
        deep-sedation setting (the variant is recorded on the host)."""
        return "MOAA/S"


@dataclass(frozen=True)
class Hint:
    """A score the host can suggest from device data, for the nurse to confirm (never entered
    for them): the form, the item, the points and why."""

    form: str  # "aldrete" or "padss"
    item: str
    points: int
    why: str


def _off_pct(value: float, base: float) -> float:
    return abs(value - base) * 100.0 / base


def hints(
    baseline: Mapping[str, object] | None,
    sys: float | None,
    pr: float | None,
    spo2: float | None,
    o2_on: bool,
) -> list[Hint]:
    """Aldrete circulation and O2 saturation, PADSS vital signs, from the latest NIBP, pulse and
    SpO2 against the session baseline (ref §1.5, §1.6: within 20 % 2; Aldrete 20-50 % 1, PADSS
    20-40 % 1; beyond 0; SpO2 > 92 % on room air 2, > 90 % with O2 1, else 0). Missing data: no
    hint for that item."""
    out: list[Hint] = []
    b_sys = baseline.get("sys") if baseline else None
    b_pr = baseline.get("pr") if baseline else None
    if isinstance(b_sys, int | float) and b_sys > 0 and sys is not None:
        off = _off_pct(sys, float(b_sys))
        pts = 2 if off <= 20 else 1 if off <= 50 else 0
        out.append(Hint("aldrete", "circulation", pts,
                        f"systolic {sys:g} is {off:.0f} % from baseline {b_sys:g}"))  # fmt: skip
        if isinstance(b_pr, int | float) and b_pr > 0 and pr is not None:
            worst = max(off, _off_pct(pr, float(b_pr)))
            pts = 2 if worst <= 20 else 1 if worst <= 40 else 0
            out.append(Hint("padss", "vital_signs", pts,
                            f"BP and pulse within {worst:.0f} % of baseline"))  # fmt: skip
    if spo2 is not None:
        if not o2_on:
            pts = 2 if spo2 > 92 else 1 if spo2 > 90 else 0
            why = f"SpO2 {spo2:g} % on room air"
        else:
            pts = 1 if spo2 > 90 else 0
            why = f"SpO2 {spo2:g} % on supplemental O2"
        out.append(Hint("aldrete", "spo2", pts, why))
    return out
