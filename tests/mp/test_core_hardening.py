# test_core_hardening.py: nothing the host, the flash, the USB port or time can do stops,
# stalls or silences local alarming (CPython and MicroPython). Clocks start below the wrap.
import json

from bedside.alarms.conditions import P_HIGH
from bedside.hostlink import LINES_PER_TICK, WRITE_BUDGET
from bedside.ticks import AGE_MAX, Age, ticks_add
from fakes import MemStore
from scenario import Bench

DAY = 24 * 3600 * 1000


class FailingStore(MemStore):
    """A flash that fails: every read, write and append raises OSError (or only writes)."""

    def __init__(self, reads=True):
        MemStore.__init__(self)
        self.fail_reads = reads
        self.fail = True
        self.calls = 0

    def read(self, name):
        if self.fail and self.fail_reads:
            raise OSError(5)
        return MemStore.read(self, name)

    def write(self, name, data):
        self.calls += 1
        if self.fail:
            raise OSError(28)  # ENOSPC
        MemStore.write(self, name, data)

    def append(self, name, data):
        self.calls += 1
        if self.fail:
            raise OSError(28)
        MemStore.append(self, name, data)


def _cmd(b, obj):
    """Send one command; run until its reply has been written (at most 2 s)."""
    n = len(b.messages)
    _IDS[0] += 1
    obj = dict(obj)
    if "id" not in obj:
        obj["id"] = "t%d" % _IDS[0]
    b.host.push((json.dumps(obj) + "\n").encode())
    for _ in range(300):
        b.run(10)
        replies = [m for m in b.messages[n:] if m["type"] == "reply" and m["id"] == obj["id"]]
        if replies:
            return replies[-1]
    return None


_IDS = [0]


_EVENTS = ("alarm", "reply", "fault", "audio_off", "selftest", "button", "setting")


def _bench(types=_EVENTS, **kw):
    """A Bench keeping only the message types a test looks at (a Pico-sized heap)."""
    b = Bench(**kw)

    def keep(m):
        if m["type"] in types:
            b.messages.append(m)
        elif m["type"] == "heartbeat":
            b.last_hb = m

    b.on_message = keep
    return b


def _sounding(b):
    return b.dev.annunciator.tone_on or b.dev.alarms.audible_priority() > 0


def test_failing_store_at_boot_and_during_alarms():
    """REQ-CORE-01: a flash that fails every operation (from boot on) never stops the device:
    it starts, alarms and sounds, and raises STORAGE_FAULT instead of raising an exception."""
    store = FailingStore()
    b = _bench(store=store)
    b.run(3000, 72, 97)
    assert b.alarms("STORAGE_FAULT")
    b.run(2000, 72, 80)  # desaturation: the log append fails, the alarm must not
    assert b.alarms("SPO2_DESAT")[0]["event"] == "raise"
    assert any(hz for _t, hz, _d in b.sounder.log)
    r = _cmd(b, {"cmd": "set", "name": "spo2_low", "value": 91})
    assert r["ok"] is True  # applied in RAM at once; the write fails behind
    b.run(2000, 72, 80)
    assert b.dev.settings["spo2_low"] == 91 and b.dev.persist.errors > 0
    faults = [m for m in b.messages if m["type"] == "fault" and m["where"] == "storage"]
    assert faults and "OSError" in faults[0]["error"]
    store.fail = False  # the flash recovers: the fault ends with the next good write
    b.run(3000, 72, 80)
    ends = [m for m in b.alarms("STORAGE_FAULT") if m["event"] == "end"]
    assert ends


