# test_slice.py: the foundation slice end to end through the core, on CPython and MicroPython:
# oximeter bytes -> decoder -> alarm -> annunciator -> host link. The bench clock starts just
# below the 2**30 ms tick wrap, so every delay here runs across the wrap (REQ-SYS-03).
import json

from authkit import line
from bedside.alarms.patterns import CYAN, GREEN, YELLOW
from bedside.commands import AUTHENTICATED
from bedside.observations import OFF_CONFIRM_MS
from bedside.settings import decode
from fakes import MemStore
from mputil import release
from scenario import Bench


def _pulses(log, t_from=None):
    """[(on_t, off_t)] from a sounder log of (t, hz, duty)."""
    out = []
    on = None
    for t, hz, _duty in log:
        if t_from is not None and t < t_from:
            continue
        if hz and on is None:
            on = t
        elif not hz and on is not None:
            out.append((on, t))
            on = None
    return out


def test_spo2_low_raises_medium_after_delay():
    """REQ-ALM-01: SpO2 below the low limit for longer than the delay raises SPO2_LOW, MEDIUM."""
    b = Bench()
    b.run(5000, 72, 97)
    b.run(9000, 72, 88)  # under the 10 s default delay
    assert not b.alarms("SPO2_LOW")
    b.run(2000, 72, 88)
    raised = b.alarms("SPO2_LOW")
    assert raised and raised[0]["priority"] == "medium" and raised[0]["state"] == "active"
    assert raised[0]["value"] == 88 and raised[0]["limit"] == 90


def test_sensor_off_raises_technical_at_once():
    """REQ-ALM-02: sensor-off (Nonin SNSA) raises OXI_SENSOR_OFF without a condition delay,
    once the flags have held for the confirmation time (observations.OFF_CONFIRM_MS)."""
    b = Bench()
    b.run(3000, 72, 97)
    b.run(OFF_CONFIRM_MS + 200, 511, 127, status=0x88)
    off = b.alarms("OXI_SENSOR_OFF")
    assert off and off[0]["kind"] == "technical" and off[0]["event"] == "raise"
    assert not b.alarms("SPO2_LOW")  # a missing value is not a low value


def test_medium_burst_and_yellow_flash():
    """REQ-SIG-01: MEDIUM = bursts of 3 pulses and a flashing yellow LED, from timestamps."""
    b = Bench()
    b.run(3000, 72, 97)
    b.run(11000, 72, 88)
    t_raise = b.sounder.log[0][0]
    b.run(8000, 72, 88)
    pulses = _pulses(b.sounder.log)
    assert len(pulses) == 6  # two bursts of three within 8 s (burst 1.0 s + 6 s interburst)
    assert pulses[0][0] == t_raise
    yellow = [e for e in b.leds.log if e[1] == YELLOW]
    assert len(yellow) >= 8 and yellow[0][2] is True
    assert not any(e[2] for e in b.leds.log if e[1] not in (YELLOW, GREEN))


def test_ack_pauses_audio_not_visual_and_new_condition_breaks_through():
    """REQ-ALM-03: ACK pauses audio of active conditions; visual stays; a new one sounds."""
    b = Bench()
    b.run(3000, 72, 97)
    b.run(11000, 72, 88)
    b.press("ack")
    n = len(b.sounder.log)
    b.run(10000, 72, 88)
    assert all(hz == 0 for _t, hz, _d in b.sounder.log[n:])  # silent while paused
    assert b.dev.alarms.visible_priority() == 2  # yellow still shown
    b.run(2000, 72, 80)  # below the desat limit: HIGH breaks through
    assert any(hz for _t, hz, _d in b.sounder.log[n:])


