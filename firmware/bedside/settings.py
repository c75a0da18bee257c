# settings.py: every setting's default, range and who may change it, the limits checked against
# each other (INVARIANTS), and the settings file on flash (schema, CRC-32, MIGRATIONS): the one
# source of truth. Docs (docs/settings.md), the host tools and the tests read these tables;
# nothing else holds a default. DEFAULTS ARE STARTING POINTS THAT A CLINIC MUST REVIEW (not
# clinical advice). Pure: the flash store is passed in; nothing here runs per tick.
#
# File (SETTINGS_FILE): one line "<crc32 of BODY, 8 hex> BODY\n", BODY = JSON
# {"schema": SCHEMA, "values": {name: value}}. The first releases wrote plain JSON
# {name: value} without a checksum: that is schema 1. Loading migrates an older schema
# (MIGRATIONS, then RENAMED), keeps every good value, and drops (to its default) and reports
# only an offending one: unknown, out of range, or breaking an invariant. A checksum mismatch
# or unreadable file trusts nothing: all defaults. Any problem sets `defaulted`
# (SETTINGS_DEFAULTED) until valid settings are saved or an operator reset acknowledges it.
import json

from bedside.compat import const
from bedside.crc import crc32
from bedside.sensors import OXIMETER_FORMATS

OPERATOR = const(0)  # the nurse at the chair may change it
ORG = const(1)  # only the responsible organisation (clinic configuration)

# name: (default, low, high, unit, access). For choice settings low is a tuple of choices and
# high is None. What each setting means is in bedside.settings_help (docs and host tools only:
# the device never needs the text, so it takes no RAM there).
SPEC = {
    # --- SpO2 (alarms.md 4.2, 6.1) ---
    "spo2_low": (90, 80, 98, "%", OPERATOR),
    "spo2_desat": (85, 70, 94, "%", OPERATOR),
    "spo2_delay_mode": (
        "fixed",
        ("fixed", "integral"),
        None,
        "",
        ORG,
    ),
    "spo2_integral_ref": (
        "limit",
        ("limit", "above_limit"),
        None,
        "",
        ORG,
    ),
    "spo2_low_delay_s": (10, 0, 15, "s", OPERATOR),
    "spo2_integral_limit": (
        25,
        (10, 25, 50, 100),
        None,
        "%*s",
        ORG,
    ),
    "spo2_escalate_s": (60, 0, 300, "s", ORG),
    "spo2_hold_nibp": (
        0,
        0,
        1,
        "",
        ORG,
    ),
    "spo2_hold_max_s": (60, 10, 180, "s", ORG),
    # --- pulse rate ---
    "pr_low": (50, 30, 100, "/min", OPERATOR),
    "pr_high": (130, 80, 220, "/min", OPERATOR),
    "pr_delay_s": (10, 0, 30, "s", ORG),
    # --- NIBP (checked when a reading arrives) ---
    "sys_high": (180, 100, 250, "mmHg", OPERATOR),
    "sys_low": (90, 60, 140, "mmHg", OPERATOR),
    "dia_high": (110, 60, 150, "mmHg", OPERATOR),
    "map_low": (65, 40, 100, "mmHg", OPERATOR),
    "bp_rise_pct": (30, 0, 100, "%", OPERATOR),
    "nibp_interval_min": (5, 0, 60, "min", OPERATOR),
    "nibp_patient": (
        "adult",
        ("adult", "pediatric", "neonate"),
        None,
        "",
        ORG,
    ),
    # --- technical ---
    "oxi_format": (
        "nonin2",
        tuple(sorted(OXIMETER_FORMATS)),
        None,
        "",
        ORG,
    ),
    "oxi_baud": (
        0,
        (0, 4800, 9600, 19200, 38400, 57600, 115200),
        None,
        "baud",
        ORG,
    ),
    "oxi_comm_timeout_s": (
        5,
        2,
        30,
        "s",
        ORG,
    ),
    "oxi_stale_s": (30, 10, 60, "s", ORG),
    "oxi_poor_signal_s": (15, 5, 120, "s", ORG),
    "host_timeout_s": (10, 3, 120, "s", ORG),
    # --- alarm signals and inactivation ---
    "audio_pause_s": (120, 30, 300, "s", ORG),
    "latch_high": (1, 0, 1, "", ORG),
    "latch_medium": (0, 0, 1, "", ORG),
    "audio_off_allowed": (
        0,
        0,
        1,
        "",
        ORG,
    ),
    "audio_off_reminder_min": (
        5,
        1,
        15,
        "min",
        ORG,
    ),
    "limit_step": (
        5,
        0,
        50,
        "",
        ORG,
    ),
    "sounder_hz": (
        600,
        150,
        660,
        "Hz",
        ORG,
    ),
    # --- infusion session (docs/session.md) ---
    "baseline_gap_min": (3, 1, 15, "min", ORG),
    "baseline_stable_s": (60, 10, 600, "s", ORG),
    "nibp_first_min": (5, 1, 30, "min", ORG),
    "nibp_infusion_min": (15, 1, 60, "min", ORG),
    "nibp_recovery_min": (15, 1, 60, "min", ORG),
    "nibp_min_gap_s": (30, 10, 300, "s", ORG),
    "check_interval_min": (15, 5, 60, "min", ORG),
    "check_grace_min": (5, 1, 30, "min", ORG),
    "check_escalate_s": (300, 0, 1800, "s", ORG),
    "sedation_score_max": (2, 0, 4, "", ORG),
    "sedation_priority": (
        "medium",
        ("low", "medium", "high"),
        None,
        "",
        ORG,
    ),
    "recovery_min": (60, 30, 240, "min", ORG),
    "discharge_band_pct": (20, 5, 50, "%", ORG),
    "discharge_spo2": (92, 85, 99, "%", ORG),
    "aldrete_min": (9, 0, 10, "", ORG),
    "padss_min": (9, 0, 10, "", ORG),
}