def test_exception_in_a_stage_is_caught_and_alarms_go_on():
    """REQ-CORE-02: an unexpected exception in the sensors stage or the host stage never
    leaves poll(): CORE_FAULT (MEDIUM) is raised, a fault message is sent, alarms go on."""
    b = _bench()
    b.run(3000, 72, 97)
    real = b.dev.decoder.feed
    calls = [0]

    def broken(buf, n, now):
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise RuntimeError("decoder bug")
        return real(buf, n, now)

    b.dev.decoder.feed = broken
    b.run(12000, 72, 80)
    assert b.alarms("CORE_FAULT") and b.alarms("CORE_FAULT")[0]["priority"] == "medium"
    assert b.alarms("SPO2_DESAT")  # most packets still get through: the desat is raised
    f = [m for m in b.messages if m["type"] == "fault"]
    assert f and "decoder bug" in f[0]["error"] and len(f) <= 13  # at most one a second
    assert b.dev.healthy()


def test_annunciator_failure_puts_it_in_a_safe_state():
    """REQ-CORE-03: if the annunciator raises, the device restarts it sounding at least the
    highest known priority; a loop that keeps failing reports unhealthy (watchdog reset)."""
    b = _bench()
    b.run(3000, 72, 97)
    b.run(1000, 72, 80)  # HIGH
    ann = b.dev.annunciator
    real = ann.step
    state = {"fail": True}

    def broken(now, audible, visible, audio_off=False):
        if state["fail"]:
            state["fail"] = False
            raise ValueError("pattern bug")
        return real(now, audible, visible, audio_off)

    ann.step = broken
    n = len(b.sounder.log)
    b.run(2000, 72, 80)
    assert any(hz for _t, hz, _d in b.sounder.log[n:])  # still sounding
    assert b.dev.healthy()

    def always(now, audible, visible, audio_off=False):
        raise ValueError("stuck")

    ann.step = always
    ann.safe = always
    b.run(2000, 72, 80)
    assert not b.dev.healthy()  # the board stops feeding the watchdog


def test_button_never_raises():
    """REQ-CORE-04: Device.button() never raises: unknown names touch nothing."""
    b = Bench()
    b.run(500, 72, 97)
    assert b.dev.button("explode", b.clock.now) == 0
    assert b.dev.button(None, b.clock.now) == 0


