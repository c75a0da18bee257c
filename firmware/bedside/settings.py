# settings.py: every setting's default, range and who may change it, the limits checked against
# each other (INVARIANTS), and the settings file on flash (schema, CRC-32): the one
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
# Reading the file (decode, migrations, the checks of a stored file) is in bedside.settingsfile,
# imported for that moment (at boot) and released after: it takes no RAM while the device runs.
import json
import sys

import bedside
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
SCHEMA = 3  # the schema this firmware writes; raise it with a MIGRATIONS entry (settingsfile)
_NAME_SHOWN = const(40)  # characters of an unknown name quoted in a problem
CHECKSUM = "checksum mismatch: stored settings corrupt, defaults in force"

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


def _broken(low, a, high, b, gap):
    """The readable text of a broken invariant (both names, both values), or None."""
    if a + gap <= b:
        return None
    if gap == 1:
        return "%s %d must be below %s %d" % (low, a, high, b)
    return "%s %d must be at least %d below %s %d" % (low, a, gap, high, b)


def encode(values):
    """The whole settings file (bytes) for the values dict: schema, CRC-32 and values. Built
    from small pieces with a running CRC and joined once: one file-sized block, not four (a
    set at run time on a fragmented Pico-sized heap)."""
    out = [('{"schema": %d, "values": {' % SCHEMA).encode()]
    names = sorted(values)
    last = len(names) - 1
    for i, name in enumerate(names):
        end = ", " if i < last else ""
        out.append(("%s: %s%s" % (json.dumps(name), json.dumps(values[name]), end)).encode())
    out.append(b"}}")
    c = 0
    for part in out:
        c = crc32(part, c)
    out.insert(0, ("%08x " % (c & 0xFFFFFFFF)).encode())
    out.append(b"\n")
    return b"".join(out)


def decode(raw):
    """(schema, values dict) of a settings file's bytes, not yet checked against SPEC.
    Raises ValueError with a readable reason: CHECKSUM, or "unreadable: ..."."""
    from bedside import settingsfile

    try:
        return settingsfile.decode(raw)
    finally:
        _release()


def read_settings(store):
    """The Settings in force at boot, from store.read(SETTINGS_FILE). No store or no file
    (first boot): defaults, not defaulted. An unreadable or corrupt file: defaults, defaulted,
    and the reason in `problems`. Never raises: nothing here may stop the device booting."""
    if store is None:
        return Settings()
    try:
        from bedside import settingsfile
    except Exception as e:  # MemoryError: the file cannot be read, the defaults can
        s = Settings()
        s._unreadable("unreadable: %s" % type(e).__name__)
        return s
    try:
        return settingsfile.read_settings(store)
    finally:
        _release()


def _release():
    """Drop bedside.settingsfile (imported for a read): its RAM is free again."""
    sys.modules.pop("bedside.settingsfile", None)
    if hasattr(bedside, "settingsfile"):
        delattr(bedside, "settingsfile")


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
        default and a line in `problems`. Returns True when there was no problem.
        (bedside.settingsfile.load, imported for the moment.)"""
        from bedside import settingsfile

        try:
            return settingsfile.load(self, stored, schema)
        finally:
            _release()

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