NAMES = tuple(sorted(SPEC))

# Limits checked against each other, on every change and on load: (low, high, gap) means
# value[low] + gap <= value[high]. The defaults satisfy every row (tests/mp/test_settings.py).
INVARIANTS = (
    ("spo2_desat", "spo2_low", 1),  # the deep-desaturation limit lies below the SpO2 low limit
    ("pr_low", "pr_high", 1),
    ("sys_low", "sys_high", 1),
    ("map_low", "sys_low", 1),  # the mean pressure is always below the systolic
    ("dia_high", "sys_high", 1),  # the diastolic is always below the systolic
    # a silent module must raise OXI_COMM_LOST before it could look like OXI_DATA_STALE
    ("oxi_comm_timeout_s", "oxi_stale_s", 1),
)

# --- the file on flash ---------------------------------------------------------------------
SETTINGS_FILE = "settings.json"
SCHEMA = 3  # the schema this firmware writes; raise it with a MIGRATIONS entry on any change
_MAX_FILE = const(8192)  # bytes; larger is not a settings file (today's is under 700 bytes)
_NAME_SHOWN = const(40)  # characters of an unknown name quoted in a problem
_LISTED = const(6)  # names listed one by one in a problem, the rest counted
CHECKSUM = "checksum mismatch: stored settings corrupt, defaults in force"

# Settings added while the file was schema 1 (plain JSON): a file from the first release lacks
# them, which is not a problem. (git: latch_medium, spo2_integral_ref, audio_off_allowed and
# audio_off_reminder_min came with the integrated-deficit delay, oxi_baud with oximeter_link.)
_ADDED_IN_SCHEMA_1 = (
    "audio_off_allowed",
    "audio_off_reminder_min",
    "latch_medium",
    "oxi_baud",
    "spo2_integral_ref",
)


def _from_1(values):
    """Plain JSON without a checksum (first releases): settings added since then get defaults."""
    return _add(_ADDED_IN_SCHEMA_1, values)


# Settings added with the infusion session and the limit-widening confirmation (schema 3).
_ADDED_IN_SCHEMA_2 = (
    "aldrete_min", "baseline_gap_min", "baseline_stable_s", "check_escalate_s",
    "check_grace_min", "check_interval_min", "discharge_band_pct", "discharge_spo2",
    "nibp_first_min", "nibp_infusion_min", "nibp_min_gap_s", "nibp_recovery_min", "padss_min",
    "recovery_min", "sedation_priority", "sedation_score_max", "limit_step",
)  # fmt: skip


def _add(names, values):
    for name in names:
        if name not in values:
            values[name] = SPEC[name][0]
    return values


def _from_2(values):
    """Schema 2 (before the infusion session and the confirmation of widened limits): the
    session settings and limit_step get their defaults."""
    return _add(_ADDED_IN_SCHEMA_2, values)


# schema n -> function(values dict of schema n) -> values dict of schema n + 1. A migration sees
# the names of its own schema; RENAMED is applied after all migrations.
MIGRATIONS = {1: _from_1, 2: _from_2}

