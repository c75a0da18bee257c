"""Nurse-entered scores and clinic settings (bedside_host.session.scores, .clinic): modified
Aldrete, PADSS with surgical bleeding n/a, MOAA/S and RASS checks, hints (REQ-SES-48..51, 72)."""

from __future__ import annotations

import pytest
from bedside_host.config import ConfigError
from bedside_host.session.clinic import ClinicSettings
from bedside_host.session.scores import (
    ALDRETE,
    MOAAS,
    PADSS,
    Check,
    aldrete,
    hints,
    padss,
    pain_item,
)
from bedside_host.session.values import InvalidInput

CLINIC = ClinicSettings()
A_FULL = dict.fromkeys(ALDRETE, 2)
P_FULL = dict.fromkeys(PADSS, 2)


@pytest.mark.parametrize(
    ("items", "total", "passed"),
    [
        (A_FULL, 10, True),
        ({**A_FULL, "activity": 1}, 9, True),
        ({**A_FULL, "activity": 1, "spo2": 1}, 8, False),
        ({**A_FULL, "spo2": 0}, 8, False),
    ],
)
def test_modified_aldrete_scoring(items: dict[str, int], total: int, passed: bool) -> None:
    """REQ-SES-48: the modified Aldrete score is the sum of its five items (activity,
    respiration, circulation, consciousness, O2 saturation; 0-2 each); it passes at the clinic
    minimum (default 9) with no item scored 0; both rules are clinic settings."""
    assert list(ALDRETE) == ["activity", "respiration", "circulation", "consciousness", "spo2"]
    s = aldrete(items, CLINIC)
    assert (s.total, s.passed) == (total, passed)
    assert s.passed or s.why
    low = ClinicSettings(aldrete_min=8)
    zero = aldrete({**A_FULL, "spo2": 0}, low)
    assert zero.total == 8 and not zero.passed and "item scored 0: spo2" in zero.why
    lenient = ClinicSettings(aldrete_min=8, aldrete_no_zero=False)
    assert aldrete({**A_FULL, "spo2": 0}, lenient).passed


def test_padss_scoring_with_surgical_bleeding_not_applicable() -> None:
    """REQ-SES-49: PADSS has four entered items (vital signs, ambulation, nausea/vomiting,
    pain; 0-2 each) and surgical bleeding, which does not apply to an infusion and is scored 2
    by rule (never entered); it passes at the clinic minimum (default 9); the pain item follows
    the 0-10 score (0-3: 2, 4-6: 1, 7-10: 0)."""
    assert list(PADSS) == ["vital_signs", "ambulation", "nausea_vomiting", "pain"]
    s = padss(P_FULL, CLINIC)
    assert s.total == 10 and s.passed and s.items["surgical_bleeding"] == 2
    one = padss({**P_FULL, "pain": 1}, CLINIC)
    assert (one.total, one.passed) == (9, True)
    two = padss({**P_FULL, "pain": 1, "nausea_vomiting": 1}, CLINIC)
    assert (two.total, two.passed) == (8, False) and "below 9" in two.why
    with pytest.raises(InvalidInput, match="unknown PADSS item 'surgical_bleeding'"):
        padss({**P_FULL, "surgical_bleeding": 0}, CLINIC)
    assert [pain_item(v) for v in (0, 3, 4, 6, 7, 10)] == [2, 2, 1, 1, 0, 0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: aldrete({"activity": 2}, CLINIC), "missing: respiration"),
        (lambda: aldrete({**A_FULL, "colour": 2}, CLINIC), "unknown Aldrete item 'colour'"),
        (lambda: aldrete({**A_FULL, "spo2": 3}, CLINIC), "Aldrete spo2 must be a whole number"),
        (lambda: padss({**P_FULL, "pain": -1}, CLINIC), "PADSS pain must be a whole number 0..2"),
        (lambda: padss({**P_FULL, "pain": True}, CLINIC), "PADSS pain must be"),
        (lambda: Check(moaas=6).validate(), "MOAA/S must be a whole number 0..5"),
        (lambda: Check(moaas=3, variant="C").validate(), "variant must be one of A, B"),
        (lambda: Check(rass=5).validate(), "RASS must be a whole number -5..4"),
        (lambda: Check(rass=-6).validate(), "RASS must be"),
        (lambda: Check(nausea="awful").validate(), "nausea must be one of"),
        (lambda: Check(dissociation="lots").validate(), "dissociation must be one of"),
        (lambda: Check(pain=11).validate(), "pain score must be a whole number 0..10"),
        (lambda: Check(note="n" * 501).validate(), "longer than 500"),
    ],
)
def test_bad_scores_are_refused(call: object, message: str) -> None:
    """REQ-SES-50: an unscored, unknown or out-of-range Aldrete or PADSS item, and a check with
    MOAA/S outside 0-5, an unknown variant, RASS outside -5..+4, an unknown side-effect level,
    a pain score outside 0-10 or an over-long note are refused with what is wrong."""
    with pytest.raises(InvalidInput, match=message):
        call()  # type: ignore[operator]