def test_host_messages_have_monotonic_seq_and_fields():
    """REQ-LINK-01: every message has v, seq (rising by one), boot, type, t_ms; vitals spo2/pr."""
    b = Bench()
    b.run(4000, 72, 97)
    assert b.seq_gaps == 0 and b.last_seq > 8 and b.messages[0]["seq"] == 1
    every = b.messages + b.periodic["oxi"] + b.periodic["heartbeat"]
    assert all(m["v"] == 2 and "type" in m and "t_ms" in m for m in every)
    assert all(m["boot"] == 1 for m in every)  # the boot counter from the flash log
    oxi = b.last("oxi")
    assert oxi["spo2"] == 97 and oxi["pr"] == 72
    assert b.last("heartbeat") is not None


def test_missing_values_are_null():
    """REQ-LINK-02: a value the module does not report is null, never a sentinel number."""
    b = Bench()
    b.run(3000, 511, 127)
    oxi = b.last("oxi")
    assert oxi["spo2"] is None and oxi["pr"] is None


def _cmd(b, raw):
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("cmd") in AUTHENTICATED:
        raw = line(b.dev, obj)  # signed, as DeviceLink signs
    b.messages = []  # (a Pico-sized heap: only this command's messages)
    b.host.push(raw)
    b.run(50)
    return [m for m in b.messages if m["type"] == "reply"][-1]


def test_commands_are_validated():
    """REQ-LINK-03: every command line is validated; bad input gets a clear error, nothing
    changes."""
    b = Bench()
    b.run(100)
    assert "invalid JSON" in _cmd(b, b"{nope\n")["error"]
    assert "string" in _cmd(b, b"[1, 2]\n")["error"]
    assert "unknown command" in _cmd(b, b'{"cmd": "fly"}\n')["error"]
    r = _cmd(b, b'{"cmd": "set", "name": "spo2_low", "value": 50, "id": 7}\n')
    assert r["ok"] is False and r["id"] == 7 and "within" in r["error"]
    assert b.dev.settings["spo2_low"] == 90
    r = _cmd(b, b'{"cmd": "set", "name": "oxi_format", "value": "masimo"}\n')
    assert r["ok"] is False and "responsible organisation" in r["error"]
    assert "longer" in _cmd(b, b"x" * 600 + b"\n")["error"]
    r = _cmd(b, b'{"cmd": "set", "name": "spo2_low", "value": 88}\n')
    assert r["ok"] is True and b.dev.settings["spo2_low"] == 88
    assert decode(b.store.files["settings.json"])[1]["spo2_low"] == 88


def test_replay_resends_lost_messages():
    """REQ-LINK-04: the host can ask for messages again by seq (lossless link)"""
    b = Bench()
    b.run(3000, 72, 97)
    last = b.last_seq
    got = []
    b.on_message = got.append
    b.host.push(b'{"cmd": "replay", "from": 2}\n')
    b.run(500)
    r = [m for m in got if m["type"] == "reply"][-1]
    assert r["ok"] and r["count"] == last - 1
    again = [m["seq"] for m in got if m["type"] != "reply"]
    assert again[: last - 1] == list(range(2, last + 1))


def test_corrupt_settings_default_and_alarm():
    """REQ-ALM-04: unreadable stored settings -> defaults in force and SETTINGS_DEFAULTED."""
    b = Bench(store=MemStore({"settings.json": b"{garbage"}))
    b.run(500, 72, 97)
    assert b.dev.settings["spo2_low"] == 90
    assert b.alarms("SETTINGS_DEFAULTED")


def test_unexpected_restart_alarms_until_reset():
    """REQ-ALM-05: a watchdog/unclean restart raises DEVICE_RESTARTED until the nurse resets it."""
    b = Bench(reset_cause="watchdog")
    b.run(500, 72, 97)
    assert b.alarms("DEVICE_RESTARTED")[0]["state"] == "active"
    b.press("reset")
    b.run(500, 72, 97)
    assert b.alarms("DEVICE_RESTARTED")[-1]["state"] == "inactive"
    assert b.dev.alarms.visible_priority() == 0
    assert b.leds.state[GREEN] and not b.leds.state[CYAN]


