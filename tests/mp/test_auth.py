# test_auth.py: authenticated host commands on the device (firmware/bedside/auth.py,
# commands.py AUTHENTICATED): HMAC-SHA256, counter, lockout, provisioning, the command log,
# and the confirmation of widened limits. CPython and MicroPython; clocks near the tick wrap.
import binascii
import json

from authkit import hmac_sha256, line, provision_store, signed
from bedside.alarms.conditions import SPO2_DESAT
from bedside.auth import CTR_FILE, CTR_GAP, KEY_FILE
from bedside.authcmd import FAILS_FREE
from bedside.settings import SPEC, defaults
from corekit import bench, cmd
from fakes import MemStore
from mputil import release
from scenario import Bench


def _raw(b, data):
    """Push raw bytes; run until the next reply; return it."""
    b.messages = []
    release()
    n = 0
    b.host.push(data)
    for _ in range(100):
        b.run(10)
        replies = [m for m in b.messages if m["type"] == "reply"]
        if len(replies) > n:
            return replies[-1]
    return None


def _events(b):
    """Every event-log record the device holds (through the log command)."""
    out = []
    nxt = 0
    for _ in range(64):
        b.messages = []
        r = cmd(b, {"cmd": "log", "log": "event", "from": nxt})
        out += [m["rec"] for m in b.messages if m["type"] == "log"]
        if not r["count"]:
            break
        nxt = r["next"]
    return out


def test_hmac_sha256_vectors():
    """REQ-SEC-01: HMAC-SHA256 on hashlib.sha256 (as the device computes it) gives the RFC
    4231 test vectors (cases 1 and 2); the device accepts lines signed with it
    (test_state_changing_commands_need_a_valid_mac)."""
    mac = hmac_sha256(b"\x0b" * 20, b"Hi There")
    assert binascii.hexlify(mac) == (
        b"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )
    mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert binascii.hexlify(mac) == (
        b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_state_changing_commands_need_a_valid_mac():
    """REQ-SEC-02: every state-changing command without a MAC, with a wrong MAC or with a
    replayed counter is refused and changes nothing; read-only commands need no key."""
    b = Bench()
    b.run(500, 72, 97)
    assert _raw(b, b'{"cmd": "ping", "id": 1}\n')["ok"]
    assert _raw(b, b'{"cmd": "get_settings"}\n')["ok"]
    for obj in (
        {"cmd": "set", "name": "spo2_low", "value": 88, "by": "x"},
        {"cmd": "nibp", "action": "start", "by": "x"},
        {"cmd": "audio_off", "on": True, "by": "x"},
        {"cmd": "selftest", "priority": "high", "by": "x"},
        {"cmd": "provision", "key": "00" * 32, "by": "x"},
    ):
        r = _raw(b, (json.dumps(obj) + "\n").encode())
        assert r["ok"] is False and "authentication required" in r["error"], r
        b.run(2500)  # out of any lockout
    assert b.dev.settings["spo2_low"] == 90
    bad = dict(cmd="set", name="spo2_low", value=88, by="x", ctr=b.dev.auth.last + 1)
    r = _raw(b, signed(bad, b"\x01" * 32))  # another key
    assert r["ok"] is False and "wrong mac" in r["error"]
    good = line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 91})
    assert _raw(b, good)["ok"] is True and b.dev.settings["spo2_low"] == 91
    r = _raw(b, good)  # the same line again: a replay
    assert r["ok"] is False and "replayed" in r["error"]
    tampered = good.replace(b'"value": 91', b'"value": 95')
    assert _raw(b, tampered)["ok"] is False
    assert b.dev.settings["spo2_low"] == 91
    r = _raw(b, line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 92}, by=""))
    assert r["ok"] is False and "by (operator name" in r["error"]


def test_lockout_with_backoff_after_repeated_failures():
    """REQ-SEC-03: FAILS_FREE failures in a row lock authenticated commands out (even
    correctly signed ones) for 2 s, then 4 s ...; a success resets it; alarms go on."""
    b = Bench()
    b.run(500, 72, 97)
    bad = b'{"cmd": "set", "name": "spo2_low", "value": 88, "by": "x"}\n'
    for _i in range(FAILS_FREE):
        r = _raw(b, bad)
    assert "locked out for 2 s" in r["error"]
    r = _raw(b, line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 91}))
    assert r["ok"] is False and "locked out" in r["error"]
    b.run(2100, 72, 97)
    for _i in range(FAILS_FREE):
        r = _raw(b, bad)
    assert "locked out for 4 s" in r["error"]
    b.run(2100, 72, 80)
    assert "locked out" in _raw(b, line(b.dev, {"cmd": "selftest", "priority": "low"}))["error"]
    assert b.dev.alarms.exists[SPO2_DESAT]  # local alarming never waits for the host
    b.run(2000, 72, 97)
    assert _raw(b, line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 91}))["ok"]
    assert b.dev.auth.lockouts == 0


