# settings.py: every setting's default, range and who may change it: the one source of truth.
# Docs (docs/settings.md), the host tools and the tests read this table; nothing else holds a
# default. DEFAULTS ARE STARTING POINTS THAT A CLINIC MUST REVIEW (not clinical advice).
from bedside.compat import const
from bedside.sensors import OXIMETER_FORMATS

OPERATOR = const(0)  # the nurse at the chair may change it
ORG = const(1)  # only the responsible organisation (clinic configuration)

# name: (default, low, high, unit, access, help). For choice settings low is a tuple of choices
# and high is None.
SPEC = {
    # --- SpO2 (alarms.md 4.2, 6.1) ---
    "spo2_low": (90, 80, 98, "%", OPERATOR, "SpO2 low limit (SPO2_LOW below it)"),
    "spo2_desat": (85, 70, 94, "%", OPERATOR, "deep desaturation limit, no delay (SPO2_DESAT)"),
    "spo2_delay_mode": (
        "fixed",
        ("fixed", "integral"),
        None,
        "",
        ORG,
        "SPO2_LOW delay: fixed seconds, or integrated deficit (%-points x s)",
    ),
    "spo2_integral_ref": (
        "limit",
        ("limit", "above_limit"),
        None,
        "",
        ORG,
        "integral mode: deficit counted from the limit, or from limit+1 (UNCONFIRMED which)",
    ),
    "spo2_low_delay_s": (10, 0, 15, "s", OPERATOR, "SPO2_LOW condition delay (fixed mode)"),
    "spo2_integral_limit": (
        25,
        (10, 25, 50, 100),
        None,
        "%*s",
        ORG,
        "SPO2_LOW integrated-deficit threshold (integral mode)",
    ),
    "spo2_escalate_s": (60, 0, 300, "s", ORG, "SPO2_LOW escalates to HIGH after this; 0 = never"),
    "spo2_hold_nibp": (
        0,
        0,
        1,
        "",
        ORG,
        "hold SpO2 alarms while the NIBP cuff inflates (same arm)",
    ),
    "spo2_hold_max_s": (60, 10, 180, "s", ORG, "cap on the NIBP-inflation hold"),
    # --- pulse rate ---
    "pr_low": (50, 30, 100, "/min", OPERATOR, "pulse rate low limit (PR_LOW)"),
    "pr_high": (130, 80, 220, "/min", OPERATOR, "pulse rate high limit (PR_HIGH)"),
    "pr_delay_s": (10, 0, 30, "s", ORG, "pulse rate condition delay"),
    # --- NIBP (checked when a reading arrives) ---
    "sys_high": (180, 100, 250, "mmHg", OPERATOR, "systolic high limit (NIBP_SYS_HIGH)"),
    "sys_low": (90, 60, 140, "mmHg", OPERATOR, "systolic low limit (NIBP_SYS_LOW)"),
    "dia_high": (110, 60, 150, "mmHg", OPERATOR, "diastolic high limit (NIBP_DIA_HIGH)"),
    "map_low": (65, 40, 100, "mmHg", OPERATOR, "mean pressure low limit (NIBP_MAP_LOW)"),
    "bp_rise_pct": (30, 0, 100, "%", OPERATOR, "systolic rise over baseline (BP_RISE); 0 = off"),
    "nibp_interval_min": (5, 0, 60, "min", OPERATOR, "automatic NIBP interval; 0 = manual only"),
    "nibp_patient": (
        "adult",
        ("adult", "pediatric", "neonate"),
        None,
        "",
        ORG,
        "NIBP patient type",
    ),
    # --- technical ---
    "oxi_format": (
        "nonin2",
        tuple(sorted(OXIMETER_FORMATS)),
        None,
        "",
        ORG,
        "pulse-oximeter module wire format",
    ),
    "oxi_baud": (
        0,
        (0, 4800, 9600, 19200, 38400, 57600, 115200),
        None,
        "baud",
        ORG,
        "oximeter UART baud rate; 0 = the format's documented rate (BerryMed: UNCONFIRMED)",
    ),
    "oxi_comm_timeout_s": (
        5,
        2,
        30,
        "s",
        ORG,
        "no valid oximeter data for this long: OXI_COMM_LOST",
    ),
    "oxi_stale_s": (30, 10, 60, "s", ORG, "no current SpO2 for this long: OXI_DATA_STALE"),
    "oxi_poor_signal_s": (15, 5, 120, "s", ORG, "searching/artifact/low perfusion sustained"),
    "host_timeout_s": (10, 3, 120, "s", ORG, "no host traffic for this long: HOST_LINK_LOST"),
    # --- alarm signals and inactivation ---
    "audio_pause_s": (120, 30, 300, "s", ORG, "audio pause length after a short ACK press"),
    "latch_high": (1, 0, 1, "", ORG, "HIGH physiological alarms latch until reset"),
    "latch_medium": (0, 0, 1, "", ORG, "MEDIUM physiological alarms latch until reset"),
    "audio_off_allowed": (
        0,
        0,
        1,
        "",
        ORG,
        "AUDIO OFF may be entered (host command audio_off); 0 = never",
    ),
    "audio_off_reminder_min": (
        5,
        1,
        15,
        "min",
        ORG,
        "while AUDIO OFF: one reminder pulse this often",
    ),
    "sounder_hz": (
        600,
        150,
        660,
        "Hz",
        ORG,
        "alarm tone f0 (IEC 150-1000 Hz; <= 660 keeps 4 harmonics under 4 kHz)",
    ),
}