# retired name -> current name, for every setting ever renamed. Never reuse a retired name.
RENAMED = {}  # type: dict[str, str]


def is_choice(name):
    return SPEC[name][2] is None


def defaults():
    return {name: SPEC[name][0] for name in SPEC}


def check(name, value):
    """Return an error string, or None when `value` is valid for setting `name` on its own."""
    if name not in SPEC:
        return "unknown setting %s" % _short(name)
    _default, low, high, unit, _access = SPEC[name]
    if high is None:
        if isinstance(value, bool) or value not in low:
            return "%s must be one of %s" % (name, ", ".join(str(c) for c in low))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "%s must be a whole number" % name
    if value < low or value > high:
        return "%s must be within %d..%d %s" % (name, low, high, unit)
    return None


def _short(name):
    text = name if isinstance(name, str) else repr(name)
    return text if len(text) <= _NAME_SHOWN else text[:_NAME_SHOWN] + "..."


def _listed(names):
    """'a, b, c, d, e, f and 5 more': a bounded problem text however many names."""
    text = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        text += " and %d more" % (len(names) - _LISTED)
    return text


def _broken(low, a, high, b, gap):
    """The readable text of a broken invariant (both names, both values), or None."""
    if a + gap <= b:
        return None
    if gap == 1:
        return "%s %d must be below %s %d" % (low, a, high, b)
    return "%s %d must be at least %d below %s %d" % (low, a, gap, high, b)


def _repair(values, problems):
    """Put back to default the setting that breaks an invariant: the one not at its default
    (both differ: `high` first, then `low` if still needed). Repeats until all rows hold."""
    again = True
    while again:
        again = False
        for low, high, gap in INVARIANTS:
            text = _broken(low, values[low], high, values[high], gap)
            if text is None:
                continue
            name = high if values[high] != SPEC[high][0] else low
            if values[name] == SPEC[name][0]:
                continue  # both at default: cannot happen (the defaults satisfy every row)
            values[name] = SPEC[name][0]
            problems.append("%s: %s back to default %s" % (text, name, SPEC[name][0]))
            again = True


def encode(values):
    """The whole settings file (bytes) for the values dict: schema, CRC-32 and values."""
    parts = []
    for name in sorted(values):
        parts.append("%s: %s" % (json.dumps(name), json.dumps(values[name])))
    body = ('{"schema": %d, "values": {%s}}' % (SCHEMA, ", ".join(parts))).encode()
    return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"


def _json(data):
    try:
        return json.loads(data)
    except Exception:  # ValueError, RecursionError, MicroPython MemoryError ...
        raise ValueError("unreadable: not JSON") from None


def _is_hex(data):
    for byte in data:
        if not (48 <= byte <= 57 or 97 <= byte <= 102):  # 0-9 a-f
            return False
    return True


def decode(raw):
    """(schema, values dict) of a settings file's bytes, not yet checked against SPEC.
    Raises ValueError with a readable reason: CHECKSUM, or "unreadable: ..."."""
    if len(raw) > _MAX_FILE:
        raise ValueError("unreadable: %d bytes is too large for a settings file" % len(raw))
    raw = bytes(raw)
    if raw.lstrip()[:1] == b"{":  # schema 1: plain JSON {name: value}, no checksum
        values = _json(raw)
        if not isinstance(values, dict):
            raise ValueError("unreadable: not a settings object")
        return 1, values
    if len(raw) < 10 or raw[8:9] != b" " or not _is_hex(raw[:8]):
        raise ValueError("unreadable: not a settings file")
    body = raw[9:-1] if raw[-1:] == b"\n" else raw[9:]
    if int(raw[:8], 16) != crc32(body) & 0xFFFFFFFF:
        raise ValueError(CHECKSUM)
    doc = _json(body)
    if not isinstance(doc, dict):
        raise ValueError("unreadable: not a settings object")
    schema = doc.get("schema")
    values = doc.get("values")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise ValueError("unreadable: no valid schema number")
    if not isinstance(values, dict):
        raise ValueError("unreadable: no settings values")
    return schema, values


def read_settings(store):
    """The Settings in force at boot, from store.read(SETTINGS_FILE). No store or no file
    (first boot): defaults, not defaulted. An unreadable or corrupt file: defaults, defaulted,
    and the reason in `problems`. Never raises: nothing here may stop the device booting."""
    s = Settings()
    if store is None:
        return s
    try:
        raw = store.read(SETTINGS_FILE)
    except Exception as e:  # OSError from the flash, or anything else
        s._unreadable("unreadable: %s %s" % (type(e).__name__, e))
        return s
    if raw is None:
        return s
    try:
        schema, values = decode(raw)
    except ValueError as e:
        s._unreadable(str(e))
        return s
    except Exception as e:  # MemoryError on a huge file, ...
        s._unreadable("unreadable: %s" % type(e).__name__)
        return s
    s.load(values, schema)
    return s


