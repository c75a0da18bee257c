# test_settings.py: settings integrity: limits checked against each other, the file on flash
# (schema, CRC-32, migrations), corrupt files, no-op sets. Plain asserts: MicroPython and CPython.
import json

from bedside.crc import crc32, crc32_soft
from bedside.settings import (
    CHECKSUM,
    INVARIANTS,
    NAMES,
    OPERATOR,
    ORG,
    RENAMED,
    SCHEMA,
    SETTINGS_FILE,
    SPEC,
    Settings,
    decode,
    defaults,
    encode,
    read_settings,
)
from bedside.settingsfile import MIGRATIONS
from fakes import MemStore

# the keys of the first release's plain-JSON file (git d532bdc), before any setting was added
FIRST_RELEASE = (
    "audio_pause_s",
    "bp_rise_pct",
    "dia_high",
    "host_timeout_s",
    "latch_high",
    "map_low",
    "nibp_interval_min",
    "nibp_patient",
    "oxi_comm_timeout_s",
    "oxi_format",
    "oxi_poor_signal_s",
    "oxi_stale_s",
    "pr_delay_s",
    "pr_high",
    "pr_low",
    "sounder_hz",
    "spo2_delay_mode",
    "spo2_desat",
    "spo2_escalate_s",
    "spo2_hold_max_s",
    "spo2_hold_nibp",
    "spo2_integral_limit",
    "spo2_low",
    "spo2_low_delay_s",
    "sys_high",
    "sys_low",
)


def _load(raw):
    return read_settings(MemStore({SETTINGS_FILE: raw}))


def _other(name):
    """A valid value for `name` other than its default."""
    default, low, high = SPEC[name][0], SPEC[name][1], SPEC[name][2]
    if high is None:
        return next(c for c in low if c != default)
    return default + 1 if default < high else default - 1


def _all_changed():
    """Every setting away from its default, all invariants holding."""
    return {name: _other(name) for name in NAMES}


def _holds(values):
    for low, high, gap in INVARIANTS:
        if values[low] + gap > values[high]:
            return False
    return True


def _short_strings(problems):
    for p in problems:
        assert isinstance(p, str) and 0 < len(p) < 600, p


def test_tables_are_consistent():
    """REQ-SET-01: every invariant names two whole-number settings and the defaults satisfy it;
    MIGRATIONS covers every older schema; RENAMED maps retired names to current ones."""
    d = defaults()
    assert _holds(d)
    for low, high, gap in INVARIANTS:
        assert low in SPEC and high in SPEC and low != high, (low, high)
        assert SPEC[low][2] is not None and SPEC[high][2] is not None, (low, high)
        assert isinstance(gap, int) and gap >= 1
        # the pair can be set both ways: some in-range values satisfy it
        assert SPEC[low][1] + gap <= SPEC[high][2], (low, high)
    pairs = [(a, b) for a, b, _g in INVARIANTS]
    for a, b in (
        ("spo2_desat", "spo2_low"),
        ("pr_low", "pr_high"),
        ("sys_low", "sys_high"),
        ("map_low", "sys_low"),
        ("dia_high", "sys_high"),
    ):
        assert (a, b) in pairs, (a, b)
    for n in range(1, SCHEMA):
        assert n in MIGRATIONS, n
    for old in RENAMED:
        assert old not in SPEC and RENAMED[old] in SPEC
    assert _holds(_all_changed())


def _in_range(name, value):
    return SPEC[name][1] <= value <= SPEC[name][2]


def _edge(low, high, gap):
    """An in-range a such that value[low] = a, value[high] = a + gap holds with every other
    setting at its default, and one step either way (low a + 1, or high a + gap - 1) is in
    range and breaks it."""
    for a in range(SPEC[low][1], SPEC[low][2]):
        if not (_in_range(high, a + gap) and _in_range(high, a + gap - 1)):
            continue
        values = dict(defaults())
        values[low] = a
        values[high] = a + gap
        if _holds(values):
            return a
    raise AssertionError("no edge for %s < %s" % (low, high))


