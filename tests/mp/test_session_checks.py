# test_session_checks.py: responsiveness checks through the device: the reminder (information
# signal, not an alarm), CHECK_OVERDUE and its escalation, the CHECK key, SEDATION_DEEP, and the
# key sequences for a score and for infusion start/stop (CPython and MicroPython).
from sessdev import Rig, to_infusion


def test_reminder_is_an_information_signal_not_an_alarm():
    """REQ-SES-20: when a check falls due the device sends a `reminder` session event, sounds
    one information pulse and shows CHK DUE; no alarm condition starts until the grace
    period has passed."""
    r = Rig()
    to_infusion(r)
    r.sec(890)
    tones = r.quiet.tones
    assert not r.events("reminder") and tones == 0
    r.sec(15)
    assert r.events("reminder") and r.quiet.tones == 1  # one soft pulse
    assert r.dev.sessctl.text == "INFU CHK DUE" and not r.alarms()
    assert r.last_hb["active"] == []


def test_overdue_raises_check_overdue_low_then_medium_and_check_key_ends_it():
    """REQ-SES-21: not checked check_grace_min after it fell due: CHECK_OVERDUE (LOW) and an
    `overdue` event; after check_escalate_s more it escalates to MEDIUM; the CHECK key records
    a check (session event check, by keys) and ends it."""
    r = Rig()
    to_infusion(r)
    r.sec(900 + 299)
    assert not r.alarms("CHECK_OVERDUE")
    r.sec(2)
    raised = r.alarms("CHECK_OVERDUE")
    assert raised and raised[0]["priority"] == "low" and r.events("overdue")
    r.sec(298)
    assert not [m for m in r.alarms("CHECK_OVERDUE") if m["event"] == "escalate"]
    r.sec(3)
    esc = [m for m in r.alarms("CHECK_OVERDUE") if m["event"] == "escalate"]
    assert esc and esc[0]["priority"] == "medium"
    r.press("check")
    r.sec(1)
    assert r.alarms("CHECK_OVERDUE")[-1]["event"] == "end"
    m = r.events("check")[-1]
    assert m["by"] == "keys" and r.state()["last_check"]["score"] is None
    assert r.state()["check_due_s"] > 890


def test_sedation_deep_by_command_priority_setting_and_end():
    """REQ-SES-22: a MOAA/S score at or below sedation_score_max (`session check`) raises
    SEDATION_DEEP at the sedation_priority setting (default MEDIUM); a later score above it
    ends it."""
    r = Rig()
    to_infusion(r)
    assert r.op("check", score=2)["ok"]
    r.sec(1)
    a = r.alarms("SEDATION_DEEP")
    assert a and a[0]["priority"] == "medium" and a[0]["limit"] == 2
    assert r.op("check", score=4)["ok"]
    r.sec(1)
    assert r.alarms("SEDATION_DEEP")[-1]["event"] == "end"
    r.dev.settings.set("sedation_priority", "high", 1)
    assert r.op("check", score=1)["ok"]
    r.sec(1)
    assert r.alarms("SEDATION_DEEP")[-1]["priority"] == "high"


def test_score_by_key_sequence():
    """REQ-SES-23: CHECK held (long press) opens score entry; each NIBP press chooses 5, 4,
    ... 0; a CHECK press confirms the chosen score; CHECK before any choice records nothing;
    the entry is cancelled by ACK or after 10 s; NIBP presses in it start no measurement."""
    r = Rig()
    to_infusion(r)
    r.press("check_hold")
    assert r.dev.sessctl.text == "MOAA/S ? CHK=OK"
    r.press("check")  # nothing chosen yet: not a check
    assert not r.events("check")
    for _ in range(4):
        r.press("nibp")
    assert r.dev.sessctl.text == "MOAA/S 2 CHK=OK"
    r.press("check")
    m = r.events("check")[-1]
    assert m["by"] == "keys" and r.state()["last_check"]["score"] == 2
    r.sec(1)
    assert r.alarms("SEDATION_DEEP")
    r.press("check_hold")
    r.press("nibp")
    r.sec(11)  # not confirmed: cancelled
    assert r.dev.sessctl.text.startswith("INFU") and len(r.events("check")) == 1
    r.press("check_hold")
    r.press("nibp")
    r.press("ack")  # cancels the entry (and acknowledges alarms as always)
    r.press("check")
    assert r.events("check")[-1]["by"] == "keys"  # a plain check, no score
    assert r.state()["last_check"]["score"] is None


