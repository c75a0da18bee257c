"""Screening (bedside_host.session.screening): the guideline's relative contraindications, the
resting-BP limit, and the override rule (REQ-SES-44..47)."""

from __future__ import annotations

import pytest
from bedside_host.session.clinic import ClinicSettings
from bedside_host.session.screening import CONTRAINDICATIONS, Screening, evaluate, validate
from bedside_host.session.values import InvalidInput

CLINIC = ClinicSettings()
NONE = dict.fromkeys(CONTRAINDICATIONS, False)


def test_the_six_items_of_the_guideline() -> None:
    """REQ-SES-44: screening asks the six relative contraindications of the consensus guideline
    (cardiovascular, hepatic, substance misuse, raised ICP/IOP (glaucoma), psychosis or
    schizophrenia, pregnancy); with all answered no and a resting BP within the clinic limit the
    screening passes without an override."""
    assert list(CONTRAINDICATIONS) == [
        "cardiovascular", "hepatic", "substance", "icp_iop", "psychosis", "pregnancy",
    ]  # fmt: skip
    assert "glaucoma" in CONTRAINDICATIONS["icp_iop"]
    assert "schizophrenia" in CONTRAINDICATIONS["psychosis"]
    r = evaluate(Screening(NONE, 138, 88), CLINIC)
    assert r.passed and not r.overridden and r.findings == []
    assert [k for k, _q, yes in r.items] == list(CONTRAINDICATIONS)


@pytest.mark.parametrize("item", list(CONTRAINDICATIONS))
def test_any_yes_needs_a_named_clinicians_override(item: str) -> None:
    """REQ-SES-45: any item answered yes stops the screening until a named clinician overrides
    it with a reason; with the override it passes, marked as overridden."""
    answers = {**NONE, item: True}
    r = evaluate(Screening(answers, 120, 80), CLINIC)
    assert not r.passed and r.findings == [CONTRAINDICATIONS[item]]
    assert "named clinician's override" in r.why and CONTRAINDICATIONS[item] in r.why
    over = Screening(answers, 120, 80, "", "Dr Lee", "discussed, benefit outweighs")
    ok = evaluate(over, CLINIC)
    assert ok.passed and ok.overridden


@pytest.mark.parametrize(("sys", "dia", "finding"), [(141, 80, True), (140, 91, True),
                                                      (140, 90, False)])  # fmt: skip
def test_resting_bp_against_the_clinic_limit(sys: int, dia: int, finding: bool) -> None:
    """REQ-SES-46: a resting BP above the clinic limit (systolic or diastolic; default 140/90, a
    host clinic setting) is a finding that needs an override; the limit comes from the
    settings."""
    r = evaluate(Screening(NONE, sys, dia), CLINIC)
    assert r.passed is not finding
    if finding:
        assert "above the clinic limit 140/90" in r.findings[0]
    loose = ClinicSettings(screen_sys_max=160, screen_dia_max=100)
    assert evaluate(Screening(NONE, sys, dia), loose).passed


@pytest.mark.parametrize(
    ("screening", "message"),
    [
        (Screening(dict.fromkeys(list(CONTRAINDICATIONS)[:5], False), 120, 80), "missing: preg"),
        (Screening({**NONE, "asthma": True}, 120, 80), "unknown screening item 'asthma'"),
        (Screening(NONE, 20, 80), "systolic BP must be"),
        (Screening(NONE, 120, 250), "diastolic BP must be"),
        (Screening(NONE, 80, 90), "diastolic BP must be below"),
        (Screening({**NONE, "pregnancy": True}, 120, 80, "", "Dr Lee", None), "both"),
        (Screening({**NONE, "pregnancy": True}, 120, 80, "", None, "because"), "both"),
        (Screening({**NONE, "pregnancy": True}, 120, 80, "", "Dr Lee", "ok"), "at least 5"),
        (Screening({**NONE, "pregnancy": True}, 120, 80, "", "", "a reason"), "must not be empty"),
        (Screening({**NONE, "pregnancy": True}, 120, 80, "", "x" * 33, "a reason"), "longer"),
        (Screening(NONE, 120, 80, "", "Dr Lee", "no need really"), "nothing needs one"),
        (Screening(NONE, 120, 80, "x" * 501), "note is longer than 500"),
        (Screening(NONE, 120, 80, "bad\x07bell"), "control characters"),
    ],
)
def test_bad_screening_input_is_refused(screening: Screening, message: str) -> None:
    """REQ-SES-47: a screening with an item unanswered or unknown, an implausible BP, an
    override without both the clinician's name and a reason (of at least 5 characters), an
    override where nothing needs one, or over-long or control-character text is refused with a
    message that says what is wrong."""
    with pytest.raises(InvalidInput, match=message):
        evaluate(screening, CLINIC)
    if message != "nothing needs one":
        with pytest.raises(InvalidInput):
            validate(screening)
