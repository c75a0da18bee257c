"""The infusion session with the NIBP driver and a scripted SunTech module (tests/mp/sesskit.py):
baseline readings on request (STAT), BP_RISE against the session baseline, the NIBP schedule
per phase, and a whole titrated 4-hour infusion with 1 h recovery in virtual time.

CPython only: the NIBP driver and the session code together do not fit beside a test harness
on the 64-bit MicroPython unix port's 192 KiB heap (docs/session.md "Memory"); the same
session runs there without the driver in tests/mp/test_session_*.py.
"""

from __future__ import annotations

from typing import Any

from sesskit import nibp_rig, take_bp

MIN = 60


def _starts_s(r: Any, since: int) -> list[int]:
    """Seconds (from the rig's start) of the NIBP cycles started after t=since (s)."""
    m = r.nibp_module
    out = []
    for at in m.start_times:
        d = (r.now - at) & ((1 << 30) - 1)
        s = (r.t - d) // 1000
        if s > since:
            out.append(s)
    return out


def _to_infusion(r: Any) -> None:
    assert r.op("open", patient="P-7", course_day=2, course_total=5)["ok"]
    assert r.op("screened")["ok"]
    take_bp(r, (118, 78, 91, 70))
    r.sec(3 * MIN)
    take_bp(r, (126, 82, 97, 74))
    assert len(r.events("baseline_reading")) == 2
    a = r.op("baseline", action="accept")
    assert a["ok"], a
    assert a["session"]["baseline"]["sys"] == 122
    assert r.op("start")["ok"]


def test_bp_rise_on_the_session_baseline_only() -> None:
    """REQ-SES-25: BP_RISE compares with the accepted session baseline; with no session the
    first BP after power-up is no baseline (a later +55 % raises nothing), and after close
    BP_RISE is off again."""
    r = nibp_rig()
    r.nibp_module.bp = (110, 70, 83, 70)
    r.cmd({"cmd": "nibp", "action": "start"})
    r.run(25000)
    r.nibp_module.bp = (170, 90, 117, 80)
    r.cmd({"cmd": "nibp", "action": "start"})
    r.run(60000)
    assert not r.alarms("BP_RISE")
    _to_infusion(r)  # baseline 122: 30 % over is 158.6
    r.nibp_module.bp = (158, 90, 113, 80)
    r.sec(5 * MIN + 30)
    assert not r.alarms("BP_RISE")
    r.nibp_module.bp = (160, 92, 115, 82)
    r.sec(5 * MIN)
    rise = r.alarms("BP_RISE")
    assert rise and rise[0]["event"] == "raise" and rise[0]["limit"] == 158, rise
    assert r.dev.obs.bp_baseline_sys == 122
    r.dev.sessctl.sess._to(6)  # closed (the discharge path: test_session.py)
    r.dev.sessctl.sync(r.now)
    assert r.dev.obs.bp_baseline_sys == -1  # off


def test_nibp_schedule_per_phase_on_the_device() -> None:
    """REQ-SES-26: the device starts NIBP cycles every nibp_first_min (5 min) in the first
    hour of the infusion and for 15 min after a dose increase, every nibp_infusion_min (15)
    otherwise, every nibp_recovery_min (15) in recovery; STAT on request; never closer than
    nibp_min_gap_s."""
    r = nibp_rig()
    _to_infusion(r)
    t0 = r.t // 1000
    r.sec(60 * MIN, tick=500)
    gaps = _gaps(_starts_s(r, t0))
    assert len(gaps) >= 10 and all(290 <= g <= 310 for g in gaps), gaps
    t1 = r.t // 1000
    r.sec(45 * MIN, tick=500)
    gaps = _gaps(_starts_s(r, t1 - 1))
    assert gaps and all(890 <= g <= 910 for g in gaps[1:]), gaps
    assert r.op("dose", rate=20, units="mg/h", reason="pain")["ok"]
    t2 = r.t // 1000
    r.sec(16 * MIN, tick=500)
    starts = _starts_s(r, t2)
    assert len(starts) >= 2 and all(g <= 310 for g in _gaps(starts)), starts
    assert r.op("stop")["ok"]
    t3 = r.t // 1000
    r.sec(35 * MIN, tick=500)
    gaps = _gaps(_starts_s(r, t3))
    assert gaps and all(890 <= g <= 910 for g in gaps), gaps
    n = r.nibp_module.starts
    assert r.cmd({"cmd": "nibp", "action": "start"})["ok"]  # STAT
    r.sec(25)
    assert r.nibp_module.starts == n + 1
    assert r.cmd({"cmd": "nibp", "action": "start"})["ok"]  # within the minimum gap: waits
    r.run(5000)
    assert r.nibp_module.starts == n + 1
    r.sec(35)
    assert r.nibp_module.starts == n + 2


