"""The host's session model (bedside_host.session.rules): every transition of the host rules
allowed, every op refused outside its phases, each condition refusing alone (REQ-SES-40..43)."""

from __future__ import annotations

import pytest
from bedside_host.session.rules import OPS, PHASES, RULES, Facts, HostModel
from fakedevice import SESSION_OPS

ALL_TRUE = Facts(True, True, True, True)


def _sources(row: dict[str, object]) -> list[str]:
    src = row["source"]
    assert isinstance(src, str | list)
    return [src] if isinstance(src, str) else [str(x) for x in src]


ALLOWED = [(str(r["trigger"]), p, r["dest"]) for r in RULES for p in _sources(r)]
REFUSED = [
    (op, p)
    for op in OPS
    for p in PHASES
    if p not in {s for r in RULES if r["trigger"] == op for s in _sources(r)}
]


@pytest.mark.parametrize(("op", "phase", "dest"), ALLOWED, ids=lambda x: str(x))
def test_each_transition_is_allowed(op: str, phase: str, dest: object) -> None:
    """REQ-SES-40: every row of the host rules, from each of its source phases, is allowed when
    its condition holds and leads to its phase (an op without a destination stays)."""
    m = HostModel(phase, Facts(True, True, True, True))
    assert m.refusal(op) is None
    assert m.expect(op) == (phase if dest is None else dest)
    assert m.apply(op) == (phase if dest is None else dest)
    assert m.state == (phase if dest is None else dest)


@pytest.mark.parametrize(("op", "phase"), REFUSED, ids=lambda x: str(x))
def test_each_op_is_refused_outside_its_phases(op: str, phase: str) -> None:
    """REQ-SES-41: an op asked in a phase the rules do not list is refused with a reason that
    names the phase and where it is allowed; the phase does not change."""
    m = HostModel(phase, ALL_TRUE)
    why = m.refusal(op)
    assert why is not None and f"phase {phase}" in why and "only in" in why
    with pytest.raises(ValueError, match="not allowed"):
        m.apply(op)
    assert m.state == phase


@pytest.mark.parametrize(
    ("op", "phase", "missing", "words"),
    [
        ("screened", "screening", "screening_passed", "overridden by a named clinician"),
        ("start", "baseline", "baseline_accepted", "baseline has not been accepted"),
        ("discharge", "recovery", "scores_pass", "Aldrete and PADSS"),
        ("close", "discharge_ready", "escort_recorded", "no-driving advice"),
    ],
)
def test_each_condition_refuses_alone(op: str, phase: str, missing: str, words: str) -> None:
    """REQ-SES-42: screened needs a passed screening, start an accepted baseline, discharge
    passing Aldrete and PADSS scores, close an escort with the no-driving advice; each missing
    alone refuses the step with its own reason and leaves the phase."""
    facts = Facts(True, True, True, True)
    setattr(facts, missing, False)
    m = HostModel(phase, facts)
    why = m.refusal(op)
    assert why is not None and words in why
    with pytest.raises(ValueError):
        m.apply(op)
    assert m.state == phase


def test_host_rules_agree_with_the_protocol_table() -> None:
    """REQ-SES-43: the host's own statement of the rules and the protocol's phase table (as the
    fake device states it from SESSION_PROTOCOL.md) allow the same ops in the same phases and
    lead to the same phases; unknown ops and phases are refused."""
    for op, (allowed, dest) in SESSION_OPS.items():
        mops = [f"baseline_{a}" for a in ("repeat", "accept")] if op == "baseline" else [op]
        for mop in mops:
            for phase in PHASES:
                m = HostModel(phase, ALL_TRUE)
                assert (m.refusal(mop) is None) == (phase in allowed), (mop, phase)
                if phase in allowed:
                    assert m.expect(mop) == (dest or phase)
    assert HostModel("idle").refusal("launch") == "unknown session step 'launch'"
    with pytest.raises(ValueError):
        HostModel("flying")
    m = HostModel("idle")
    m.set_phase("recovery")
    assert m.state == "recovery"