def test_oximeter_silence_raises_comm_lost():
    """REQ-ALM-06: no valid oximeter data for oxi_comm_timeout_s raises OXI_COMM_LOST."""
    b = Bench()
    b.run(3000, 72, 97)
    b.run(4000)  # module silent, under the 5 s default
    assert not b.alarms("OXI_COMM_LOST")
    b.run(1500)
    assert b.alarms("OXI_COMM_LOST")[0]["priority"] == "medium"


def test_nibp_abort_ends_the_cycle_and_schedule_goes_on():
    """REQ-SEN-18: after an abort (EC 86 is no failure) the schedule is free for the next cycle."""
    from fakes import FakeUart

    nibp = FakeUart()
    b = Bench(nibp_uart=nibp)
    b.press("nibp")  # measure now
    b.run(300, 72, 97)
    assert nibp.tx.startswith(bytes.fromhex("3A20A6"))  # start, adult
    nibp.push(bytes.fromhex("3E044F6F"))  # 'O'
    b.run(500, 72, 97)
    assert b.dev.nibp_drv.busy and b.dev.schedule.in_cycle
    b.press("nibp")  # the key again: abort
    b.run(200, 72, 97)
    assert bytes.fromhex("3A7901004C") in nibp.tx
    nibp.push(bytes.fromhex("3E04417D") + bytes.fromhex("3E044B73"))  # 'A' then 'K'
    b.run(300, 72, 97)
    assert nibp.tx.endswith(bytes.fromhex("3A7903004A"))  # then it fetches the result
    data = bytearray(24)
    data[0] = 0x3E
    data[1] = 0x18
    data[20] = 0x56  # EC 86: aborted by user
    data[23] = (0x100 - sum(data[:23])) & 0xFF
    nibp.push(bytes(data))
    b.run(500, 72, 97)
    assert not b.dev.nibp_drv.busy and not b.dev.schedule.in_cycle
    assert b.dev.nibp_drv.condition is None


def test_nibp_host_command_starts_and_is_validated():
    """REQ-SEN-21: the host can start (STAT) or stop a measurement; bad requests are refused."""
    from fakes import FakeUart

    b = Bench()
    r = _cmd(b, b'{"cmd": "nibp", "action": "start"}\n')
    assert r["ok"] is False and "no NIBP module" in r["error"]
    b = None
    release()
    nibp = FakeUart()
    b = Bench(nibp_uart=nibp)
    assert "start or stop" in _cmd(b, b'{"cmd": "nibp", "action": "inflate"}\n')["error"]
    assert "no measurement" in _cmd(b, b'{"cmd": "nibp", "action": "stop"}\n')["error"]
    assert _cmd(b, b'{"cmd": "nibp", "action": "start", "id": 3}\n')["ok"] is True
    b.run(300, 72, 97)
    assert nibp.tx.startswith(bytes.fromhex("3A20A6"))
    assert "already running" in _cmd(b, b'{"cmd": "nibp", "action": "start"}\n')["error"]
    assert _cmd(b, b'{"cmd": "nibp", "action": "stop"}\n')["ok"] is True
    b.run(300, 72, 97)
    assert bytes.fromhex("3A7901004C") in nibp.tx


def test_oximeter_link_follows_format_and_baud_setting():
    """REQ-SEN-22: the UART link comes from the format's documented settings; oxi_baud
    overrides."""
    from bedside.sensors import oximeter_link
    from bedside.settings import ORG, Settings

    s = Settings()
    assert oximeter_link(s) == (9600, 8, "N")
    assert s.set("oxi_format", "berrymed", ORG) is None
    assert oximeter_link(s) == (115200, 8, "N")
    assert s.set("oxi_baud", 9600, ORG) is None
    assert oximeter_link(s) == (9600, 8, "N")
    assert s.set("oxi_baud", 12345, ORG) is not None  # not a supported rate
