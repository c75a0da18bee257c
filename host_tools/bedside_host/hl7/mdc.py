"""ISO/IEEE 11073-10101 (MDC) nomenclature used in our HL7 messages: THE one table.

Every code below is checked by tests/test_hl7.py against the values in docs/hl7.md (which
cites the sources). Several public examples carry wrong codes (150457 as the oximeter pulse
rate, 150017/150018 as NIBP systolic/diastolic): those are listed in :data:`KNOWN_WRONG` so
the test proves we never send them. Some monitors send the cuff-pressure codes
150301/150302/150303 for NIBP: :data:`ACCEPTED_ALIASES` maps them for parsers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    code: int
    ref: str  # the reference id (MDC_...)

    @property
    def cwe(self) -> str:
        """As an HL7 CWE: ``code^REF_ID^MDC``."""
        return f"{self.code}^{self.ref}^MDC"


@dataclass(frozen=True)
class Metric:
    name: str  # our name
    code: Code
    unit: Code | None  # None: no value (a compound header)
    source: str  # the device message and field it comes from (type.field)


# Units
PERCENT = Code(262688, "MDC_DIM_PERCENT")
BEAT_PER_MIN = Code(264864, "MDC_DIM_BEAT_PER_MIN")
MMHG = Code(266016, "MDC_DIM_MMHG")

# Containment (OBX-4 tree: MDS.VMD.CHAN.METRIC)
MDS = Code(69965, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS")
VMD_PULS_OXIM = Code(69798, "MDC_DEV_PULS_OXIM_VMD")
CHAN_PULS_OXIM = Code(69799, "MDC_DEV_PULS_OXIM_CHAN")
VMD_NIBP = Code(70686, "MDC_DEV_PRESS_BLD_NONINV_VMD")

# Metrics: name -> Metric
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("spo2", Code(150456, "MDC_PULS_OXIM_SAT_O2"), PERCENT, "oxi.spo2"),
        Metric("pr", Code(149530, "MDC_PULS_OXIM_PULS_RATE"), BEAT_PER_MIN, "oxi.pr"),
        Metric("nibp", Code(150020, "MDC_PRESS_BLD_NONINV"), None, "nibp"),
        Metric("nibp_sys", Code(150021, "MDC_PRESS_BLD_NONINV_SYS"), MMHG, "nibp.sys"),
        Metric("nibp_dia", Code(150022, "MDC_PRESS_BLD_NONINV_DIA"), MMHG, "nibp.dia"),
        Metric("nibp_mean", Code(150023, "MDC_PRESS_BLD_NONINV_MEAN"), MMHG, "nibp.map"),
        Metric("nibp_pr", Code(149546, "MDC_PULS_RATE_NON_INV"), BEAT_PER_MIN, "nibp.pr"),
    )
}

# Alarms (IHE PCD-04, ACM): the alert event and its facets (OBX-3 of each facet OBX)
EVT_ALARM = Code(196616, "MDC_EVT_ALARM")
ATTR_EVENT_PHASE = Code(68481, "MDC_ATTR_EVENT_PHASE")
ATTR_ALARM_STATE = Code(68482, "MDC_ATTR_ALARM_STATE")
ATTR_ALARM_INACTIVATION_STATE = Code(68483, "MDC_ATTR_ALARM_INACTIVATION_STATE")

# Alarm condition (docs/protocol.md ids) -> the metric it is about (None: technical)
CONDITION_METRIC: dict[str, str | None] = {
    "SPO2_DESAT": "spo2",
    "SPO2_LOW": "spo2",
    "PR_LOW": "pr",
    "PR_HIGH": "pr",
    "NIBP_SYS_HIGH": "nibp_sys",
    "NIBP_SYS_LOW": "nibp_sys",
    "NIBP_DIA_HIGH": "nibp_dia",
    "NIBP_MAP_LOW": "nibp_mean",
    "BP_RISE": "nibp_sys",
}

# Wrong codes seen in public examples: never sent (tests/test_hl7.py)
KNOWN_WRONG: dict[int, str] = {
    150457: "not the oximeter pulse rate (that is 149530 MDC_PULS_OXIM_PULS_RATE)",
    150017: "not NIBP systolic (150021 MDC_PRESS_BLD_NONINV_SYS)",
    150018: "not NIBP diastolic (150022 MDC_PRESS_BLD_NONINV_DIA)",
}
# Codes other monitors send for the same quantity (accepted when parsing, never sent)
ACCEPTED_ALIASES: dict[int, str] = {
    150301: "nibp_sys",  # MDC_PRESS_CUFF_SYS
    150302: "nibp_dia",  # MDC_PRESS_CUFF_DIA
    150303: "nibp_mean",  # MDC_PRESS_CUFF_MEAN
}


def metric_of_code(code: int) -> str | None:
    """Our metric name for an MDC code we send or accept (None: unknown)."""
    for m in METRICS.values():
        if m.code.code == code:
            return m.name
    return ACCEPTED_ALIASES.get(code)