NAMES = tuple(sorted(SPEC))


def is_choice(name):
    return SPEC[name][2] is None


def defaults():
    return {name: SPEC[name][0] for name in SPEC}


def check(name, value):
    """Return an error string, or None when `value` is valid for setting `name`."""
    if name not in SPEC:
        return "unknown setting %s" % name
    _default, low, high, unit, _access, _help = SPEC[name]
    if high is None:
        if value not in low:
            return "%s must be one of %s" % (name, ", ".join(str(c) for c in low))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "%s must be a whole number" % name
    if value < low or value > high:
        return "%s must be within %d..%d %s" % (name, low, high, unit)
    return None


class Settings:
    """The settings in force. Values are validated on every change; defaults come from SPEC."""

    def __init__(self):
        self.values = defaults()
        self.defaulted = False  # True when stored settings were unreadable (SETTINGS_DEFAULTED)

    def __getitem__(self, name):
        return self.values[name]

    def set(self, name, value, access=OPERATOR):
        """Change one setting; returns (error or None, changed). Nothing changes on error."""
        err = check(name, value)
        if err:
            return err, False
        if SPEC[name][4] > access:
            return "%s may be changed only by the responsible organisation" % name, False
        changed = self.values[name] != value
        self.values[name] = value
        return None, changed

    def saved(self):
        self.defaulted = False

    def reset_defaulted(self):
        self.defaulted = False

    def load(self, stored):
        """Apply a dict read from flash. Any bad entry: keep defaults for all, flag defaulted."""
        if not isinstance(stored, dict):
            self.values = defaults()
            self.defaulted = True
            return False
        fresh = defaults()
        for name, value in stored.items():
            if check(name, value):
                self.values = defaults()
                self.defaulted = True
                return False
            fresh[name] = value
        self.values = fresh
        self.defaulted = False
        return True


SETTINGS_FILE = "settings.json"


def encode(values):
    import json

    return json.dumps(values).encode()


def read_settings(store):
    import json

    settings = Settings()
    try:
        raw = store.read(SETTINGS_FILE) if store is not None else None
    except OSError:
        settings.defaulted = True
        return settings
    if raw is None:
        return settings
    try:
        stored = json.loads(raw)
    except Exception:
        stored = None
    settings.load(stored)
    return settings