def test_each_invariant_refused_on_set():
    """REQ-SET-02: a set that would break an invariant is refused with an error naming both
    settings, on either side of the pair, and nothing changes."""
    for low, high, gap in INVARIANTS:
        s = Settings()
        a = _edge(low, high, gap)
        assert s.set_many({low: a, high: a + gap}, ORG) is None, (low, high)
        before = dict(s.values)
        for name, value in ((low, a + 1), (high, a + gap - 1)):
            err = s.set(name, value, ORG)
            assert err and low in err and high in err and "below" in err, (name, value, err)
            assert s.check_set(name, value, ORG) == err
            assert s.values == before
        err = s.set_many({low: a + 1, high: a + gap}, ORG)
        assert err and low in err and high in err
        assert s.values == before


def test_desat_above_low_refused_and_order_free_with_set_many():
    """REQ-SET-02: the host cannot set the desaturation limit (94) above the SpO2 low limit
    (90); several changes checked together do not depend on their order."""
    s = Settings()
    err = s.set("spo2_desat", 94)
    assert err == "spo2_desat 94 must be below spo2_low 90", err
    assert s["spo2_desat"] == 85
    assert s.set("spo2_low", 85) == "spo2_desat 85 must be below spo2_low 85"
    assert s.set("spo2_low", 80) and s.set("spo2_desat", 96)  # 96: out of its own range
    assert s.set_many({"spo2_low": 80, "spo2_desat": 75}) is None
    assert (s["spo2_low"], s["spo2_desat"]) == (80, 75)
    assert s.set_many({"spo2_low": 95, "spo2_desat": 94, "oxi_baud": 9600}) is not None
    assert (s["spo2_low"], s["spo2_desat"], s["oxi_baud"]) == (80, 75, 0)  # all or nothing


def test_access_rules_stay():
    """REQ-SET-02: operator settings at the chair, organisation settings only by the
    organisation, for set, check_set and set_many alike."""
    s = Settings()
    for name in NAMES:
        v = _other(name)
        if SPEC[name][4] == ORG:
            assert "responsible organisation" in s.check_set(name, v, OPERATOR), name
            assert "responsible organisation" in s.set_many({name: v}, OPERATOR), name
            assert s.values[name] == SPEC[name][0]
        t = Settings()
        assert t.set(name, v, ORG) is None, name
        assert t[name] == v


def test_each_invariant_fixed_on_load():
    """REQ-SET-03: a stored file breaking an invariant loads with the offending setting back at
    its default, every other value kept, SETTINGS_DEFAULTED and a problem naming both."""
    for low, high, gap in INVARIANTS:
        a = _edge(low, high, gap)
        values = dict(defaults(), audio_pause_s=60)
        values[low] = a
        values[high] = a + gap - 1  # broken by one
        assert not _holds(values)
        s = _load(encode(values))
        assert _holds(s.values), (low, high, s.values)
        assert s.defaulted and s["audio_pause_s"] == 60
        assert low in s.problems[0] and high in s.problems[0], s.problems
        assert "back to default" in s.problems[0]
        _short_strings(s.problems)
        for name in NAMES:  # only the pair's settings may have changed
            if name not in (low, high):
                assert s[name] == values[name], name


def test_offending_setting_is_the_one_off_its_default():
    """REQ-SET-03: desat 94 stored with the low limit at its default 90: only the desat limit
    goes back (85); map_low 65 (default) with sys_low 60: sys_low goes back."""
    v = dict(defaults(), spo2_desat=94, pr_high=140)
    s = _load(encode(v))
    assert s["spo2_desat"] == 85 and s["spo2_low"] == 90 and s["pr_high"] == 140
    assert s.problems == ["spo2_desat 94 must be below spo2_low 90: spo2_desat back to default 85"]
    s = _load(encode(dict(defaults(), sys_low=60)))
    assert s["sys_low"] == 90 and s["map_low"] == 65 and s.defaulted
    # both off their defaults and still broken after the first goes back: both go back
    s = _load(encode(dict(defaults(), map_low=100, sys_low=95)))
    assert (s["map_low"], s["sys_low"]) == (65, 90) and len(s.problems) == 2


def test_plain_json_of_today_migrates_every_key():
    """REQ-SET-04: today's plain JSON file ({name: value}, schema 1, no checksum) loads after a
    firmware update with every value kept, not defaulted; the device is told to rewrite it."""
    values = _all_changed()
    s = _load(json.dumps(values).encode())
    assert s.values == values
    assert not s.defaulted and s.problems == [] and s.needs_save
    # a file of the first release lacks the settings added since: they get their defaults
    old = {name: values[name] for name in FIRST_RELEASE}
    s = _load(json.dumps(old).encode())
    assert not s.defaulted and s.problems == [], s.problems
    for name in NAMES:
        assert s[name] == (values[name] if name in FIRST_RELEASE else SPEC[name][0]), name
    # rewritten in the current format it loads the same, nothing left to migrate
    again = _load(encode(s.values))
    assert again.values == s.values and not again.needs_save and not again.defaulted


