# nibp_schedule.py: when to take an NIBP measurement (interval cycles, STAT/manual), apart from the
# driver (sensors/suntech.py). Interval counts from the last cycle START; a minimum gap counts from
# the last cycle END. All times are 30-bit ticks compared through bedside.ticks (wrap-aware).
from bedside.ticks import elapsed, ticks_add, ticks_diff


class NibpSchedule:
    """interval_min = 0 turns interval cycles off. min_gap_s keeps the cuff off the arm between
    cycles (also for a manual request). The caller asks due(now) each loop pass, starts the driver
    when it is True and reports cycle_started()/cycle_ended()."""

    def __init__(self, interval_min=0, min_gap_s=30):
        self.interval_ms = 0
        self.min_gap_ms = min_gap_s * 1000
        self.in_cycle = False
        self._stat = False
        self._anchor = 0  # last cycle start (or when the interval was set)
        self._anchor_set = False
        self._interval_due = False  # latched, so an idle week cannot wrap it back to "not due"
        self._end = 0
        self._gap_pending = False  # a cycle ended and the gap has not yet been seen to pass
        self.interval_ms = int(interval_min * 60000)  # anchored at the first due() call

    def set_interval(self, minutes, now_ms):
        """Change the interval; 0 = off. The next interval cycle is due `minutes` after the last
        cycle start, or after now if there was none."""
        self.interval_ms = int(minutes * 60000)
        self._interval_due = False
        if not self._anchor_set:
            self._anchor = now_ms
            self._anchor_set = True

    def measure_now(self, now_ms):
        """STAT / manual request: due as soon as the minimum gap allows. False (ignored) while a
        cycle is running: that cycle is the measurement."""
        if self.in_cycle:
            return False
        self._stat = True
        return True

    def _gap_ok(self, now_ms):
        if self._gap_pending and elapsed(now_ms, self._end) >= self.min_gap_ms:
            self._gap_pending = False
        return not self._gap_pending

    def due(self, now_ms):
        """True when a cycle should start now."""
        if self.in_cycle:
            return False
        if not self._anchor_set:
            self._anchor = now_ms
            self._anchor_set = True
        gap_ok = self._gap_ok(now_ms)
        if self.interval_ms and not self._interval_due:
            if elapsed(now_ms, self._anchor) >= self.interval_ms:
                self._interval_due = True
        if not gap_ok:
            return False
        return self._stat or self._interval_due

    def cycle_started(self, now_ms):
        self.in_cycle = True
        self._stat = False
        self._interval_due = False
        self._anchor = now_ms
        self._anchor_set = True

    def cycle_ended(self, now_ms):
        self.in_cycle = False
        self._end = now_ms
        self._gap_pending = self.min_gap_ms > 0

    def next_due_ms(self, now_ms):
        """Tick at which due() becomes True (now_ms if already due), or None: nothing scheduled
        (interval off and no manual request, or a cycle is running)."""
        if self.in_cycle:
            return None
        if not self._stat and not self.interval_ms:
            return None
        t = now_ms
        if not self._anchor_set:
            self.due(now_ms)  # anchors the interval
        if self.interval_ms and not self._stat and not self._interval_due:
            at = ticks_add(self._anchor, self.interval_ms)
            if ticks_diff(at, t) > 0:
                t = at
        if self._gap_pending:
            at = ticks_add(self._end, self.min_gap_ms)
            if ticks_diff(at, t) > 0:
                t = at
        return t
