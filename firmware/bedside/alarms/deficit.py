# deficit.py: the integrated-deficit delay for SPO2_LOW (alarms.md 4.3; "SatSeconds-style",
# named generically). Pure and allocation-free: ints only, time comes in as now_ms.
#
# Index in %-points x ms: at every update, the deficit of the value now (reference point
# minus SpO2, in %-points) times the time since the previous update is added (the GE worked
# example: 92, 89, 87, 87, 80 at 1 Hz -> 0, 2, 6, 10, 21 with the reference at 91). Back
# within limits the index decrements the same way it incremented: by (SpO2 - reference) x
# time, never below 0. It is capped at the threshold, so recovery from a long dip is bounded.
# Safety net: VIOLATIONS_N or more separate violations (excursions below the reference)
# starting within VIOLATIONS_WINDOW_MS sound the alarm even when the index is short.
# The reference point is a setting (spo2_integral_ref; the manuals differ, UNCONFIRMED):
#   "limit"        deficit = limit - SpO2 (Nellcor N-395: 88 % vs 90 % -> 2); SpO2 == limit is
#                  within limits, as for the fixed-delay rule (value < limit).
#   "above_limit"  deficit = limit + 1 - SpO2 (GE CARESCAPE: low limit 90, 91 % is the lowest
#                  non-alarming value, so 89 % -> 2 and 90 % itself is a violation).
from bedside.compat import const
from bedside.readings import NONE
from bedside.ticks import elapsed

VIOLATIONS_N = const(3)  # alarms.md 4.3: "3 or more limit violations within 60 s"
VIOLATIONS_WINDOW_MS = const(60000)
REF_LIMIT = const(0)
REF_ABOVE_LIMIT = const(1)


class IntegratedDeficit:
    def __init__(self):
        self.index_ms = 0  # %-points x ms
        self.violating = False  # SpO2 below the reference point at the last update
        self.net = False  # the safety net has tripped for the current violation
        self._t = 0
        self._started = False
        self._v0 = 0  # start times of the last VIOLATIONS_N violations (ring)
        self._v1 = 0
        self._v2 = 0
        self._nv = 0  # violations recorded (saturates at VIOLATIONS_N)

    def reset(self):
        self.index_ms = 0
        self.violating = False
        self.net = False
        self._started = False
        self._nv = 0

    def deficit(self, spo2, limit, ref):
        """%-points below the reference point (negative: above it)."""
        return limit + (1 if ref == REF_ABOVE_LIMIT else 0) - spo2

    def update(self, spo2, limit, ref, threshold, now):
        """Advance to now with the current SpO2 (NONE: no value, the index holds).
        Returns True while the alarm condition holds: violating and (index reached the
        threshold, or the safety net tripped)."""
        dt = elapsed(now, self._t) if self._started else 0
        self._t = now
        self._started = True
        if spo2 == NONE:
            self.violating = False
            self.net = False
            return False
        d = self.deficit(spo2, limit, ref)
        cap = threshold * 1000
        if dt > 60000:
            dt = 60000  # a long gap between updates: bounded (and no int overflow)
        idx = self.index_ms + d * dt
        if idx < 0:
            idx = 0
        elif idx > cap:
            idx = cap
        self.index_ms = idx
        if d > 0:
            if not self.violating:
                self.violating = True
                self._v2 = self._v1
                self._v1 = self._v0
                self._v0 = now
                if self._nv < VIOLATIONS_N:
                    self._nv += 1
                if self._nv >= VIOLATIONS_N and elapsed(now, self._v2) < VIOLATIONS_WINDOW_MS:
                    self.net = True
        else:
            self.violating = False
            self.net = False
        return self.violating and (self.index_ms >= cap or self.net)

    def hold(self, now):
        """Frozen (e.g. NIBP inflation): time passes without adding or removing deficit."""
        self._t = now
        self._started = True

    def fill_pct(self, threshold):
        """Index as % of the threshold (for a display bar)."""
        return self.index_ms * 100 // (threshold * 1000)