def test_renamed_key_migrates():
    """REQ-SET-04: a setting stored under a retired name (RENAMED) loads under its new name;
    stored under both, the retired one is dropped and reported."""
    RENAMED["spo2_low_limit"] = "spo2_low"
    try:
        v = defaults()
        del v["spo2_low"]
        v["spo2_low_limit"] = 88
        s = _load(json.dumps(v).encode())
        assert s["spo2_low"] == 88 and not s.defaulted and s.problems == []
        s = _load(encode(dict(v, spo2_low=92)))
        assert s["spo2_low"] == 92 and s.defaulted
        assert "spo2_low_limit" in s.problems[0] and "spo2_low" in s.problems[0]
    finally:
        del RENAMED["spo2_low_limit"]


def test_unknown_key_drops_only_itself():
    """REQ-SET-05: an unknown key (e.g. from a newer firmware) is dropped and reported alone;
    every good value is kept; SETTINGS_DEFAULTED is set."""
    values = _all_changed()
    for raw in (
        encode(dict(values, beep_volume=3)),
        json.dumps(dict(values, beep_volume=3)).encode(),
    ):
        s = _load(raw)
        assert s.values == values
        assert s.defaulted and s.problems == ["unknown, dropped: beep_volume"], s.problems
    many = dict(values)
    for k in range(30):
        many["x%02d" % k] = k
    s = _load(encode(many))
    assert s.values == values
    assert s.problems == ["unknown, dropped: x00, x01, x02, x03, x04, x05 and 24 more"]
    s = _load(encode(dict(values, spo2_low="ninety", pr_high=500, latch_high=True)))
    assert (s["spo2_low"], s["pr_high"], s["latch_high"]) == (90, 130, 1)
    assert s["sys_high"] == values["sys_high"] and s.defaulted and len(s.problems) == 3
    assert "spo2_low must be a whole number; default 90 used" in s.problems


def test_missing_keys_and_empty_file_are_defaulted():
    """REQ-SET-05: a current-schema file with a key missing, `{}` and an empty values object
    are problems: the defaults fill in, SETTINGS_DEFAULTED, the missing names reported."""
    values = _all_changed()
    del values["pr_high"]
    s = _load(encode(values))
    assert s.defaulted and s.problems == ["missing, default used: pr_high"]
    assert s["pr_high"] == 130 and s["pr_low"] == values["pr_low"]
    s = _load(json.dumps(values).encode())  # schema 1 existed with pr_high: also a problem
    assert s.defaulted and s.problems == ["missing, default used: pr_high"]
    for raw in (b"{}", encode({})):
        s = _load(raw)
        assert s.defaulted and s.values == defaults(), raw
        assert s.problems[0].startswith("missing, default used: "), s.problems


def test_newer_schema_keeps_what_it_knows():
    """REQ-SET-05: a file from a newer firmware (after a downgrade) keeps every known good value
    and reports the schema and the unknown keys."""
    body = json.dumps({"schema": SCHEMA + 1, "values": dict(defaults(), spo2_low=88, nu=1)})
    raw = ("%08x " % (crc32(body.encode()) & 0xFFFFFFFF)).encode() + body.encode() + b"\n"
    s = _load(raw)
    assert s["spo2_low"] == 88 and s.defaulted
    assert "newer" in s.problems[0] and "unknown, dropped: nu" in s.problems


