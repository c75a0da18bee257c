# test_core_host.py: the host cannot stall the loop or evict alarm events; every command is
# validated and answered; self-test (CPython and MicroPython).
import json

from bedside.hostlink import LINES_PER_TICK, WRITE_BUDGET
from corekit import bench, cmd, sounding


def test_host_flood_is_bounded_and_alarm_events_are_retained():
    """REQ-CORE-08: the host cannot stall the loop or evict alarm events: command lines per
    tick and bytes written per tick are bounded, each replay is capped, and alarm messages
    stay replayable after a flood of other traffic."""
    b = bench(types=("alarm",))
    keep = b.on_message

    def replays_too(m):  # the replay replies as well (not the hundred pings')
        if m["type"] == "reply" and m["cmd"] == "replay":
            b.messages.append(m)
        keep(m)

    b.on_message = replays_too
    b.run(3000, 72, 97)
    b.run(1000, 72, 80)  # SPO2_DESAT raised
    raises = [m["seq"] for m in b.alarms("SPO2_DESAT") if m["event"] == "raise"]
    raise_seq = raises[0]
    written = []
    real_write = b.host.write

    def write(data):
        n = real_write(data)
        written.append(n)
        return n

    b.host.write = write
    for _ in range(9):  # nine replays and a hundred pings waiting at once (2 KB)
        b.host.push(b'{"cmd": "replay", "from": 1}\n')
    for _ in range(100):
        b.host.push(b'{"cmd": "ping"}\n')
    lines_before = b.dev.link.rx_lines
    written.clear()
    b.dev.poll(b.clock.advance(10))
    assert b.dev.link.rx_lines - lines_before <= LINES_PER_TICK
    assert sum(written) <= WRITE_BUDGET
    b.host.write = real_write
    b.run(3000, 72, 80)  # the flood drains a few lines per tick; alarms keep sounding
    assert sounding(b)
    replies = [m for m in b.messages if m["type"] == "reply" and m["cmd"] == "replay"]
    assert replies and all(r["count"] <= 16 for r in replies)
    b.messages = []
    r = cmd(b, {"cmd": "replay", "from": raise_seq})
    again = [m for m in b.messages if m["type"] == "alarm" and m["seq"] == raise_seq]
    assert r["count"] >= 1 and again  # the alarm raise is still replayable


def test_replay_delivers_what_its_reply_says():
    """REQ-CORE-09: a replay reply's count equals the lines delivered; `next` says where to
    continue; nothing is dropped from the outbox by the replay itself."""
    b = bench(types=())
    b.run(70000, 72, 97)  # plenty of history
    got = []
    b.on_message = got.append
    dropped = b.dev.link.tx_dropped
    r = cmd(b, {"cmd": "replay", "from": 1})
    got = [m for m in got if m["seq"] < r["seq"] and m["type"] != "reply"]
    assert 0 < r["count"] == len([m for m in got if m["seq"] >= r["oldest"]]) <= 16
    assert r["next"] is not None and b.dev.link.tx_dropped == dropped


def test_ids_and_arguments_are_validated():
    """REQ-CORE-10: the device only ever emits valid JSON: non-finite or odd ids are refused
    with an error reply (id null); unknown arguments are refused; every command gets a reply,
    status included."""
    b = bench()
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
    assert cmd(b, {"cmd": "ping", "id": "abc", "extra": 1})["ok"] is False
    assert cmd(b, {"cmd": "ping", "id": "x" * 33}) is None  # refused, answered with id null
    r = cmd(b, {"cmd": "status", "id": 7})
    assert r["ok"] is True and r["id"] == 7 and r["cmd"] == "status"
    assert cmd(b, {"cmd": "set", "name": "spo2_low", "value": 1.5})["ok"] is False


def test_self_test_at_boot_then_alarms_win():
    """REQ-CORE-12: the power-on self-test lights each LED colour in turn and sounds a tone,
    reports it, and a real alarm ends it at once."""
    b = bench(selftest=True)
    b.run(2000, 72, 97)
    colours = [c for _t, c, on in b.leds.log if on]
    assert colours[:4] == [0, 1, 2, 3] and any(hz for _t, hz, _d in b.sounder.log)
    assert [m for m in b.messages if m["type"] == "selftest" and m["step"] == "done"]
    r = cmd(b, {"cmd": "selftest", "priority": "high"})
    assert r["ok"]
    b.run(1000, 72, 97)
    assert b.alarms("TEST_HIGH")[0]["priority"] == "high" and b.dev.alarms.audible_priority() == 3
    b.run(5000, 72, 97)
    assert b.alarms("TEST_HIGH")[-1]["event"] == "end"


def test_key_chord_runs_test_alarms_of_each_priority():
    """REQ-CORE-12: CHECK + NIBP held 3 s runs a test alarm of each priority in turn."""
    from bedside.buttons import K_CHECK, K_NIBP
    from bedside.mainloop import MainLoop

    b = bench()
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
