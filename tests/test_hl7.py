"""HL7 v2 (IHE PCD-01/PCD-04) over MLLP: the MDC table, the messages (hl7apy strict plus the
PCD rules), the bridge, ACK handling, retry and the dead-letter file (REQ-HL7)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside_host.hl7 import mdc, messages
from bedside_host.hl7.bridge import Hl7Bridge
from bedside_host.hl7.mllp import Sender
from mllplistener import MllpListener

NOW = 1_796_300_000.0


@pytest.fixture
def listener() -> Iterator[MllpListener]:
    li = MllpListener()
    yield li
    li.close()


def _until(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _segs(text: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in text.split("\r") if s.startswith(name + "|")]


def _chair() -> messages.Chair:
    return messages.Chair(
        "clinic1/c1",
        patient="P-17",
        oxi={"type": "oxi", "spo2": 97, "pr": 72},
        oxi_rx=NOW - 1,
        nibp={"type": "nibp", "sys": 121, "dia": 79, "map": 93, "pr": 70, "age_s": 3},
        nibp_rx=NOW - 1,
    )


def _alarm(event: str, state: str, **kw: Any) -> dict[str, Any]:
    msg = {
        "v": 2,
        "seq": 10,
        "boot": 3,
        "type": "alarm",
        "t_ms": 5000,
        "condition": "SPO2_LOW",
        "priority": "high",
        "kind": "physiological",
        "state": state,
        "event": event,
        "value": 86,
        "limit": 90,
    }
    msg.update(kw)
    return msg


def test_mdc_table() -> None:
    """REQ-HL7-01: the IEEE 11073 MDC codes live in one table with the verified values (SpO2
    150456, oximeter pulse rate 149530, NIBP 150020/150021/150022/150023, NIBP pulse 149546,
    units 262688/264864/266016); the wrong codes of public examples are never in it, and the
    cuff-pressure variants are accepted when parsing."""
    want = {
        "spo2": (150456, "MDC_PULS_OXIM_SAT_O2", 262688),
        "pr": (149530, "MDC_PULS_OXIM_PULS_RATE", 264864),
        "nibp": (150020, "MDC_PRESS_BLD_NONINV", None),
        "nibp_sys": (150021, "MDC_PRESS_BLD_NONINV_SYS", 266016),
        "nibp_dia": (150022, "MDC_PRESS_BLD_NONINV_DIA", 266016),
        "nibp_mean": (150023, "MDC_PRESS_BLD_NONINV_MEAN", 266016),
        "nibp_pr": (149546, "MDC_PULS_RATE_NON_INV", 264864),
    }
    got = {
        n: (m.code.code, m.code.ref, m.unit.code if m.unit else None)
        for n, m in mdc.METRICS.items()
    }
    assert got == want
    codes = [m.code.code for m in mdc.METRICS.values()]
    assert len(set(codes)) == len(codes)
    assert not set(codes) & set(mdc.KNOWN_WRONG)
    assert {150457, 150017, 150018} <= set(mdc.KNOWN_WRONG)
    assert (mdc.PERCENT.code, mdc.BEAT_PER_MIN.code, mdc.MMHG.code) == (262688, 264864, 266016)
    assert mdc.metric_of_code(150301) == "nibp_sys" and mdc.metric_of_code(150456) == "spo2"
    assert mdc.EVT_ALARM.code == 196616 and mdc.ATTR_EVENT_PHASE.code == 68481
    # every condition mapped to a metric names one in the table
    assert set(mdc.CONDITION_METRIC.values()) <= set(mdc.METRICS)


def test_pcd01_message_valid_and_complete() -> None:
    """REQ-HL7-02: a PCD-01 ORU^R01 is HL7 v2.6 that hl7apy accepts strictly and passes the
    PCD checks: IHE profile in MSH-21, the MDS/VMD/channel containment in OBX-4, OBX-18 on
    the MDS, SpO2/PR/NIBP with their MDC codes and units, the patient and the chair."""
    text = messages.pcd01(_chair(), NOW, with_nibp=True)
    assert text is not None
    assert messages.validate(text) == []
    msh = _segs(text, "MSH")[0]
    assert msh[8] == "ORU^R01^ORU_R01" and msh[11] == "2.6"
    assert msh[20] == messages.PROFILE_PCD01
    assert _segs(text, "PID")[0][3].startswith("P-17^")
    assert _segs(text, "PV1")[0][3] == "clinic1^^c1"
    obx = _segs(text, "OBX")
    assert obx[0][3].startswith("69965^") and obx[0][4] == "1.0.0.0" and obx[0][18]
    values = {o[3].split("^")[0]: (o[5], o[6].split("^")[0], o[4]) for o in obx if o[2] == "NM"}
    assert values == {
        "150456": ("97", "262688", "1.1.1.1"),
        "149530": ("72", "264864", "1.1.1.2"),
        "150021": ("121", "266016", "1.2.1.1"),
        "150022": ("79", "266016", "1.2.1.2"),
        "150023": ("93", "266016", "1.2.1.3"),
        "149546": ("70", "264864", "1.2.1.4"),
    }
    assert any(o[3].startswith("150020^") and o[11] == "X" for o in obx)
    # the periodic report without NIBP; stale vitals are not reported as current
    periodic = messages.pcd01(_chair(), NOW, with_nibp=False)
    assert periodic is not None and "150021^" not in periodic
    assert messages.pcd01(_chair(), NOW + 60, with_nibp=False) is None


def test_pcd_checks_catch_what_hl7apy_does_not() -> None:
    """REQ-HL7-02: the PCD checks find a non-numeric NM value, an OBX-11 outside table 0085,
    a missing OBX-4, a known-wrong MDC code and a missing profile id."""
    text = messages.pcd01(_chair(), NOW, with_nibp=False)
    assert text is not None
    bad = text.replace("|97|", "|9x7|").replace("|1.1.1.2|72|", "|1.1.1.2|72|")
    assert any("not a number" in p for p in messages.check(bad))
    assert any(
        "table 0085" in p for p in messages.check(text.replace("|||||R|||", "|||||Q|||", 1))
    )
    assert any("OBX-4" in p for p in messages.check(text.replace("|1.1.1.1|", "||")))
    assert any("150457" in p for p in messages.check(text.replace("149530^", "150457^")))
    assert any("MSH-21" in p for p in messages.check(text.replace(messages.PROFILE_PCD01, "")))


def test_pcd04_alarm_events() -> None:
    """REQ-HL7-03: each alarm event becomes a valid PCD-04 ORU^R40 (ACM profile): the alert
    text with value and limit ("SPO2_LOW 86<90"), priority and alert type in OBX-8, the
    SpO2 observation with the crossed limit, and the event phase, alarm state and
    inactivation state facets mapped from the device's event and state."""
    cases = [
        ("raise", "active", "start", "active", "enabled"),
        ("ack", "audio_paused", "update", "active", "audio-paused"),
        ("escalate", "active", "escalate", "active", "enabled"),
        ("end", "latched", "end", "latched", "enabled"),
        ("reset", "inactive", "end", "inactive", "enabled"),
    ]
    for event, state, phase, acm_state, inact in cases:
        text = messages.pcd04(_chair(), _alarm(event, state), NOW, NOW - 2, "SPO2_LOW-3-5000")
        assert messages.validate(text) == [], (event, messages.validate(text))
        assert _segs(text, "MSH")[0][8] == "ORU^R40^ORU_R40"
        assert _segs(text, "MSH")[0][20] == messages.PROFILE_PCD04
        obr = _segs(text, "OBR")[0]
        assert obr[3].startswith("SPO2_LOW-3-5000^") and obr[4].startswith("196616^")
        obx = _segs(text, "OBX")
        assert obx[0][5] == "SPO2_LOW 86<90" and obx[0][8] == "PH~SP"
        assert obx[1][3].startswith("150456^") and obx[1][5] == "86" and obx[1][7] == ">=90"
        facets = {o[3].split("^")[0]: o[5] for o in obx[2:]}
        assert facets == {"68481": phase, "68482": acm_state, "68483": inact}, event
    tech = messages.pcd04(
        _chair(),
        _alarm(
            "raise",
            "active",
            condition="OXI_SENSOR_OFF",
            kind="technical",
            priority="low",
            value=None,
            limit=None,
        ),
        NOW,
        NOW,
        "x",
    )
    assert messages.validate(tech) == []
    assert _segs(tech, "OBX")[0][8] == "PL~ST" and len(_segs(tech, "OBX")) == 4
    with pytest.raises(messages.Hl7BuildError):
        messages.pcd04(_chair(), _alarm("bogus", "active"), NOW, NOW, "x")


