"""IHE PCD-01 (ORU^R01, device observations) and PCD-04 (ORU^R40, alarms), HL7 v2.6, built with
hl7apy (strict) and checked against the IHE PCD rules hl7apy does not know (:func:`check`).
docs/hl7.md shows a message of each kind and says where each field comes from.

Identity: PID-3 is the session's pseudonymous patient id where the device reported one (the
infusion-session ``patient``), else ``UNKNOWN``; PV1-3 is ``<site>^^<chair>``; the equipment
instance id (MSH-3, OBX-18) is a locally administered EUI-64 derived from the chair id (the
Pico has no EUI-64 of its own). Times are UTC with an explicit ``+0000``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

from bedside_host.hl7 import mdc

VERSION = "2.6"
PROFILE_PCD01 = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
PROFILE_PCD04 = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"
TYPE_PCD01 = "ORU^R01^ORU_R01"
TYPE_PCD04 = "ORU^R40^ORU_R40"
SENDING_APP = "BEDSIDE"
MONITORING = "182777000^monitoring of patient^SCT"
FRESH_S = 10.0  # a periodic report carries SpO2/PR only if received this recently
TABLE_0085 = frozenset("CDFINORSXUW") | {"P"}

PHASE = {  # our alarm event -> ACM event phase
    "raise": "start",
    "end": "end",
    "reset": "end",
    "escalate": "escalate",
    "ack": "update",
    "pause_end": "update",
}
STATE = {  # our alarm state -> (ACM alarm state, inactivation state)
    "inactive": ("inactive", "enabled"),
    "active": ("active", "enabled"),
    "audio_paused": ("active", "audio-paused"),
    "latched": ("latched", "enabled"),
    "latched_acknowledged": ("latched", "alert-acknowledged"),
}
PRIORITY = {"high": "PH", "medium": "PM", "low": "PL"}
KIND = {"physiological": "SP", "technical": "ST"}
_control = itertools.count(1)


class Hl7BuildError(ValueError):
    """The data cannot make a valid message (reported, never sent)."""


def hl7_time(t: float) -> str:
    return time.strftime("%Y%m%d%H%M%S+0000", time.gmtime(t))


def eui64(chair_id: str) -> str:
    """A stable, locally administered EUI-64 (16 hex digits) for a chair."""
    b = bytearray(hashlib.sha256(chair_id.encode()).digest()[:8])
    b[0] = (b[0] | 0x02) & 0xFE  # locally administered, unicast
    return b.hex().upper()


def _esc(s: str) -> str:
    """HL7 escaping of a free text value (delimiters ``|^~\\&``)."""
    out = s.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    return out.replace("~", "\\R\\").replace("&", "\\T\\").replace("\r", " ").replace("\n", " ")


def _num(x: Any) -> str | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


@dataclass
class Chair:
    """What the HL7 sender knows of one chair (fed from the station feed)."""

    chair_id: str  # "<site>/<chair>"
    patient: str | None = None
    oxi: dict[str, Any] | None = None
    oxi_rx: float = 0.0
    nibp: dict[str, Any] | None = None
    nibp_rx: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def site(self) -> str:
        return self.chair_id.split("/", 1)[0]

    @property
    def bed(self) -> str:
        return self.chair_id.split("/", 1)[-1]


def _message(chair: Chair, kind: str, now: float) -> tuple[Message, Any]:
    m = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    eui = eui64(chair.chair_id)
    m.msh.msh_3 = f"{SENDING_APP}^{eui}^EUI-64"
    m.msh.msh_4 = _esc(chair.site)
    m.msh.msh_7 = hl7_time(now)
    m.msh.msh_9 = TYPE_PCD01
    m.msh.msh_10 = f"{eui[-6:]}{int(now * 1000) % 10**10:010d}{next(_control) % 10000:04d}"
    m.msh.msh_11 = "P"
    m.msh.msh_15 = "AL"
    m.msh.msh_16 = "NE"
    m.msh.msh_18 = "UNICODE UTF-8"
    m.msh.msh_21 = PROFILE_PCD01 if kind == "pcd01" else PROFILE_PCD04
    pr = m.add_group("ORU_R01_PATIENT_RESULT")
    pat = pr.add_group("ORU_R01_PATIENT")
    pat.pid.pid_3 = f"{_esc(chair.patient or 'UNKNOWN')}^^^{_esc(chair.site)}^PI"
    pat.pid.pid_5 = "^^^^^^U"
    visit = pat.add_group("ORU_R01_VISIT")
    visit.pv1.pv1_2 = "O"
    visit.pv1.pv1_3 = f"{_esc(chair.site)}^^{_esc(chair.bed)}"
    oo = pr.add_group("ORU_R01_ORDER_OBSERVATION")
    return m, oo


def _obx(
    oo: Any,
    n: int,
    code: mdc.Code,
    sub: str,
    *,
    vtype: str = "",
    value: str = "",
    unit: mdc.Code | None = None,
    ref_range: str = "",
    flags: str = "",
    status: str = "R",
    t: float | None = None,
    eui: str = "",
) -> None:
    ob = oo.add_group("ORU_R01_OBSERVATION")
    x = ob.obx
    x.obx_1 = str(n)
    if vtype:
        x.obx_2 = vtype
    x.obx_3 = code.cwe
    x.obx_4 = sub
    if value:
        x.obx_5 = value
    if unit is not None:
        x.obx_6 = unit.cwe
    if ref_range:
        x.obx_7 = ref_range
    if flags:
        x.obx_8 = flags
    x.obx_11 = status
    if t is not None:
        x.obx_14 = hl7_time(t)
    if eui:
        x.obx_18 = f"{eui}^EUI-64"


def pcd01(chair: Chair, now: float, *, with_nibp: bool) -> str | None:
    """An ORU^R01 with the chair's current SpO2 and pulse rate (if received within
    FRESH_S) and, with ``with_nibp``, its last NIBP result. None: nothing to report."""
    eui = eui64(chair.chair_id)
    oxi = chair.oxi if chair.oxi is not None and now - chair.oxi_rx <= FRESH_S else None
    ox_vals = {}
    if oxi is not None:
        for name, fld in (("spo2", "spo2"), ("pr", "pr")):
            v = _num(oxi.get(fld))
            if v is not None:
                ox_vals[name] = v
    nibp = chair.nibp if with_nibp else None
    nibp_vals = {}
    if nibp is not None:
        for name, fld in (
            ("nibp_sys", "sys"),
            ("nibp_dia", "dia"),
            ("nibp_mean", "map"),
            ("nibp_pr", "pr"),
        ):
            v = _num(nibp.get(fld))
            if v is not None:
                nibp_vals[name] = v
    if not ox_vals and not nibp_vals:
        return None
    m, oo = _message(chair, "pcd01", now)
    oo.obr.obr_1 = "1"
    oo.obr.obr_3 = f"{m.msh.msh_10.to_er7()}^{SENDING_APP}^{eui}^EUI-64"
    oo.obr.obr_4 = MONITORING
    oo.obr.obr_7 = hl7_time(chair.oxi_rx if ox_vals else chair.nibp_rx)
    n = 1
    _obx(oo, n, mdc.MDS, "1.0.0.0", status="X", eui=eui)
    if ox_vals:
        n += 1
        _obx(oo, n, mdc.VMD_PULS_OXIM, "1.1.0.0", status="X")
        n += 1
        _obx(oo, n, mdc.CHAN_PULS_OXIM, "1.1.1.0", status="X")
        for i, name in enumerate(("spo2", "pr"), start=1):
            if name in ox_vals:
                met = mdc.METRICS[name]
                n += 1
                _obx(
                    oo,
                    n,
                    met.code,
                    f"1.1.1.{i}",
                    vtype="NM",
                    value=ox_vals[name],
                    unit=met.unit,
                    t=chair.oxi_rx,
                    eui=eui,
                )
    if nibp_vals:
        assert nibp is not None
        taken = chair.nibp_rx - (_float(nibp.get("age_s")) or 0.0)
        n += 1
        _obx(oo, n, mdc.VMD_NIBP, "1.2.0.0", status="X")
        n += 1
        _obx(oo, n, mdc.METRICS["nibp"].code, "1.2.1.0", status="X", t=taken)
        for i, name in enumerate(("nibp_sys", "nibp_dia", "nibp_mean", "nibp_pr"), start=1):
            if name in nibp_vals:
                met = mdc.METRICS[name]
                n += 1
                _obx(
                    oo,
                    n,
                    met.code,
                    f"1.2.1.{i}",
                    vtype="NM",
                    value=nibp_vals[name],
                    unit=met.unit,
                    t=taken,
                    eui=eui,
                )
    return _finish(m)


def _float(x: Any) -> float | None:
    v = _num(x)
    return None if v is None else float(v)


def alarm_text(msg: dict[str, Any]) -> str:
    """``SPO2_LOW 86<90`` style: the condition, the value and the limit it crossed."""
    cond = str(msg.get("condition"))
    v, lim = _num(msg.get("value")), _num(msg.get("limit"))
    if v is None or lim is None:
        return cond
    op = "<" if float(v) < float(lim) else ">"
    return f"{cond} {v}{op}{lim}"


def pcd04(chair: Chair, msg: dict[str, Any], now: float, event_time: float, alert_id: str) -> str:
    """An ORU^R40 for one alarm event of the device (docs/protocol.md ``alarm``); ``alert_id``
    names the alarm occurrence (the same for its start, updates and end: OBR-3)."""
    cond = msg.get("condition")
    event = msg.get("event")
    if not isinstance(cond, str) or event not in PHASE or msg.get("state") not in STATE:
        raise Hl7BuildError(f"not a reportable alarm event: {msg!r}"[:200])
    eui = eui64(chair.chair_id)
    state, inactivation = STATE[str(msg["state"])]
    flags = [
        f for f in (PRIORITY.get(str(msg.get("priority"))), KIND.get(str(msg.get("kind")))) if f
    ]
    m, oo = _message(chair, "pcd04", now)
    m.msh.msh_9 = TYPE_PCD01  # validated as the ORU_R01 structure (hl7apy has no ORU_R40)
    oo.obr.obr_1 = "1"
    oo.obr.obr_3 = f"{_esc(alert_id)}^{SENDING_APP}^{eui}^EUI-64"
    oo.obr.obr_4 = mdc.EVT_ALARM.cwe
    oo.obr.obr_7 = hl7_time(event_time)
    local = f"{mdc.EVT_ALARM.cwe}^{_esc(cond)}^{_esc(cond)}^99BEDSIDE"
    n = 1
    ob = oo.add_group("ORU_R01_OBSERVATION")
    x = ob.obx
    x.obx_1 = str(n)
    x.obx_2 = "ST"
    x.obx_3 = local
    x.obx_4 = "1.0.0.0.1"
    x.obx_5 = _esc(alarm_text(msg))
    for f in flags:  # priority ~ alert type (repetitions of OBX-8)
        x.add_field("OBX_8").value = f
    x.obx_11 = "F"
    x.obx_14 = hl7_time(event_time)
    x.obx_18 = f"{eui}^EUI-64"
    metric = mdc.CONDITION_METRIC.get(cond)
    value = _num(msg.get("value"))
    if metric is not None and value is not None:
        met = mdc.METRICS[metric]
        lim = _num(msg.get("limit"))
        n += 1
        _obx(
            oo,
            n,
            met.code,
            "1.0.0.0.2",
            vtype="NM",
            value=value,
            unit=met.unit,
            ref_range=("" if lim is None else _limit_range(float(value), lim)),
            status="F",
            t=event_time,
            eui=eui,
        )
    for code, val in (
        (mdc.ATTR_EVENT_PHASE, PHASE[str(event)]),
        (mdc.ATTR_ALARM_STATE, state),
        (mdc.ATTR_ALARM_INACTIVATION_STATE, inactivation),
    ):
        n += 1
        _obx(oo, n, code, f"1.0.0.0.{n}", vtype="ST", value=val, status="F")
    text = _finish(m)
    return text.replace(TYPE_PCD01, TYPE_PCD04, 1)


def _limit_range(value: float, lim: str) -> str:
    """OBX-7 for the crossed limit: ``>=90`` style (HL7 v2.6 reference range text)."""
    return f">={lim}" if value < float(lim) else f"<={lim}"


def _finish(m: Message) -> str:
    try:
        m.validate()
    except Exception as e:  # hl7apy raises its own ValidationError family
        raise Hl7BuildError(f"hl7apy rejects the message: {e}") from None
    text: str = m.to_er7()
    problems = check(text)
    if problems:
        raise Hl7BuildError("; ".join(problems))
    return text + "\r"


def check(text: str) -> list[str]:
    """IHE PCD rules hl7apy does not check: profile id, OBX-4 and OBX-11 everywhere, a numeric
    OBX-5 for NM, OBX-11 in table 0085, OBX-18 on the first OBX, no known-wrong MDC code.
    Returns the problems (empty: fine)."""
    out = []
    segs = [s for s in text.replace("\n", "\r").split("\r") if s]
    if not segs or not segs[0].startswith("MSH|"):
        return ["no MSH segment"]
    msh = segs[0].split("|")
    if len(msh) < 21 or msh[20] not in (PROFILE_PCD01, PROFILE_PCD04):
        out.append("MSH-21 is not an IHE PCD profile")
    obx = [s.split("|") for s in segs if s.startswith("OBX|")]
    if not obx:
        out.append("no OBX segment")
    for i, f in enumerate(obx, start=1):
        f += [""] * (19 - len(f))
        if f[1] != str(i):
            out.append(f"OBX {i}: OBX-1 is {f[1]!r}")
        if not f[4]:
            out.append(f"OBX {i}: no OBX-4 (containment)")
        if f[11] not in TABLE_0085:
            out.append(f"OBX {i}: OBX-11 {f[11]!r} not in table 0085")
        if f[2] == "NM":
            try:
                if not math.isfinite(float(f[5])):
                    raise ValueError
            except ValueError:
                out.append(f"OBX {i}: NM value {f[5]!r} is not a number")
        code = f[3].split("^", 1)[0]
        if code.isdigit() and int(code) in mdc.KNOWN_WRONG:
            out.append(f"OBX {i}: MDC code {code}: {mdc.KNOWN_WRONG[int(code)]}")
    if obx and not obx[0][18]:
        out.append("OBX 1: no OBX-18 (equipment instance id)")
    return out


def validate(text: str) -> list[str]:
    """Parse strictly with hl7apy (ORU^R40 as the ORU_R01 structure it shares) and apply
    :func:`check`; the problems, or an empty list."""
    er7 = text.replace("\n", "\r").strip("\r")
    try:
        m = parse_message(
            er7.replace(TYPE_PCD04, TYPE_PCD01, 1),
            validation_level=VALIDATION_LEVEL.STRICT,
            find_groups=True,
        )
        m.validate()
    except Exception as e:
        return [f"hl7apy: {e}"]
    return check(er7)
