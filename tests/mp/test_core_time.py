# test_core_time.py: time cannot stop local alarming: saturating ages, bounded uptime, the AUDIO
# OFF lease (CPython and MicroPython). Clocks start just below the 2**30 ms wrap.

from bedside.alarms.conditions import P_HIGH
from bedside.ticks import AGE_MAX, Age, ticks_add
from corekit import DAY, bench, cmd


def test_age_saturates_instead_of_wrapping():
    """REQ-CORE-06: ages saturate: a reference older than 2**29 ms is old, never 0 again."""
    t = (1 << 30) - 1000
    a = Age(t)
    for _ in range(20):  # 20 steps of 12 h: 10 days
        t = ticks_add(t, DAY // 2)
        assert a.ms(t) == AGE_MAX or a.ms(t) >= DAY // 2
    assert a.ms(t) == AGE_MAX and a.s(t) == AGE_MAX // 1000
    assert Age().ms(t) == AGE_MAX  # never happened: as old as can be


def test_silent_oximeter_stays_comm_lost_for_a_week():
    """REQ-CORE-06: a silent oximeter's OXI_COMM_LOST never ends by itself (7 days and more in
    big steps); a week-old NIBP reading is shown old, not "0s"."""
    b = bench(types=("alarm",))
    b.run(3000, 72, 97)
    b.run(8000)
    assert b.dev.alarms.state[11]  # OXI_COMM_LOST
    for _ in range(9 * 4):  # 9 days in 6-hour steps
        b.run(DAY // 4, tick=60000)
    assert b.dev.alarms.state[11] and not [
        m for m in b.alarms("OXI_COMM_LOST") if m["event"] == "end"
    ]
    assert b.dev.obs.oxi_rx.ms(b.clock.now) == AGE_MAX


def test_uptime_stays_small_ints():
    """REQ-CORE-07: uptime is kept as seconds + ms (small ints on the Pico past 12.4 days)."""
    b = bench(types=("alarm",))
    for _ in range(15 * 4):  # 15 days in 6-hour steps
        b.run(DAY // 4, tick=60000)
    assert b.dev.up_s >= 15 * 24 * 3600 and b.dev.up_s < (1 << 30)
    assert b.dev._up_ms < 1000
    hb = b.last_hb
    assert hb["t_ms"] >= 14 * DAY and hb["uptime_s"] == hb["t_ms"] // 1000


def test_audio_off_is_a_lease_that_ends_without_the_host():
    """REQ-CORE-05: AUDIO OFF from the host is a lease: it ends when not renewed, and when
    HOST_LINK_LOST is raised; each automatic end is logged and reported."""
    b = bench()
    b.dev.settings.set("audio_off_allowed", 1, 1)
    b.run(2000, 72, 97)
    r = cmd(b, {"cmd": "audio_off", "on": True, "lease_s": 10})
    assert r["ok"] and b.dev.alarms.audio_off
    b.run(1000, 72, 80)  # HIGH desat while AUDIO OFF: silent (reminders only)
    assert b.dev.alarms.audible_priority() == 0
    for _ in range(3):  # the host renews the lease
        b.run(5000, 72, 80)
        assert cmd(b, {"cmd": "audio_off", "on": True, "lease_s": 10})["ok"]
    assert b.dev.alarms.audio_off
    b.run(10500, 72, 80)  # not renewed: the lease runs out
    assert not b.dev.alarms.audio_off and b.dev.alarms.audible_priority() == P_HIGH
    ends = [m for m in b.messages if m["type"] == "audio_off" and not m["on"]]
    assert ends and ends[-1]["reason"] == "lease_expired"
    # a long lease ends when the host goes silent (HOST_LINK_LOST)
    assert cmd(b, {"cmd": "audio_off", "on": True, "lease_s": 300})["ok"]
    b.run(12000, 72, 80)  # host_timeout_s 10: the link is lost
    assert b.alarms("HOST_LINK_LOST") and not b.dev.alarms.audio_off
    ends = [m for m in b.messages if m["type"] == "audio_off" and not m["on"]]
    assert ends[-1]["reason"] == "host_link_lost"
    b.run(500, 72, 80)
    recs = b.dev.elog.reader(0)
    events = []
    while True:
        rec = recs.next()
        if rec is None:
            break
        events.append((rec["event"], rec.get("reason")))
    assert ("audio_on", "lease_expired") in events and ("audio_on", "host_link_lost") in events


def test_statistics_counters_stay_small_ints():
    """REQ-CORE-07: the decoders' and readings' per-frame counters are folded below 2**29 once
    a second, so a frame after months of uptime never allocates a big int on the Pico."""
    b = bench(types=())
    b.run(2000, 72, 97)
    b.dev.decoder.frames_ok = (1 << 29) + 5
    b.dev.oxi.count = (1 << 29) + 7
    b.run(1500, 72, 97)
    assert b.dev.decoder.frames_ok < (1 << 29) and b.dev.oxi.count < (1 << 29)
    assert b.dev.decoder.frames_ok >= 5 and b.dev.oxi.count >= 7