def test_bridge_sends_over_mllp(listener: MllpListener, tmp_path: Path) -> None:
    """REQ-HL7-04, REQ-HL7-03: the bridge, fed with the station's on_message calls, sends a
    PCD-01 at once on an NIBP result, a PCD-04 for each alarm state change (start and end
    sharing one occurrence id) and a periodic PCD-01 per chair; the listener validates each
    with hl7apy and answers AA; nothing is dead-lettered."""
    sender = Sender(listener.url, tmp_path / "dead.jsonl", backoff_min=0.05)
    bridge = Hl7Bridge(sender, period_s=0.5).start()
    try:
        t = time.time()
        bridge.on_message("clinic1/c1", {"type": "oxi", "spo2": 97, "pr": 72}, t)
        bridge.on_message("clinic1/c2", {"type": "oxi", "spo2": 95, "pr": 80}, t)
        bridge.on_message(
            "clinic1/c1",
            {"type": "nibp", "sys": 120, "dia": 80, "map": 93, "pr": 70, "age_s": 1},
            t,
        )
        bridge.on_message("clinic1/c1", _alarm("raise", "active"), t)
        bridge.on_message("clinic1/c1", _alarm("end", "inactive", t_ms=9000), t + 1)
        for _ in range(8):  # the vitals stay current
            time.sleep(0.15)
            for c in ("clinic1/c1", "clinic1/c2"):
                bridge.on_message(c, {"type": "oxi", "spo2": 96, "pr": 71}, time.time())

        def enough() -> bool:
            r01 = listener.texts("ORU^R01")
            return len(listener.texts("ORU^R40")) == 2 and len(r01) >= 4

        assert _until(enough, 10), [g.text[:80] for g in listener.got]
    finally:
        bridge.stop()
    assert all(g.problems == [] for g in listener.got), [g.problems for g in listener.got]
    r40 = listener.texts("ORU^R40")
    ids = {_segs(x, "OBR")[0][3] for x in r40}
    assert len(ids) == 1  # start and end of one occurrence
    r01 = listener.texts("ORU^R01")
    assert "150021^" in r01[0]  # the NIBP result went out at once, first
    beds = {_segs(x, "PV1")[0][3] for x in r01}
    assert beds == {"clinic1^^c1", "clinic1^^c2"}
    assert not (tmp_path / "dead.jsonl").exists()
    assert bridge.sent["pcd04"] == 2


