# persist.py: write-behind persistence; the alarm path queues, the board shell writes.
# The core calls log_alarm / log_event / save: they only fill a preallocated slot (no store
# call, no I/O, never raise). The board shell calls step() once per loop pass: at most ONE store
# operation, inside try, never raises. A failed operation sets `fault` (the device raises
# STORAGE_FAULT from it) until the next good one; it is tried again on the next steps and
# dropped after RETRIES attempts (counted in `dropped`).
# Order: alarm records first, then file saves, then event records. Alarm and event records share
# `slots` places; when they are full an alarm record takes the place of the newest event record,
# never the other way round, so a flood of settings changes cannot cost an alarm record. A save
# of a name already pending replaces its data (coalesced): only the newest contents are written.
from bedside.compat import const

RETRIES = const(3)  # attempts per operation before it is dropped
SAVES = const(4)  # distinct file names with a save pending at once
COUNT_MAX = const(9999)  # errors and dropped saturate here
_MSG = const(80)  # last_error length
SESSION_FILE = "session.json"  # the infusion-session record (bedside.session, docs/session.md)
_ALARM = const(1)
_SAVE = const(2)
_EVENT = const(3)


def _message(what, e):
    try:
        m = "%s: %s %s" % (what, type(e).__name__, e)
    except Exception:
        m = "%s: error" % (what,)
    return m[:_MSG]


class Persist:
    """The persistence queue between the core and the store (see the header)."""

    def __init__(self, store, alarm_log, event_log, slots=24):
        if slots < 1:
            raise ValueError("slots")
        self.store = store
        self.alarm_log = alarm_log
        self.event_log = event_log
        self.slots = slots
        self.fault = False  # a store operation failed, and none has succeeded since
        self.errors = 0  # failed operations since start (saturates at COUNT_MAX)
        self.last_error = None  # readable, at most 80 characters
        self.dropped = 0  # records and saves lost: no room, or RETRIES failures (saturates)
        # two FIFO rings over preallocated lists: uptime, fields, failed attempts
        self._au = [0] * slots
        self._af = [None] * slots
        self._at = bytearray(slots)
        self._ah = 0
        self._an = 0
        self._eu = [0] * slots
        self._ef = [None] * slots
        self._et = bytearray(slots)
        self._eh = 0
        self._en = 0
        self._sn = [None] * SAVES  # pending saves: name, data, failed attempts
        self._sd = [None] * SAVES
        self._st = bytearray(SAVES)

    # --- the core's side: queue, never block, never raise ---------------------------------
    def log_alarm(self, uptime_ms, fields):
        """Queue an alarm-log record (fields: a flat dict, not changed afterwards). False if
        there is no room even after dropping an event record (counted in dropped)."""
        if self._an + self._en >= self.slots:
            if not self._en:
                self._drop()
                return False
            self._en -= 1  # the newest event record gives way
            self._ef[(self._eh + self._en) % self.slots] = None
            self._drop()
        i = (self._ah + self._an) % self.slots
        self._au[i] = uptime_ms
        self._af[i] = fields
        self._at[i] = 0
        self._an += 1
        return True

    def log_event(self, uptime_ms, fields):
        """Queue an event-log record; False if all slots are taken (counted in dropped)."""
        if self._an + self._en >= self.slots:
            self._drop()
            return False
        i = (self._eh + self._en) % self.slots
        self._eu[i] = uptime_ms
        self._ef[i] = fields
        self._et[i] = 0
        self._en += 1
        return True

    def save(self, name, data):
        """Queue writing file `name` (atomic, verified by the store); a save of the same name
        still pending is replaced. No room for a new name: dropped (counted)."""
        free = -1
        for j in range(SAVES):
            if self._sn[j] == name:
                self._sd[j] = data
                self._st[j] = 0
                return
            if free < 0 and self._sn[j] is None:
                free = j
        if free < 0:
            self._drop()
            return
        self._sn[free] = name
        self._sd[free] = data
        self._st[free] = 0

    def saving(self, name):
        """A save of file `name` is still pending."""
        for n in self._sn:
            if n == name:
                return True
        return False

    def pending(self):
        """Operations still to do."""
        n = self._an + self._en
        for name in self._sn:
            if name is not None:
                n += 1
        return n

    # --- the board's side ----------------------------------------------------------------
    def step(self):
        """Do at most one store operation; True if one was tried (done or failed). Never
        raises."""
        kind = 0
        j = -1
        try:
            if self._an:
                kind = _ALARM
                i = self._ah
                if self.alarm_log.rotate_due():
                    self.alarm_log.rotate()  # its own step; the record goes on the next one
                else:
                    self.alarm_log.append(self._au[i], self._af[i])
                    self._pop_alarm()
            else:
                for k in range(SAVES):
                    if self._sn[k] is not None:
                        j = k
                        break
                if j >= 0:
                    kind = _SAVE
                    self.store.write(self._sn[j], self._sd[j])
                    self._sn[j] = None
                    self._sd[j] = None
                elif self._en:
                    kind = _EVENT
                    i = self._eh
                    if self.event_log.rotate_due():
                        self.event_log.rotate()
                    else:
                        self.event_log.append(self._eu[i], self._ef[i])
                        self._pop_event()
                else:
                    return False
        except Exception as e:
            try:
                self._failed(kind, j, e)
            except Exception:  # never let the bookkeeping stop the loop
                self.fault = True
            return True
        self.fault = False
        return True

    def _failed(self, kind, j, e):
        self.fault = True
        if self.errors < COUNT_MAX:
            self.errors += 1
        if kind == _ALARM:
            i = self._ah
            self.last_error = _message("alarm log", e)
            self._at[i] += 1
            if self._at[i] >= RETRIES:
                self._pop_alarm()
                self._drop()
        elif kind == _SAVE:
            self.last_error = _message(self._sn[j], e)
            self._st[j] += 1
            if self._st[j] >= RETRIES:
                self._sn[j] = None
                self._sd[j] = None
                self._drop()
        elif kind == _EVENT:
            i = self._eh
            self.last_error = _message("event log", e)
            self._et[i] += 1
            if self._et[i] >= RETRIES:
                self._pop_event()
                self._drop()

    def _pop_alarm(self):
        self._af[self._ah] = None
        self._ah = (self._ah + 1) % self.slots
        self._an -= 1

    def _pop_event(self):
        self._ef[self._eh] = None
        self._eh = (self._eh + 1) % self.slots
        self._en -= 1

    def _drop(self):
        if self.dropped < COUNT_MAX:
            self.dropped += 1