class Settings:
    """The settings in force. Every change is validated (range, access, INVARIANTS) before it
    is made; defaults come from SPEC.

    values: {name: value}, always valid. defaulted: True while stored settings were unreadable
    or had keys dropped/defaulted/missing (SETTINGS_DEFAULTED). problems: readable strings, one
    per problem found at load. needs_save: the file loaded cleanly but in an older schema; the
    device should write encode(values) once (then call saved())."""

    def __init__(self):
        self.values = defaults()
        self.defaulted = False
        self.problems = []
        self.needs_save = False

    def __getitem__(self, name):
        return self.values[name]

    def check_set(self, name, value, access=OPERATOR):
        """The error string that set() would give, or None. Changes nothing."""
        return self._check({name: value}, access)

    def would_change(self, name, value):
        """True unless `name` already has exactly this value (a set to it is a no-op)."""
        if name not in self.values:
            return True
        cur = self.values[name]
        return type(cur) is not type(value) or cur != value

    def set(self, name, value, access=OPERATOR):
        """Change one setting; returns an error string or None. Nothing changes on error."""
        err = self._check({name: value}, access)
        if err is None:
            self.values[name] = value
        return err

    def set_many(self, changes, access=OPERATOR):
        """Change several settings at once, checked together (so the order of, e.g., raising
        both SpO2 limits does not matter); error string or None. All or nothing."""
        err = self._check(changes, access)
        if err is None:
            for name in changes:
                self.values[name] = changes[name]
        return err

    def _check(self, changes, access):
        for name in changes:
            err = check(name, changes[name])
            if err:
                return err
            if SPEC[name][4] > access:
                return "%s may be changed only by the responsible organisation" % name
        for low, high, gap in INVARIANTS:
            if low in changes or high in changes:
                a = changes[low] if low in changes else self.values[low]
                b = changes[high] if high in changes else self.values[high]
                text = _broken(low, a, high, b, gap)
                if text:
                    return text
        return None

    def load(self, stored, schema=SCHEMA):
        """Apply the values dict of a settings file of `schema` (migrated first). Keeps every
        good value; an unknown, invalid or missing one, or one breaking an invariant, gets its
        default and a line in `problems`. Returns True when there was no problem."""
        if not isinstance(stored, dict):
            self._unreadable("unreadable: not a settings object")
            return False
        values = defaults()
        problems = []
        stored = dict(stored)  # the caller's dict is left as it was
        older = schema < SCHEMA
        if schema > SCHEMA:
            problems.append("schema %d is newer than this firmware's %d" % (schema, SCHEMA))
        while schema < SCHEMA:
            migrate = MIGRATIONS.get(schema)
            if migrate is not None:
                stored = migrate(stored)
            schema += 1
        for old in RENAMED:
            if old in stored:
                value = stored.pop(old)
                new = RENAMED[old]
                if new in stored:
                    problems.append("%s dropped: its new name %s is also stored" % (old, new))
                else:
                    stored[new] = value
        missing = []
        for name in NAMES:
            if name not in stored:
                missing.append(name)
                continue
            value = stored.pop(name)
            err = check(name, value)
            if err:
                problems.append("%s; default %s used" % (err, SPEC[name][0]))
            else:
                values[name] = value
        if stored:  # whatever is left is unknown to this firmware
            problems.append("unknown, dropped: " + _listed(sorted(_short(n) for n in stored)))
        if missing:
            problems.append("missing, default used: " + ", ".join(missing))
        _repair(values, problems)
        self.values = values
        self.problems = problems
        self.defaulted = bool(problems)
        self.needs_save = older and not problems
        return not problems

    def _unreadable(self, problem):
        self.values = defaults()
        self.problems = [problem]
        self.defaulted = True
        self.needs_save = False

    def saved(self):
        """The device wrote encode(values) to flash: the stored settings are valid now."""
        self.defaulted = False
        self.problems = []
        self.needs_save = False

    def reset_defaulted(self):
        """An operator reset acknowledged SETTINGS_DEFAULTED (the values stay as they are)."""
        self.defaulted = False
        self.problems = []
