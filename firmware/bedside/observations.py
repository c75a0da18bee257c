# observations.py: the facts the alarm rules judge, kept up to date by the device each tick.
# Every "time since" is a saturating Age (bedside.ticks), so a week-old reading is old, never
# new again. One definition of "current" for the rules, the report and the display: a value is
# current while its own age is under FRESH_MS (not merely while frames arrive).
from bedside.compat import const
from bedside.readings import F_NO_FINGER, F_SENSOR_OFF, NONE
from bedside.ticks import Age

FRESH_MS = const(2000)  # an SpO2/pulse value older than this is not current
OFF_CONFIRM_MS = const(500)  # sensor-off flags must persist this long (about 37 Nonin frames)
FAULT_QUIET_MS = const(30000)  # CORE_FAULT ends this long after the last caught error
TEST_ALARM_MS = const(5000)  # how long a test alarm (selftest) sounds
_OFF = F_SENSOR_OFF | F_NO_FINGER


class Observations:
    """What the rules look at. The device writes it; rules.py and display.py read it."""

    def __init__(self, now, oxi, nibp, restarted=False):
        self.since_boot = Age(now)
        self.oxi = oxi  # the OxiReading the decoder updates
        self.nibp = nibp  # the NibpReading the NIBP driver updates
        # oximeter
        self.oxi_seen = False  # any valid frame since start
        self.oxi_rx = Age()  # last valid frame
        self.spo2 = Age()  # last valid SpO2 value (freshness is the value's own age)
        self.pr = Age()  # last valid pulse-rate value
        self.off_since = Age()  # sensor-off flags continuously present since
        self.on_since = Age()  # a confirmed sensor-off ended (the probe is back) at
        self.off_flags = False  # the latest frame says sensor off / no finger
        self.spo2_held = False  # SpO2 alarms held (NIBP inflation on the same arm)
        # NIBP
        self.nibp_due = Age(now)  # last valid reading (or interval change): NIBP_OVERDUE
        self.bp_baseline_sys = NONE  # the session's accepted baseline (none: BP_RISE off)
        self.nibp_interval_min = 0  # the NIBP interval in force (NIBP_OVERDUE)
        self.cuff_fault = False
        self.nibp_cond = None  # the NIBP driver's technical condition id, or None
        self.nibp_error = NONE  # its error code
        # host and device
        self.host_seen = False
        self.host_rx = Age()
        self.restarted = restarted
        self.check_overdue = False  # the session's check is overdue (CHECK_OVERDUE)
        self.sedation_deep = False  # the last MOAA/S score is deep (SEDATION_DEEP)
        self.sedation_score = NONE
        self.storage_fault = False
        self.fault = Age()  # last error caught in the tick
        self.test_prio = 0  # priority of the running test alarm (0: none)
        self.test = Age()

    # --- updates from the device ---------------------------------------------------------
    def oxi_frame(self, flags, now):
        self.oxi_seen = True
        self.oxi_rx.mark(now)
        off = bool(flags & _OFF)
        if off and not self.off_flags:
            self.off_since.mark(now)
        elif self.off_flags and not off and self.off_since.ms(now) >= OFF_CONFIRM_MS:
            self.on_since.mark(now)  # a confirmed sensor-off (OXI_SENSOR_OFF) ended
        self.off_flags = off

    def oxi_values(self, spo2, pr, flags, now):
        if flags & _OFF:
            return
        if spo2 != NONE:
            self.spo2.mark(now)
        if pr != NONE:
            self.pr.mark(now)

    # --- judgements shared by the rules, the report and the display -----------------------
    def comm_ok(self, now, timeout_ms):
        if not self.oxi_seen:  # from power-up the module gets the same grace time
            return self.since_boot.ms(now) < timeout_ms
        return self.oxi_rx.ms(now) < timeout_ms

    def sensor_off(self, now):
        """Sensor off confirmed: the flags have held for OFF_CONFIRM_MS (one mis-locked or
        corrupt frame is not enough)."""
        return self.off_flags and self.off_since.ms(now) >= OFF_CONFIRM_MS

    def off_pending(self, now):
        """Sensor-off flags seen but not yet confirmed."""
        return self.off_flags and self.off_since.ms(now) < OFF_CONFIRM_MS

    def spo2_current(self, now):
        return self.spo2.ms(now) < FRESH_MS and not self.off_flags

    def pr_current(self, now):
        return self.pr.ms(now) < FRESH_MS and not self.off_flags

    def value_age(self, age, now):
        """Age of a value, counted from start while there has been none."""
        return age.ms(now) if age.known() else self.since_boot.ms(now)

    def spo2_wait(self, now):
        """How long the device has waited for a current SpO2 value with the probe on: the age
        of the last value, or of the end of the last confirmed sensor-off if that is later (a
        finger put back after a long sensor-off is not stale data until it has had
        oxi_stale_s to give a value; an unconfirmed flicker of the flags does not count)."""
        a = self.value_age(self.spo2, now)
        if self.on_since.known():
            b = self.on_since.ms(now)
            if b < a:
                return b
        return a

    def core_fault(self, now):
        return self.fault.ms(now) < FAULT_QUIET_MS

    def test_running(self, now):
        if self.test_prio and self.test.ms(now) >= TEST_ALARM_MS:
            self.test_prio = 0
        return self.test_prio

    def tick(self, now):
        """Touch every age so none can pass the 2**29 ms comparison limit unseen."""
        self.since_boot.ms(now)
        self.oxi_rx.ms(now)
        self.spo2.ms(now)
        self.pr.ms(now)
        self.off_since.ms(now)
        self.on_since.ms(now)
        self.nibp_due.ms(now)
        self.host_rx.ms(now)
        self.fault.ms(now)
        self.test.ms(now)
