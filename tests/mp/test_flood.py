# test_flood.py: a flood of 10,000 hostile commands on the host link (CPython and MicroPython):
# alarming goes on, nothing changes, the flash event log is not flooded (REQ-REL-04).
from corekit import bench, sounding
from mputil import release

N = 10000
_LINES = (
    b'{"cmd": "set", "name": "spo2_low", "value": 80, "by": "x"}\n',
    b'{"cmd": "audio_off", "on": true, "by": "x", "ctr": 99, "mac": "%s"}\n' % (b"0" * 64),
    b'{"cmd": "nibp", "action": "start"}\n',
    b"\x03\x03garbage\xff\n",
    b'{"cmd": "ping"}\n',
)


def test_ten_thousand_hostile_commands():
    """REQ-REL-04: 10,000 unsigned, wrongly signed and garbage command lines during a HIGH
    alarm: the alarm keeps sounding, no setting changes, every line is taken within the
    per-tick bounds (4 lines, 4 reads of 64 bytes), and refusals reach the flash event log at
    most once a second."""
    b = bench(types=("alarm", "command"))
    b.run(3000, 72, 97)
    b.run(2000, 72, 80)  # SPO2_DESAT (HIGH)
    before = dict(b.dev.settings.values)
    rx0 = b.dev.link.rx_lines
    sent = 0
    ticks = 0
    while sent < N or b.dev.link.rx_lines - rx0 < N:
        for _ in range(8):  # faster than the device takes them: the input stays backed up
            if sent < N and len(b.host._rx) < 32:
                b.host.push(_LINES[sent % len(_LINES)])
                sent += 1
        b.run(10, 72, 80)
        ticks += 1
        if ticks % 500 == 0:
            assert sounding(b), ticks
            b.messages = [m for m in b.messages if m["type"] == "alarm"]
            release()
        assert ticks < N
    assert b.dev.link.rx_lines - rx0 >= N
    assert ticks <= N * 2 // 5  # >= 2.5 lines a tick (4 lines, 4 reads of 64 bytes at most)
    assert sounding(b) and b.dev.alarms.exists[0]  # SPO2_DESAT still on
    assert b.dev.settings.values == before and not b.dev.alarms.audio_off
    assert b.dev.faults == 0
    refusals = [m for m in b.messages if m["type"] == "command"]
    seconds = ticks // 100 + 2
    assert len(refusals) <= seconds  # at most one refusal record (and message) a second
    assert b.dev.cmds.refused >= N * 2 // 5  # the set and audio_off lines (2 of 5)
