# session.py: the infusion-session state (docs/session.md, docs/protocol.md): phase, timers,
# baseline readings, dose, O2, checks, the state object and the flash record. The ops (the
# table of which op is allowed in which phase, argument checks) live in sessionops.py, the
# discharge criteria and the record restore in sessionrec.py, imported only while needed.
# Pure: now_ms comes in, nothing reads a clock or touches a device; sessionctl.py wires it
# to the device. Timers are whole seconds counted from elapsed ticks (wrap-safe), capped so
# they stay small ints; step() allocates nothing.
import json

from bedside.compat import const
from bedside.crc import crc32
from bedside.readings import NONE
from bedside.ticks import elapsed

IDLE = const(0)
SCREENING = const(1)
BASELINE = const(2)
INFUSION = const(3)
RECOVERY = const(4)
READY = const(5)
CLOSED = const(6)
PHASES = ("idle", "screening", "baseline", "infusion", "recovery", "discharge_ready", "closed")


# events step()/note_nibp() return (bits) besides the ops
EV_REMINDER = const(1)  # a responsiveness check is due
EV_OVERDUE = const(2)  # ... and not done within the grace period (CHECK_OVERDUE)
EV_SAVE = const(4)  # the timers moved on: time to persist the record
EV_READING = const(8)  # a baseline NIBP reading was taken
EV_SECOND = const(16)  # a whole second passed (the timers moved on)

S_MAX = const(100000000)  # seconds: timers stop here (over 3 years; small ints)
_SAVE_S = const(60)  # the record is persisted at least this often while timers run
ID_MAX = const(999999)  # session numbers wrap back to 1 after this
READINGS = const(4)  # baseline NIBP readings kept (the newest), 5 numbers each
_STABLE_SPO2 = const(3)  # SpO2 stays within this many %-points of the period's first value
_STABLE_PR = const(10)  # pulse within this many /min: a "stable period" (docs/session.md)
FIRST_SPAN_S = const(3600)  # nibp_first_min holds in the infusion's first hour ...
INCREASE_SPAN_S = const(900)  # ... and for 15 min after each dose increase (issue 11)
RECORD_VERSION = const(1)  # record layout; another one is not restored
# argument checks: whole numbers (low, high) and strings (longest)
# the record on flash: these attributes in this order (docs/session.md "Persistence")
_INTS = (
    "sid", "phase", "course_day", "course_total", "phase_s", "infusion_s", "recovery_s",
    "increase_s", "check_s", "check_ago", "check_score", "score", "rate", "flow", "rec_sys",
    "rec_pr", "aldrete", "padss",
)  # fmt: skip
_BOOLS = ("override", "deep", "o2")
_STRS = ("patient", "reason", "scale", "units", "escort", "relationship")


def _cap(x):
    return x if x < S_MAX else S_MAX


