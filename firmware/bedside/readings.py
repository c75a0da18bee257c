# readings.py: the normalised readings every sensor driver produces and the core consumes.
# One oximeter reading shape for all formats (Nonin #1/#2/#7, BerryMed BCI, Masimo ASCII),
# one NIBP reading shape. Missing values are NONE (-1), never a sentinel number.
from bedside.compat import const

NONE = const(-1)  # "no value": the module sent a sentinel (511, 127, 255, dashes) or nothing

# Oximeter quality flags (bitmask in OxiReading.flags).
F_SENSOR_OFF = const(0x01)  # sensor off / disconnected / inoperable (Nonin SNSD, SNSA; BCI probe)
F_NO_FINGER = const(0x02)  # no finger in the probe (BCI, Masimo EXC)
F_SEARCHING = const(0x04)  # searching / out of track (Nonin OOT, BCI pulse search)
F_ARTIFACT = const(0x08)  # artifact / interference (Nonin ARTF, Masimo EXC)
F_LOW_PERF = const(0x10)  # low or no perfusion (Nonin red, Masimo EXC low perfusion)
F_MISSING = const(0x20)  # SpO2 or pulse rate missing in this reading
F_LOW_BATT = const(0x40)  # module reports low battery (Nonin STAT2, where present)
OFF_FLAGS = const(F_SENSOR_OFF | F_NO_FINGER)  # either: the probe is not on the patient

FLAG_NAMES = (
    (F_SENSOR_OFF, "sensor_off"),
    (F_NO_FINGER, "no_finger"),
    (F_SEARCHING, "searching"),
    (F_ARTIFACT, "artifact"),
    (F_LOW_PERF, "low_perfusion"),
    (F_MISSING, "missing"),
    (F_LOW_BATT, "low_battery"),
)

# Coarse perfusion / signal quality, common to all formats.
Q_UNKNOWN = const(0)  # the format does not say, or no pulse in progress
Q_LOW = const(1)  # Nonin red, BCI strength 0-2, Masimo low perfusion
Q_MARGINAL = const(2)  # Nonin yellow, BCI 3-5
Q_GOOD = const(3)  # Nonin green, BCI 6-8


class OxiReading:
    """Latest oximeter reading; decoders update it in place (no allocation)."""

    __slots__ = (
        "spo2",
        "pr",
        "quality",
        "pi_x100",
        "pleth",
        "flags",
        "count",
        "t_ms",
        "spo2_t_ms",
        "pr_t_ms",
    )

    def __init__(self):
        self.clear()
        self.count = 0  # completed readings since start (wraps harmlessly)
        self.t_ms = 0  # when the latest reading (valid or not) was published
        # Freshness of the values themselves: when SpO2 / pulse rate were last VALID (a number,
        # and neither F_SENSOR_OFF nor F_NO_FINGER in that reading). NONE until the first one.
        self.spo2_t_ms = NONE
        self.pr_t_ms = NONE

    def clear(self):
        self.spo2 = NONE  # %, 0..100
        self.pr = NONE  # beats/min
        self.quality = Q_UNKNOWN
        self.pi_x100 = NONE  # perfusion index x100 (Masimo PI), where the format has one
        self.pleth = NONE  # latest pleth sample, raw units of the format
        self.flags = 0

    def publish(self, spo2, pr, quality, flags, pleth, pi_x100, t_ms):
        """A decoder completed a reading: every field at once (no stale field survives).
        spo2_t_ms / pr_t_ms move only when that value is valid and the probe is on."""
        self.spo2 = spo2
        self.pr = pr
        self.quality = quality
        self.flags = flags
        self.pleth = pleth
        self.pi_x100 = pi_x100
        self.t_ms = t_ms
        if not flags & OFF_FLAGS:
            if spo2 != NONE:
                self.spo2_t_ms = t_ms
            if pr != NONE:
                self.pr_t_ms = t_ms
        self.count += 1

    def flag_names(self):
        return [name for bit, name in FLAG_NAMES if self.flags & bit]


class NibpReading:
    """Latest valid NIBP result. `t_ms` is when it was taken: it is never shown without its age."""

    __slots__ = ("sys", "dia", "map", "pr", "t_ms", "valid", "count")

    def __init__(self):
        self.sys = NONE  # mmHg
        self.dia = NONE
        self.map = NONE
        self.pr = NONE  # beats/min
        self.t_ms = 0
        self.valid = False
        self.count = 0