def test_infusion_start_and_stop_by_key_sequence():
    """REQ-SES-24: NIBP held (long press) asks START? (baseline accepted) or STOP? (infusion);
    only a CHECK press within 10 s confirms; a NIBP press or the timeout cancels; a hold in
    another phase does nothing."""
    r = Rig()
    assert r.op("open", patient="P", course_day=1, course_total=1)["ok"]
    r.press("nibp_hold")  # screening: nothing
    assert r.dev.sessctl.text == "SCREEN"
    r.op("screened")
    r.reading((120, 80, 93, 72))
    r.sec(185)
    r.reading((122, 80, 94, 72))
    assert r.op("baseline", action="accept")["ok"]
    r.press("nibp_hold")
    assert r.dev.sessctl.text == "START? CHECK=YES"
    r.press("nibp")  # cancels
    r.press("check")
    assert r.state()["phase"] == "baseline"
    r.press("nibp_hold")
    r.sec(11)  # timed out
    r.press("check")
    assert r.state()["phase"] == "baseline"
    r.press("nibp_hold")
    r.press("check")
    assert r.state()["phase"] == "infusion" and r.events("start")[-1]["by"] == "keys"
    r.sec(5)
    r.press("nibp_hold")
    assert r.dev.sessctl.text == "STOP? CHECK=YES"
    r.press("check")
    assert r.state()["phase"] == "recovery" and r.events("stop")[-1]["by"] == "keys"


def test_sessionops_released_after_each_op():
    """REQ-SES-32: the op rules (bedside.sessionops, and sessionrec for a discharge) are
    imported for an op and released after it, by command and by key: between ops they take no
    RAM."""
    import sys

    r = Rig()
    to_infusion(r)
    assert "bedside.sessionops" not in sys.modules
    r.press("check")
    assert "bedside.sessionops" not in sys.modules and r.events("check")
    assert r.op("dose", rate=-5, units="mg/h", reason="pain")["ok"] is False
    assert "bedside.sessionops" not in sys.modules
    assert r.op("stop")["ok"] and r.op("discharge", aldrete=9, padss=9)["ok"] is False
    assert "bedside.sessionops" not in sys.modules and "bedside.sessionrec" not in sys.modules


def test_keys_without_a_session_behave_as_before():
    """REQ-SES-36: with no session loaded the keys do what they always did: CHECK and the
    holds touch nothing, and the session code stays unloaded."""
    r = Rig()
    for k in ("check", "check_hold", "nibp_hold"):
        r.press(k)
    assert r.dev.sessctl is None
    presses = [m for m in r.messages if m["type"] == "button"]
    assert [m["affected"] for m in presses] == [0, 0, 0]


def test_ack_during_a_key_sequence_still_acknowledges():
    """REQ-SES-37: ACK in the middle of a key sequence acknowledges the sounding alarm as
    always (and cancels the sequence): a session sequence never stands between the nurse and
    the alarm."""
    r = Rig()
    to_infusion(r)
    r.spo2 = 80
    r.sec(3)
    assert r.alarms("SPO2_DESAT")
    r.press("check_hold")
    r.press("ack")
    acks = [m for m in r.alarms("SPO2_DESAT") if m["event"] == "ack"]
    assert acks and r.dev.sessctl.mode == 0