def _gaps(starts: list[int]) -> list[int]:
    return [starts[i + 1] - starts[i] for i in range(len(starts) - 1)]


def test_full_titrated_infusion_and_recovery_in_virtual_time() -> None:
    """REQ-SES-27: a whole session in virtual time: baseline, a 4-hour infusion titrated up
    and down (with O2 for a while), a check every 15 min (one late: CHECK_OVERDUE, one deep
    score: SEDATION_DEEP), stop, 1 h recovery, discharge refused until every criterion holds,
    then discharge_ready and close; every NIBP interval kept and no NIBP_OVERDUE."""
    r = nibp_rig()
    _to_infusion(r)
    assert r.op("dose", rate=10, units="mg/h", reason="start")["ok"]
    for q in range(16):  # 16 quarters of an hour = 4 h
        r.sec(14 * MIN + 50, tick=500)
        if q == 5:
            r.sec(6 * MIN, tick=500)  # this check is late: overdue
            assert r.alarms("CHECK_OVERDUE")
            r.press("check")
            r.sec(10)
            continue
        score = 2 if q == 9 else 5 if q % 2 else 4
        assert r.op("check", score=score)["ok"]
        if q in (1, 3, 7):
            assert r.op("dose", rate=10 + 5 * q, units="mg/h", reason="pain")["ok"]
        if q == 10:
            assert r.op("dose", rate=20, units="mg/h", reason="side_effect")["ok"]
            assert r.op("o2", on=True, flow=2)["ok"]
        if q == 12:
            assert r.op("o2", on=False)["ok"]
        r.sec(10)
    assert r.alarms("SEDATION_DEEP") and r.alarms("SEDATION_DEEP")[-1]["event"] == "end"
    st = r.state()
    assert st["phase"] == "infusion" and 4 * 3600 - 60 <= st["infusion_s"] <= 4 * 3600 + 600
    assert r.op("stop")["ok"]
    r.sec(30 * MIN, tick=500)
    assert r.op("check", score=5)["ok"]
    a = r.op("discharge", aldrete=10, padss=10)
    assert not a["ok"] and "recovery_time" in a["error"], a
    assert [c["name"] for c in a["criteria"] if not c["ok"]] == ["recovery_time"], a
    for _ in range(2):
        r.sec(14 * MIN + 50, tick=500)
        assert r.op("check", score=5)["ok"]
    r.sec(2 * MIN, tick=500)
    a = r.op("discharge", aldrete=10, padss=9)
    assert a["ok"], a
    assert a["session"]["phase"] == "discharge_ready" and a["session"]["recovery_s"] >= 3600
    a = r.op("close", escort="Sam Doe", relationship="partner", advice=True)
    assert a["ok"] and a["session"]["phase"] == "closed"
    assert not r.alarms("NIBP_OVERDUE") and not r.alarms("NIBP_FAILED")
    assert r.nibp_module.starts >= 12 + 4 + 4 + 3  # first hour, after rises, rest, recovery


def test_restart_in_infusion_measures_at_once() -> None:
    """REQ-SES-38: after a restart in infusion the device takes an NIBP reading at once (the
    outage may have been long) and keeps the first-hour interval from the restored timers."""
    r = nibp_rig()
    _to_infusion(r)
    r.sec(10 * MIN, tick=500)
    r.sec(70)  # the record written once a minute; the last cycle long done
    store = r.store
    n_before = r.nibp_module.starts
    assert n_before >= 4
    c = nibp_rig(store=store, reset_cause="watchdog")
    c.run(2000)
    assert c.events("restored") and c.nibp_module.starts == 1  # STAT at once
    assert c.state()["nibp_interval_s"] == 300