def test_every_authenticated_command_is_logged_with_operator_and_reason():
    """REQ-SEC-04: the device's flash event log holds every accepted authenticated command
    with its operator, and refused ones with the reason (refusals at most one record a
    second, the rest counted in `more`)."""
    b = Bench()
    b.run(500, 72, 97)
    cmd(b, {"cmd": "set", "name": "spo2_low", "value": 91, "by": "nurse a"})
    cmd(b, {"cmd": "selftest", "priority": "low", "by": "nurse b"})
    for _ in range(3):  # three refusals in one second: one record, "more": 2
        b.host.push(b'{"cmd": "nibp", "action": "start", "by": "mallory"}\n')
    b.run(1500, 72, 97)
    b.host.push(b'{"cmd": "nibp", "action": "start", "by": "mallory"}\n')
    b.run(1500, 72, 97)
    ev = [e for e in _events(b) if e["event"] == "command"]
    ok = [(e["cmd"], e["by"]) for e in ev if e["ok"]]
    assert ("set", "nurse a") in ok and ("selftest", "nurse b") in ok
    refused = [e for e in ev if not e["ok"]]
    assert len(refused) == 2 and refused[0]["by"] == "mallory"
    assert "authentication required" in refused[0]["reason"]
    assert refused[1].get("more") == 2


def test_provisioning_once_then_only_with_the_old_key():
    """REQ-SEC-06: an unprovisioned device takes one unsigned `provision`; a provisioned one
    only a provision signed with the old key. The key is stored on flash (CRC-checked), never
    echoed, never logged."""
    store = MemStore()
    b = Bench(store=store)
    b.dev.auth.state = 0  # undo the bench's provisioning: a new device
    store.files.pop(KEY_FILE, None) if hasattr(store.files, "pop") else None
    b.run(300)
    r = _raw(b, line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 91}))
    assert r["ok"] is False and "not provisioned" in r["error"]
    key1 = "11" * 32
    r = _raw(b, b'{"cmd": "provision", "key": "%s", "by": "biomed"}\n' % key1.encode())
    assert r["ok"] is True and key1 not in json.dumps(r)
    k1 = binascii.unhexlify(key1)
    assert key1.encode() in store.files[KEY_FILE]
    r = _raw(b, b'{"cmd": "provision", "key": "%s", "by": "mallory"}\n' % (b"22" * 32))
    assert r["ok"] is False and "authentication required" in r["error"]
    r = _raw(b, line(b.dev, {"cmd": "provision", "key": "22" * 32}))  # the test key: wrong
    assert r["ok"] is False and "wrong mac" in r["error"]
    b.run(2500)
    r = _raw(b, line(b.dev, {"cmd": "provision", "key": "33" * 32}, key=k1))
    assert r["ok"] is True
    assert _raw(b, line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 92}, key=k1))[
        "ok"
    ] is False
    k3 = binascii.unhexlify("33" * 32)
    assert _raw(b, line(b.dev, {"cmd": "set", "name": "spo2_low", "value": 92}, key=k3))["ok"]
    b.run(1000)
    text = json.dumps(_events(b)) + json.dumps(b.messages)
    for k in ("11" * 32, "22" * 32, "33" * 32):
        assert k not in text
    assert "provision" in text


def test_counter_survives_a_restart_with_a_reserve():
    """REQ-SEC-07: the counter is on flash; after a restart (even one before the last counter
    was written) every line signed before it is refused, and hello tells the host where the
    counter stands."""
    store = MemStore()
    provision_store(store)
    b = Bench(store=store)
    b.run(500, 72, 97)
    old = []
    for v in (91, 92, 93):
        ln = line(b.dev, {"cmd": "set", "name": "spo2_low", "value": v})
        old.append(ln)
        assert _raw(b, ln)["ok"]
    last = b.dev.auth.last
    b = None
    release()
    b2 = Bench(store=store, reset_cause="watchdog")
    b2.run(10)
    hello = next(m for m in b2.messages if m["type"] == "hello")
    assert hello["auth"]["state"] == "provisioned"
    assert hello["auth"]["ctr"] >= last + CTR_GAP - 3  # written behind: maybe not the last
    b2.run(500, 72, 97)
    for ln in old:
        r = _raw(b2, ln)
        assert r["ok"] is False and "replayed" in r["error"]
    assert int(store.files[CTR_FILE][9:-1]) >= hello["auth"]["ctr"]  # the reserve is saved
    assert _raw(b2, line(b2.dev, {"cmd": "set", "name": "spo2_low", "value": 94}))["ok"]