def _dead(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dead_letters_on_ae_ar_and_no_listener(tmp_path: Path) -> None:
    """REQ-HL7-05: an AE or AR answer dead-letters the message at once with the receiver's
    reason (no retry); a receiver that does not answer, or is down, is retried with backoff
    up to the attempt limit, then the message is dead-lettered; once the receiver is back
    the next message is delivered."""
    dead = tmp_path / "dead.jsonl"
    text = messages.pcd01(_chair(), NOW, with_nibp=True)
    assert text is not None
    for code in ("AE", "AR"):
        li = MllpListener(code)
        try:
            r = Sender(li.url, dead, backoff_min=0.01).send(text)
        finally:
            li.close()
        assert (r.delivered, r.dead, r.attempts) == (False, True, 1)
        assert f"answered {code}" in r.reason
    silent = MllpListener("silent")
    try:
        s = Sender(silent.url, dead, max_attempts=3, backoff_min=0.01, timeout=0.3)
        r = s.send(text)
        end = time.monotonic() + 30  # the listener's thread may lag the sender on a busy machine
        while len(silent.got) < 3 and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        silent.close()
    assert (r.delivered, r.dead, r.attempts) == (False, True, 3)
    assert len(silent.got) == 3 and s.retries == 2
    down = MllpListener()
    url = down.url
    down.close()  # nothing listens on that port now
    r = Sender(url, dead, max_attempts=2, backoff_min=0.01).send(text)
    assert (r.delivered, r.dead, r.attempts) == (False, True, 2) and "no ACK" in r.reason
    recs = _dead(dead)
    assert [x["attempts"] for x in recs] == [1, 1, 3, 2]
    assert all(x["message"] == text and x["control_id"] for x in recs)
    assert "ERR" in recs[0]["reason"] or "AE" in recs[0]["reason"]
    back = MllpListener()
    try:
        assert Sender(back.url, dead).send(text).delivered
    finally:
        back.close()
    assert len(_dead(dead)) == 4