def test_flipped_digit_is_caught_by_the_checksum():
    """REQ-SET-06: a digit flipped to another in-range value, a torn write or a corrupt
    checksum is caught: nothing of the file is trusted, defaults, SETTINGS_DEFAULTED."""
    good = encode(dict(defaults(), spo2_low=88))
    assert _load(good)["spo2_low"] == 88
    flipped = good.replace(b'"spo2_low": 88', b'"spo2_low": 98')
    assert flipped != good
    s = _load(flipped)
    assert s["spo2_low"] == 90 and s.values == defaults()
    assert s.defaulted and s.problems == [CHECKSUM] and s.problems[0].startswith("checksum")
    other = b"1" if good[:1] == b"0" else b"0"
    for raw in (good[: len(good) // 2], good[:-2] + b"\n", other + good[1:], good + b"x"):
        s = _load(raw)
        assert s.defaulted and s.values == defaults() and s.problems == [CHECKSUM], raw


def test_corrupt_files_never_crash():
    """REQ-SET-07: deep nesting, non-object JSON, wrong types, huge strings, junk bytes, a
    store raising OSError: never an exception; defaults, defaulted, a short readable problem."""
    deep = b"[" * 4000 + b"]" * 4000
    deep_obj = b'{"a": ' * 1000 + b"1" + b"}" * 1000
    cases = [
        deep,
        deep_obj,
        b'{"spo2_low": ' + deep + b"}",
        b"{garbage",
        b"[1, 2]",
        b"null",
        b"1",
        b'"x"',
        b"",
        b"\xff\xfe\x00",
        b"{\xff}",
        b"\x00" * 100,
        b"x" * 20000,
        b'{"spo2_low": "' + b"9" * 6000 + b'"}',
        b'{"' + b"k" * 6000 + b'": 1}',
    ]
    for body in (
        deep,
        b"[]",
        b'{"schema": "2", "values": {}}',
        b'{"schema": 2, "values": []}',
        b'{"schema": true, "values": {}}',
        b'{"schema": 0, "values": {}}',
    ):
        cases.append(("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n")
    for raw in cases:
        s = _load(raw)
        assert s.defaulted, raw[:40]
        assert s.values == defaults() and _holds(s.values), raw[:40]
        assert s.problems, raw[:40]
        _short_strings(s.problems)

    class Broken:
        def read(self, name):
            raise OSError(5)

    s = read_settings(Broken())
    assert s.defaulted and s.values == defaults() and s.problems[0].startswith("unreadable: ")
    s = Settings()
    assert s.load(None) is False and s.defaulted and s.values == defaults()
    assert s.load([1]) is False and s.load({"spo2_low": 88}) is False and s["spo2_low"] == 88


def test_first_boot_is_not_defaulted():
    """REQ-SET-05: no file yet (first boot) or no store: defaults, not an error."""
    for s in (read_settings(MemStore()), read_settings(None)):
        assert s.values == defaults() and not s.defaulted and s.problems == []
        assert not s.needs_save


def test_saved_or_reset_clears_defaulted():
    """REQ-SET-08: SETTINGS_DEFAULTED clears once valid settings are saved, or when an operator
    reset acknowledges it; a saved file then loads clean."""
    store = MemStore({SETTINGS_FILE: b"{garbage"})
    s = read_settings(store)
    assert s.defaulted and s.problems
    assert s.set("spo2_low", 88) is None and s.defaulted  # a change alone is not a save
    store.write(SETTINGS_FILE, encode(s.values))
    s.saved()
    assert not s.defaulted and s.problems == []
    again = read_settings(store)
    assert not again.defaulted and again["spo2_low"] == 88
    s = _load(encode({}))
    assert s.defaulted
    s.reset_defaulted()
    assert not s.defaulted and s.problems == []


def test_no_op_set_is_detected():
    """REQ-SET-09: would_change tells a set to the current value from a real change, so the
    device writes and logs nothing for it; an invalid value is still refused."""
    s = Settings()
    assert not s.would_change("spo2_low", 90)
    assert s.would_change("spo2_low", 88)
    assert s.would_change("latch_high", True)  # not the stored 1 (and refused by check_set)
    assert s.check_set("latch_high", True, ORG)
    assert not s.would_change("spo2_delay_mode", "fixed") and s.would_change("x", 1)
    assert s.set("spo2_low", 88) is None and not s.would_change("spo2_low", 88)
    assert s.check_set("oxi_format", s["oxi_format"], OPERATOR)  # no-op, but still not allowed


def test_file_round_trip_and_crc():
    """REQ-SET-06: encode/decode round-trip with the current schema; the CRC-32 is the
    IEEE/zlib one (check value of "123456789"), the same with or without binascii."""
    values = _all_changed()
    raw = encode(values)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert decode(raw) == (SCHEMA, values)
    assert decode(json.dumps(values).encode()) == (1, values)
    assert crc32_soft(b"123456789") == 0xCBF43926 == crc32(b"123456789") & 0xFFFFFFFF
    body = raw[9:-1]
    assert crc32_soft(body) == crc32(body) & 0xFFFFFFFF == int(raw[:8], 16)