def test_corrupt_key_file_refuses_everything_until_reset():
    """REQ-SEC-06: a key file that fails its checksum never falls back to "unprovisioned"
    (an attacker cannot provision their own key): every authenticated command is refused."""
    store = MemStore()
    provision_store(store)
    data = bytearray(store.files[KEY_FILE])
    data[12] ^= 1
    store.files[KEY_FILE] = bytes(data)
    b = Bench(store=MemStore())
    b = None
    release()
    b = Bench(store=store)
    b.dev.auth.state = 2  # the bench provisions a fresh store; this one is corrupt
    b.run(300)
    r = _raw(b, b'{"cmd": "provision", "key": "%s", "by": "mallory"}\n' % (b"44" * 32))
    assert r["ok"] is False and "key store unreadable" in r["error"]


def _operator_limits():
    return [n for n in sorted(SPEC) if SPEC[n][4] == 0]


_ABSURD = {
    "spo2_desat": 70, "spo2_low": 80, "spo2_low_delay_s": 15, "pr_low": 30,
    "pr_high": 220, "sys_low": 60, "sys_high": 250, "dia_high": 150, "map_low": 40,
    "bp_rise_pct": 0, "nibp_interval_min": 0,
}  # fmt: skip


def test_attack_absurd_limits_without_the_key():
    """REQ-SEC-05: the attack in issue 14, part 1: without the key, setting all operator
    limits to absurd in-range values is refused, nothing changes, and SpO2 72 for 12 s
    alarms (SPO2_DESAT)."""
    b = bench(types=("reply", "alarm"))
    b.run(1000, 72, 97)
    assert sorted(_ABSURD) == _operator_limits()
    before = dict(b.dev.settings.values)
    for name in _ABSURD:  # an attacker on the USB link: no key
        obj = {"cmd": "set", "name": name, "value": _ABSURD[name], "by": "x"}
        assert _raw(b, (json.dumps(obj) + "\n").encode())["ok"] is False
        b.run(2100, 72, 97)  # wait out any lockout
    assert b.dev.settings.values == before
    b.messages = []
    b.run(12000, 72, 72)
    assert b.alarms("SPO2_DESAT")[0]["event"] == "raise"  # the limits held: it alarms


def test_attack_ending_an_active_alarm_needs_confirm():
    """REQ-SEC-05: the attack in issue 14, part 2: with the key, `set spo2_low` to the
    current reading (ending the active SPO2_LOW) is refused without confirm, accepted with it
    and logged as confirmed; every absurd widening needs confirm too."""
    b = bench(types=("reply", "log", "alarm"))
    b.run(1000, 72, 97)
    before = dict(b.dev.settings.values)
    b.run(12000, 72, 86)
    assert b.alarms("SPO2_LOW") and b.alarms("SPO2_LOW")[0]["event"] == "raise"
    r = cmd(b, {"cmd": "set", "name": "spo2_low", "value": 86})
    assert r["ok"] is False and "active SPO2_LOW" in r["error"] and "confirm" in r["error"]
    assert b.dev.settings["spo2_low"] == 90
    confirm = 0
    for name in _ABSURD:  # every absurd widening needs confirm (step > limit_step or off)
        b.messages = []
        release()
        r = cmd(b, {"cmd": "set", "name": name, "value": _ABSURD[name]})
        assert r["ok"] is False, (name, r)
        confirm += "confirm" in r["error"]
    # spo2_low 80 is below spo2_desat 85, sys_low 60 below map_low 65: refused anyway
    assert confirm == len(_ABSURD) - 2
    assert b.dev.settings.values == before
    b.messages = []
    release()
    r = cmd(b, {"cmd": "set", "name": "spo2_low", "value": 86, "confirm": True})
    assert r["ok"] is True and "active SPO2_LOW" in r["confirmed"], r
    b.run(1000, 72, 86)
    ev = _events(b)
    assert any(e["event"] == "setting" and e.get("confirmed") for e in ev)
    assert any(e["event"] == "command" and e.get("confirm") and e["ok"] for e in ev)


def test_small_widening_and_narrowing_need_no_confirm():
    """REQ-SEC-05: a narrowing, or a widening within the organisation's limit_step with no
    active alarm, goes through without confirm."""
    b = Bench()
    b.run(1000, 72, 97)
    step = defaults()["limit_step"]
    assert cmd(b, {"cmd": "set", "name": "pr_high", "value": 130 + step})["ok"]
    assert cmd(b, {"cmd": "set", "name": "pr_high", "value": 120})["ok"]
    assert cmd(b, {"cmd": "set", "name": "spo2_low", "value": 94})["ok"]
    assert cmd(b, {"cmd": "set", "name": "spo2_low", "value": 94 - step})["ok"]
    r = cmd(b, {"cmd": "set", "name": "pr_low", "value": 50 - step - 1})
    assert r["ok"] is False and "limit_step" in r["error"]
