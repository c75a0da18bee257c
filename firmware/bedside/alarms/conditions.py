# conditions.py: every alarm condition, its kind, priority, latching and delay: the one table.
# Condition ids are part of the host protocol (docs/protocol.md) and docs/alarms.md.
# Priorities follow the risk reasoning in docs/alarms.md (IEC 60601-1-8 Table 1).
from bedside.compat import const

P_NONE = const(0)
P_LOW = const(1)
P_MEDIUM = const(2)
P_HIGH = const(3)
PRIORITY_NAMES = ("none", "low", "medium", "high")

PHYSIOLOGICAL = const(0)
TECHNICAL = const(1)
KIND_NAMES = ("physiological", "technical")

# Latching codes: never, always, or per setting by the current priority (latch_high for HIGH,
# latch_medium for MEDIUM; responsible organisation only): all physiological conditions.
L_NO = const(0)
L_YES = const(1)
L_SETTING = const(2)

# Indices into CONDITIONS (a test checks they match the table order).
SPO2_DESAT = const(0)
SPO2_LOW = const(1)
PR_LOW = const(2)
PR_HIGH = const(3)
NIBP_SYS_HIGH = const(4)
NIBP_SYS_LOW = const(5)
NIBP_DIA_HIGH = const(6)
NIBP_MAP_LOW = const(7)
BP_RISE = const(8)
OXI_SENSOR_OFF = const(9)
OXI_SIGNAL_POOR = const(10)
OXI_COMM_LOST = const(11)
OXI_DATA_STALE = const(12)
NIBP_FAILED = const(13)
NIBP_OVERDUE = const(14)
NIBP_COMM_LOST = const(15)
HOST_LINK_LOST = const(16)
DEVICE_RESTARTED = const(17)
SETTINGS_DEFAULTED = const(18)
CHECK_OVERDUE = const(19)
NIBP_CUFF_FAULT = const(20)
STORAGE_FAULT = const(21)
CORE_FAULT = const(22)
SEDATION_DEEP = const(23)
TEST_HIGH = const(24)
TEST_MEDIUM = const(25)
TEST_LOW = const(26)
COUNT = const(27)

# (id, kind, priority, latching, delay (setting name in s, or fixed ms),
#  escalation ((setting name in s, priority) or None), title for the display and the monitor)
CONDITIONS = (
    ("SPO2_DESAT", PHYSIOLOGICAL, P_HIGH, L_SETTING, 0, None, "SpO2 DESAT"),
    (
        "SPO2_LOW",
        PHYSIOLOGICAL,
        P_MEDIUM,
        L_SETTING,
        "spo2_low_delay_s",
        ("spo2_escalate_s", P_HIGH),
        "SpO2 LOW",
    ),
    ("PR_LOW", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, "pr_delay_s", None, "PULSE LOW"),
    ("PR_HIGH", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, "pr_delay_s", None, "PULSE HIGH"),
    ("NIBP_SYS_HIGH", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, 0, None, "SYS HIGH"),
    ("NIBP_SYS_LOW", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, 0, None, "SYS LOW"),
    ("NIBP_DIA_HIGH", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, 0, None, "DIA HIGH"),
    ("NIBP_MAP_LOW", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, 0, None, "MAP LOW"),
    ("BP_RISE", PHYSIOLOGICAL, P_LOW, L_SETTING, 0, None, "BP RISE"),
    ("OXI_SENSOR_OFF", TECHNICAL, P_MEDIUM, L_NO, 0, None, "SpO2 SENSOR OFF"),
    ("OXI_SIGNAL_POOR", TECHNICAL, P_LOW, L_NO, "oxi_poor_signal_s", None, "SpO2 POOR SIGNAL"),
    ("OXI_COMM_LOST", TECHNICAL, P_MEDIUM, L_NO, 0, None, "OXI COMM LOST"),
    ("OXI_DATA_STALE", TECHNICAL, P_MEDIUM, L_NO, 0, None, "SpO2 NOT CURRENT"),
    ("NIBP_FAILED", TECHNICAL, P_LOW, L_NO, 0, None, "NIBP FAILED"),
    ("NIBP_OVERDUE", TECHNICAL, P_MEDIUM, L_NO, 0, None, "NIBP OVERDUE"),
    ("NIBP_COMM_LOST", TECHNICAL, P_MEDIUM, L_NO, 0, None, "NIBP COMM LOST"),
    ("HOST_LINK_LOST", TECHNICAL, P_LOW, L_NO, 0, None, "HOST LINK LOST"),
    ("DEVICE_RESTARTED", TECHNICAL, P_MEDIUM, L_NO, 0, None, "DEVICE RESTARTED"),
    ("SETTINGS_DEFAULTED", TECHNICAL, P_MEDIUM, L_NO, 0, None, "DEFAULT SETTINGS"),
    (
        "CHECK_OVERDUE",
        TECHNICAL,
        P_LOW,
        L_NO,
        0,
        ("check_escalate_s", P_MEDIUM),
        "CHECK OVERDUE",
    ),
    ("NIBP_CUFF_FAULT", TECHNICAL, P_HIGH, L_NO, 0, None, "CUFF NOT DEFLATED"),
    ("STORAGE_FAULT", TECHNICAL, P_LOW, L_NO, 0, None, "STORAGE FAULT"),
    ("CORE_FAULT", TECHNICAL, P_MEDIUM, L_NO, 0, None, "DEVICE FAULT"),
    ("SEDATION_DEEP", PHYSIOLOGICAL, P_MEDIUM, L_SETTING, 0, None, "SEDATION DEEP"),
    ("TEST_HIGH", TECHNICAL, P_HIGH, L_NO, 0, None, "TEST ALARM HIGH"),
    ("TEST_MEDIUM", TECHNICAL, P_MEDIUM, L_NO, 0, None, "TEST ALARM MED"),
    ("TEST_LOW", TECHNICAL, P_LOW, L_NO, 0, None, "TEST ALARM LOW"),
)

IDS = tuple(c[0] for c in CONDITIONS)

# Conditions whose priority is an organisation setting (a choice of PRIORITY_NAMES); the table's
# priority above is that setting's default.
PRIORITY_SETTING = ((SEDATION_DEEP, "sedation_priority"),)


def base_priority(i, s):
    """Condition i's priority when it starts: the table's, or its setting's."""
    for j, name in PRIORITY_SETTING:
        if j == i:
            return PRIORITY_NAMES.index(s[name])
    return CONDITIONS[i][2]


def index(cond_id):
    """Index of a condition id such as "SPO2_LOW" (ValueError if unknown)."""
    return IDS.index(cond_id)