def test_audio_off_is_a_lease_that_ends_without_the_host():
    """REQ-CORE-05: AUDIO OFF from the host is a lease: it ends when not renewed, and when
    HOST_LINK_LOST is raised; each automatic end is logged and reported."""
    b = _bench()
    b.dev.settings.set("audio_off_allowed", 1, 1)
    b.run(2000, 72, 97)
    r = _cmd(b, {"cmd": "audio_off", "on": True, "lease_s": 10})
    assert r["ok"] and b.dev.alarms.audio_off
    b.run(1000, 72, 80)  # HIGH desat while AUDIO OFF: silent (reminders only)
    assert b.dev.alarms.audible_priority() == 0
    for _ in range(3):  # the host renews the lease
        b.run(5000, 72, 80)
        assert _cmd(b, {"cmd": "audio_off", "on": True, "lease_s": 10})["ok"]
    assert b.dev.alarms.audio_off
    b.run(10500, 72, 80)  # not renewed: the lease runs out
    assert not b.dev.alarms.audio_off and b.dev.alarms.audible_priority() == P_HIGH
    ends = [m for m in b.messages if m["type"] == "audio_off" and not m["on"]]
    assert ends and ends[-1]["reason"] == "lease_expired"
    # a long lease ends when the host goes silent (HOST_LINK_LOST)
    assert _cmd(b, {"cmd": "audio_off", "on": True, "lease_s": 300})["ok"]
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
    b = _bench()
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
    b = _bench()
    for _ in range(15 * 4):  # 15 days in 6-hour steps
        b.run(DAY // 4, tick=60000)
    assert b.dev.up_s >= 15 * 24 * 3600 and b.dev.up_s < (1 << 30)
    assert b.dev._up_ms < 1000
    hb = b.last_hb
    assert hb["t_ms"] >= 14 * DAY and hb["uptime_s"] == hb["t_ms"] // 1000


def test_host_flood_is_bounded_and_alarm_events_are_retained():
    """REQ-CORE-08: the host cannot stall the loop or evict alarm events: command lines per
    tick and bytes written per tick are bounded, each replay is capped, and alarm messages
    stay replayable after a flood of other traffic."""
    b = _bench()
    b.run(3000, 72, 97)
    b.run(1000, 72, 80)  # SPO2_DESAT raised
    raise_seq = [m["seq"] for m in b.alarms("SPO2_DESAT") if m["event"] == "raise"][0]
    written = []
    real_write = b.host.write

    def write(data):
        n = real_write(data)
        written.append(n)
        return n

    b.host.write = write
    flood = b"".join(b'{"cmd": "replay", "from": 1}\n' for _ in range(9))
    flood += b"".join(b'{"cmd": "ping"}\n' for _ in range(300))
    b.host.push(flood)
    lines_before = b.dev.link.rx_lines
    written.clear()
    b.dev.poll(b.clock.advance(10))
    assert b.dev.link.rx_lines - lines_before <= LINES_PER_TICK
    assert sum(written) <= WRITE_BUDGET
    b.run(3000, 72, 80)  # the flood drains a few lines per tick; alarms keep sounding
    assert _sounding(b)
    replies = [m for m in b.messages if m["type"] == "reply" and m["cmd"] == "replay"]
    assert replies and all(r["count"] <= 16 for r in replies)
    b.messages = []
    r = _cmd(b, {"cmd": "replay", "from": raise_seq})
    again = [m for m in b.messages if m["type"] == "alarm" and m["seq"] == raise_seq]
    assert r["count"] >= 1 and again  # the alarm raise is still replayable


def test_replay_delivers_what_its_reply_says():
    """REQ-CORE-09: a replay reply's count equals the lines delivered; `next` says where to
    continue; nothing is dropped from the outbox by the replay itself."""
    b = _bench(types=())
    b.run(70000, 72, 97)  # plenty of history
    b.on_message = None
    b.messages = []
    b.last_seq = 0
    dropped = b.dev.link.tx_dropped
    r = _cmd(b, {"cmd": "replay", "from": 1})
    got = [m for m in b.messages if m["seq"] < r["seq"] and m["type"] != "reply"]
    assert r["count"] == len([m for m in got if m["seq"] >= r["oldest"]]) == 16
    assert r["next"] is not None and b.dev.link.tx_dropped == dropped


def test_ids_and_arguments_are_validated():
    """REQ-CORE-10: the device only ever emits valid JSON: non-finite or odd ids are refused
    with an error reply (id null); unknown arguments are refused; every command gets a reply,
    status included."""
    b = _bench()
    b.run(1000, 72, 97)
    for line in (b'{"cmd": "ping", "id": NaN}\n', b'{"cmd": "ping", "id": Infinity}\n',
                 b'{"cmd": "ping", "id": 1e999}\n', b'{"cmd": "ping", "id": [1]}\n'):
        b.messages = []
        b.host.push(line)
        b.run(50)
        r = [m for m in b.messages if m["type"] == "reply"][-1]
        assert r["ok"] is False and r["id"] is None
    for line in b.host.take_lines():
        json.loads(line)
    assert _cmd(b, {"cmd": "ping", "id": "abc", "extra": 1})["ok"] is False
    assert _cmd(b, {"cmd": "ping", "id": "x" * 33}) is None  # refused, answered with id null
    r = _cmd(b, {"cmd": "status", "id": 7})
    assert r["ok"] is True and r["id"] == 7 and r["cmd"] == "status"
    assert _cmd(b, {"cmd": "set", "name": "spo2_low", "value": 1.5})["ok"] is False


def test_flash_writes_wait_for_a_quiet_moment():
    """REQ-CORE-11: flash writes (write-behind) never run while a pulse sounds or is due
    within the quiet window."""

    class Watch(MemStore):
        def __init__(self, dev_ref):
            MemStore.__init__(self)
            self.ref = dev_ref
            self.bad = 0
            self.writes = 0

        def _check(self):
            dev = self.ref[0]
            if dev is not None:
                self.writes += 1
                if dev.annunciator.tone_on or dev.annunciator.quiet_ms(dev.now) < 60:
                    self.bad += 1

        def write(self, name, data):
            self._check()
            MemStore.write(self, name, data)

        def append(self, name, data):
            self._check()
            MemStore.append(self, name, data)

    ref = [None]
    store = Watch(ref)
    b = Bench(store=store)
    ref[0] = b.dev
    b.run(2000, 72, 97)
    b.run(20000, 72, 80)  # HIGH bursts with many events and settings changes
    for v in (91, 92, 93):
        _cmd(b, {"cmd": "set", "name": "spo2_low", "value": v})
        b.press("ack")
        b.run(3000, 72, 80)
    assert store.writes > 3 and store.bad == 0 and not b.dev.persist.pending()


def test_self_test_at_boot_then_alarms_win():
    """REQ-CORE-12: the power-on self-test lights each LED colour in turn and sounds a tone,
    reports it, and a real alarm ends it at once."""
    b = _bench(selftest=True)
    b.run(2000, 72, 97)
    colours = [c for _t, c, on in b.leds.log if on]
    assert colours[:4] == [0, 1, 2, 3] and any(hz for _t, hz, _d in b.sounder.log)
    assert [m for m in b.messages if m["type"] == "selftest" and m["step"] == "done"]
    r = _cmd(b, {"cmd": "selftest", "priority": "high"})
    assert r["ok"]
    b.run(1000, 72, 97)
    assert b.alarms("TEST_HIGH")[0]["priority"] == "high" and b.dev.alarms.audible_priority() == 3
    b.run(5000, 72, 97)
    assert b.alarms("TEST_HIGH")[-1]["event"] == "end"


def test_key_chord_runs_test_alarms_of_each_priority():
    """REQ-CORE-12: CHECK + NIBP held 3 s runs a test alarm of each priority in turn."""
    from bedside.buttons import K_CHECK, K_NIBP
    from bedside.mainloop import MainLoop

    b = _bench()
    loop = MainLoop(b.dev)
    now = b.clock.now
    for i in range(350):
        now = b.clock.advance(10)
        loop.step(now, K_CHECK | K_NIBP)
        if i % 100 == 0:
            b._drain()
    for i in range(1700):
        now = b.clock.advance(10)
        loop.step(now, 0)
        if i % 100 == 0:
            b._drain()
    b._drain()
    raised = [m["condition"] for m in b.messages if m["type"] == "alarm" and m["event"] == "raise"]
    assert [c for c in raised if c.startswith("TEST_")] == ["TEST_HIGH", "TEST_MEDIUM", "TEST_LOW"]
    buttons = [m["button"] for m in b.messages if m["type"] == "button"]
    assert buttons == ["selftest"]  # no stray check or nibp events from the chord


def test_key_flood_is_bounded_per_tick():
    """REQ-CORE-13: a flood of key events never stalls the loop: at most
    KEY_EVENTS_PER_TICK events are handled per tick."""
    from bedside.buttons import K_ACK
    from bedside.mainloop import KEY_EVENTS_PER_TICK, MainLoop

    b = _bench()
    loop = MainLoop(b.dev)
    seen = []
    real = b.dev.button

    def count(name, now):
        seen.append(now)
        return real(name, now)

    b.dev.button = count
    for i in range(2000):  # toggling faster than any finger: debounce drops most
        loop.step(b.clock.advance(10), K_ACK if (i // 7) % 2 else 0)
        if i % 100 == 0:
            b._drain()
    per_tick = {}
    for t in seen:
        per_tick[t] = per_tick.get(t, 0) + 1
    assert seen and max(per_tick.values()) <= KEY_EVENTS_PER_TICK