def test_checks_and_clinic_settings() -> None:
    """REQ-SES-51: a check may carry no score (check done), MOAA/S with its variant (A or B,
    each with its wording), RASS -5..+4 and side effects; the MOAA/S scale name sent to the
    device is "MOAA/S" (the variant stays on the host). Clinic settings come from the [session]
    table of the host config with each value checked; unknown names and bad values are
    refused."""
    Check().validate()
    c = Check(moaas=0, variant="B", rass=4, dissociation="severe", nausea="none", pain=10)
    c.validate()
    assert c.scale() == "MOAA/S"
    assert MOAAS["A"][1] != MOAAS["B"][1] and set(MOAAS["A"]) == set(range(6))
    s = ClinicSettings.from_mapping({"aldrete_min": 8, "no_driving_h": 8, "moaas_variant": "B"})
    assert (s.aldrete_min, s.no_driving_h, s.moaas_variant, s.padss_min) == (8, 8, "B", 9)
    for bad, msg in (
        ({"aldrete_minimum": 9}, "unknown clinic setting"),
        ({"aldrete_min": 11}, "aldrete_min must be a whole number 0..10"),
        ({"screen_sys_max": "140"}, "screen_sys_max must be"),
        ({"aldrete_no_zero": 1}, "true or false"),
        ({"moaas_variant": "C"}, "one of A, B"),
    ):
        with pytest.raises(ConfigError, match=msg):
            ClinicSettings.from_mapping(bad)


def test_discharge_hints_from_device_data() -> None:
    """REQ-SES-72: from the latest systolic, pulse and SpO2 against the session baseline the
    host suggests (for the nurse to confirm, never entering them) Aldrete circulation (within
    20 %: 2, 20-50 %: 1, beyond: 0), Aldrete O2 saturation (> 92 % on room air: 2; > 90 % with
    O2: 1; else 0) and PADSS vital signs (BP and pulse within 20 %: 2, 20-40 %: 1, beyond: 0);
    without a baseline or a value there is no hint for that item."""
    base = {"sys": 120, "dia": 80, "pr": 70}

    def pts(sys: float | None, pr: float | None, spo2: float | None,
            o2: bool = False) -> dict[str, int]:  # fmt: skip
        return {f"{h.form}.{h.item}": h.points for h in hints(base, sys, pr, spo2, o2)}

    assert pts(130, 72, 97) == {"aldrete.circulation": 2, "padss.vital_signs": 2,
                                "aldrete.spo2": 2}  # fmt: skip
    assert pts(150, 70, 92) == {"aldrete.circulation": 1, "padss.vital_signs": 1,
                                "aldrete.spo2": 1}  # fmt: skip
    assert pts(190, 70, 89) == {"aldrete.circulation": 0, "padss.vital_signs": 0,
                                "aldrete.spo2": 0}  # fmt: skip
    assert pts(120, 100, 95, o2=True) == {"aldrete.circulation": 2, "padss.vital_signs": 0,
                                          "aldrete.spo2": 1}  # fmt: skip
    assert pts(None, None, None) == {}
    assert {h.item for h in hints(None, 120, 70, 97, False)} == {"spo2"}
    (circ,) = hints(base, 150, None, None, False)
    assert circ.why == "systolic 150 is 25 % from baseline 120"