class Session:
    """The session state. apply() runs an op (or refuses it, changing nothing); step() moves
    the timers on; note_nibp() takes a valid NIBP reading. `s`: the Settings."""

    def __init__(self, s, now):
        self.s = s
        self.sid = 0  # session number: rises per open, kept on flash
        self._t = now
        self._ms = 0
        self.restored = False
        self._reset()

    def _reset(self):
        """Everything back to no session; the session number stays."""
        sid = getattr(self, "sid", 0)
        for k in _INTS:
            setattr(self, k, -1)  # -1: none (null)
        for k in _BOOLS:
            setattr(self, k, False)
        for k in _STRS:
            setattr(self, k, None)
        self.sid = sid if sid > 0 else 0
        self.phase = IDLE
        self.phase_s = self.check_s = 0  # check_s: since the last check or the infusion start
        self.course_day = self.course_total = 0
        self.scale = "MOAA/S"
        self.reminded = False
        self.overdue = False  # deep: SEDATION_DEEP; score: the last one entered
        self.base = None  # (sys, dia, map, pr, spo2) once accepted
        self.rd = []  # baseline readings: sys, dia, map, pr, phase_s when taken, ...
        self._clear_stable()
        self.spo2 = NONE  # the current oximeter values (step)
        self.pr = NONE
        self._save_s = 0

    def _clear_stable(self):
        self.stable_s = 0
        self._ref_spo2 = self._ref_pr = NONE
        self._sum_spo2 = self._sum_pr = self._n = 0

    # --- ops (bedside.sessionops, imported on use) ------------------------------------------
    def refuse(self, op, cmd):
        """Why op (with the arguments in cmd) is refused now, or None. Changes nothing."""
        from bedside import sessionops

        return sessionops.refuse(self, op, cmd)

    def apply(self, op, cmd, alarm=None):
        """Run op or refuse it: (error or None, discharge criteria or None)."""
        from bedside import sessionops

        return sessionops.apply(self, op, cmd, alarm)

    def restore(self, raw, now):
        """Take a flash record (ValueError if corrupt: the session is then idle)."""
        from bedside import sessionrec

        sessionrec.restore(self, raw, now)

    def baseline_error(self):
        from bedside import sessionops

        return sessionops.baseline_error(self)

    def criteria(self, aldrete, padss, alarm):
        from bedside import sessioncrit

        return sessioncrit.criteria(self, aldrete, padss, alarm)

    # --- what the rest of the device asks -------------------------------------------------
    def name(self):
        return PHASES[self.phase]

    def checking(self):
        """Responsiveness checks run (reminder, CHECK_OVERDUE) in this phase."""
        return self.phase == INFUSION or self.phase == RECOVERY

    def check_due_s(self):
        if not self.checking():
            return None
        return self.s["check_interval_min"] * 60 - self.check_s

    def baseline_sys(self):
        """The systolic BP_RISE compares with: the accepted baseline while a session runs."""
        if self.base is None or self.phase == IDLE or self.phase == CLOSED:
            return NONE
        return self.base[0]

    def nibp_interval_min(self):
        """The NIBP interval for the phase now (settings; docs/session.md)."""
        s = self.s
        if self.phase == INFUSION:
            first = self.infusion_s < FIRST_SPAN_S or 0 <= self.increase_s < INCREASE_SPAN_S
            return s["nibp_first_min"] if first else s["nibp_infusion_min"]
        if self.phase == RECOVERY:
            return s["nibp_recovery_min"]
        return s["nibp_interval_min"]

    # --- time -----------------------------------------------------------------------------
    def step(self, now, spo2, pr):
        """Move the timers on to now; spo2/pr: the current oximeter values (NONE if none).
        Returns EV_* bits. Allocates nothing."""
        self.spo2 = spo2
        self.pr = pr
        self._ms += elapsed(now, self._t)
        self._t = now
        if self._ms < 1000:
            return 0
        sec = self._ms // 1000
        self._ms -= sec * 1000
        ph = self.phase
        ev = EV_SECOND
        self.phase_s = _cap(self.phase_s + sec)
        if ph == INFUSION:
            self.infusion_s = _cap(self.infusion_s + sec)
        if ph == RECOVERY or ph == READY:
            self.recovery_s = _cap(self.recovery_s + sec)
        if self.increase_s >= 0:
            self.increase_s = _cap(self.increase_s + sec)
        if self.check_ago >= 0:
            self.check_ago = _cap(self.check_ago + sec)
        if ph == INFUSION or ph == RECOVERY:
            self.check_s = _cap(self.check_s + sec)
            due = self.s["check_interval_min"] * 60
            if not self.reminded and self.check_s >= due:
                self.reminded = True
                ev |= EV_REMINDER
            if not self.overdue and self.check_s >= due + self.s["check_grace_min"] * 60:
                self.overdue = True
                ev |= EV_OVERDUE
        if ph == BASELINE:
            self._stable(sec, spo2, pr)
        if ph != IDLE and ph != CLOSED:
            self._save_s += sec
            if self._save_s >= _SAVE_S:
                self._save_s = 0
                ev |= EV_SAVE
        return ev

    def _stable(self, sec, spo2, pr):
        if spo2 == NONE or pr == NONE:
            self._clear_stable()
            return
        rs = self._ref_spo2
        if rs == NONE or abs(spo2 - rs) > _STABLE_SPO2 or abs(pr - self._ref_pr) > _STABLE_PR:
            self._clear_stable()
            self._ref_spo2 = spo2
            self._ref_pr = pr
        else:
            self.stable_s = _cap(self.stable_s + sec)
        if self._n < 30000:
            self._sum_spo2 += spo2
            self._sum_pr += pr
            self._n += 1

    def note_nibp(self, sys, dia, mean, pr):
        """A valid NIBP reading; returns EV_READING when it counts for the baseline."""
        if self.phase == RECOVERY or self.phase == READY:
            self.rec_sys = sys
            self.rec_pr = pr
        if self.phase != BASELINE:
            return 0
        rd = self.rd
        if len(rd) >= 5 * READINGS:
            del rd[:5]  # keep the newest
        rd.extend((sys, dia, mean, pr, self.phase_s))
        return EV_READING

    # --- baseline ---------------------------------------------------------------------------
    def _pair(self):
        """(i, j): offsets of the newest reading and the newest one before it at least
        baseline_gap_min earlier, or None."""
        gap = self.s["baseline_gap_min"] * 60
        rd = self.rd
        j = len(rd) - 5
        for i in range(j - 5, -1, -5):
            if rd[j + 4] - rd[i + 4] >= gap:
                return i, j
        return None

    # --- discharge --------------------------------------------------------------------------

    # --- ops --------------------------------------------------------------------------------

    def _to(self, phase):
        self.phase = phase
        self.phase_s = 0
        self._save_s = 0
        if phase == INFUSION:
            self.infusion_s = 0
            self.check_s = 0
            self.reminded = self.overdue = False
        elif phase == RECOVERY:
            self.recovery_s = 0
        elif phase == READY or phase == CLOSED:
            self.reminded = self.overdue = False
            if phase == CLOSED:
                self.deep = False

    def check(self, score=-1, scale=None):
        """A responsiveness check was done (score -1: none given). Restarts the interval;
        a score at or below sedation_score_max raises SEDATION_DEEP, one above ends it."""
        self.check_s = 0
        self.check_ago = 0
        self.reminded = self.overdue = False
        self.check_score = score
        if scale:
            self.scale = scale
        if score >= 0:
            self.score = score
            self.deep = score <= self.s["sedation_score_max"]

    def ready(self):
        """The baseline can be accepted now (sessionops.baseline_error says why not)."""
        return (
            self.phase == BASELINE
            and self._pair() is not None
            and self.stable_s >= self.s["baseline_stable_s"]
        )

    # --- the state object (docs/protocol.md) ----------------------------------------------------
    def state(self):
        b = self.base
        return {
            "id": self.sid,
            "patient": self.patient,
            "course_day": self.course_day or None,
            "course_total": self.course_total or None,
            "phase": PHASES[self.phase],
            "phase_s": self.phase_s,
            "infusion_s": _v(self.infusion_s),
            "recovery_s": _v(self.recovery_s),
            "baseline": (
                {"sys": b[0], "dia": b[1], "map": b[2], "pr": _v(b[3]), "spo2": _v(b[4])}
                if b
                else None
            ),
            "baseline_readings": len(self.rd) // 5,
            "baseline_ready": self.ready(),
            "dose": {"rate": self.rate, "units": self.units} if self.rate >= 0 else None,
            "o2": {"on": self.o2, "flow": self.flow if self.o2 else None},
            "last_check": (
                {"score": _v(self.check_score), "ago_s": self.check_ago}
                if self.check_ago >= 0
                else None
            ),
            "check_due_s": self.check_due_s(),
            "nibp_interval_s": self.nibp_interval_min() * 60,
            "restored": self.restored,
        }

    # --- flash record ---------------------------------------------------------------------------
    def encode(self):
        """The record file (bytes): "<crc32 8 hex> BODY\n", BODY = JSON [version, the _INTS,
        the _BOOLS, the _STRS, baseline or null, baseline readings] (docs/session.md)."""
        doc = [
            RECORD_VERSION,
            [getattr(self, k) for k in _INTS],
            [getattr(self, k) for k in _BOOLS],
            [getattr(self, k) for k in _STRS],
            list(self.base) if self.base else None,
            self.rd,
        ]
        body = json.dumps(doc).encode()
        return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"


def _v(x):
    return None if x == NONE else x
