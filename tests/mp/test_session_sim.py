# test_session_sim.py: a whole titrated 4-hour infusion with 1 h recovery through the device in
# virtual time, on the lean rig (NIBP readings handed over at the session's interval), so it
# runs on MicroPython's Pico-sized heap too (tests/test_session_nibp.py: with the NIBP driver).
from sessdev import Rig, Store, to_infusion

MIN = 60


def test_full_titrated_infusion_and_recovery_on_the_device():
    """REQ-SES-28: baseline, 4 h of infusion titrated up and down (O2 for a while), a check
    every 15 min (one late: CHECK_OVERDUE; one deep score: SEDATION_DEEP), stop, 1 h recovery,
    discharge refused until every criterion holds, then discharge_ready and close; the phase,
    timers and NIBP interval follow in the state object and heartbeat."""
    r = Rig(store=Store(logs=False))
    r.keep_n = 12
    to_infusion(r)
    r.bp_every_s = 0  # readings at the session's own interval
    assert r.op("dose", rate=10, units="mg/h", reason="start")["ok"]
    assert r.state()["nibp_interval_s"] == 300
    for q in range(16):
        r.sec(14 * MIN + 50)
        if q == 5:
            r.sec(6 * MIN)
            assert r.alarms("CHECK_OVERDUE")
            r.press("check")
            r.sec(10)
            assert r.alarms("CHECK_OVERDUE")[-1]["event"] == "end"
            continue
        score = 2 if q == 9 else 5 if q % 2 else 4
        assert r.op("check", score=score)["ok"]
        if q == 9:
            r.sec(1)
            assert r.alarms("SEDATION_DEEP")[-1]["event"] == "raise"
        if q == 10:
            r.sec(1)
            assert r.alarms("SEDATION_DEEP")[-1]["event"] == "end"
        if q in (1, 3, 7):
            assert r.op("dose", rate=10 + 5 * q, units="mg/h", reason="pain")["ok"]
        if q == 10:
            assert r.op("dose", rate=20, units="mg/h", reason="side_effect")["ok"]
            assert r.op("o2", on=True, flow=2)["ok"]
        if q == 12:
            assert r.op("o2", on=False)["ok"]
        if q == 5 or q == 12:
            assert r.state()["nibp_interval_s"] == 900
        r.sec(10)
    st = r.state()
    assert st["phase"] == "infusion" and 4 * 3600 - 60 <= st["infusion_s"] <= 4 * 3600 + 600
    assert st["dose"] == {"rate": 20, "units": "mg/h"} and st["o2"] == {"on": False, "flow": None}
    assert r.op("stop")["ok"] and r.last_hb["phase"] in ("infusion", "recovery")
    r.sec(30 * MIN)
    assert r.op("check", score=5)["ok"]
    a = r.op("discharge", aldrete=10, padss=10)
    assert not a["ok"] and [c["name"] for c in a["criteria"] if not c["ok"]] == ["recovery_time"]
    a = None  # (a Pico-sized heap)
    for _ in range(2):
        r.sec(14 * MIN + 50)
        assert r.op("check", score=5)["ok"]
    r.sec(2 * MIN)
    a = r.op("discharge", aldrete=10, padss=9)
    assert a["ok"], a
    assert a["session"]["phase"] == "discharge_ready" and a["session"]["recovery_s"] >= 3600
    a = r.op("close", escort="Sam Doe", relationship="partner", advice=True)
    assert a["ok"] and a["session"]["phase"] == "closed"
    r.sec(2)
    assert r.last_hb["phase"] == "closed" and r.dev.obs.bp_baseline_sys == -1
    assert not r.alarms("NIBP_OVERDUE") and r.last_hb["active"] == []
