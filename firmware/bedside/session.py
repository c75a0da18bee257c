# session.py: the infusion-session phase machine (docs/session.md, docs/protocol.md): one table
# of which op is allowed in which phase and where it goes, the baseline, dose, O2, checks and
# the discharge criteria. Pure: now_ms comes in, nothing reads a clock or touches a device;
# sessionctl.py wires it to the device. Timers are whole seconds counted from elapsed ticks
# (wrap-safe), capped so they stay small ints on the Pico; step() allocates nothing.
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

_STAY = const(-1)
_ANY_OPEN = const(0x3E)  # screening .. discharge_ready
# op: (phases it is allowed in (bit per phase), phase it goes to or _STAY, arguments,
#      required arguments). The one table of the machine; docs/session.md lists it.
OPS = {
    "open": (1 << IDLE | 1 << CLOSED, SCREENING, ("patient", "course_day", "course_total"), 3),
    "screened": (1 << SCREENING, BASELINE, ("override",), 0),
    "cancel": (1 << SCREENING | 1 << BASELINE, CLOSED, ("reason",), 1),
    "baseline": (1 << BASELINE, _STAY, ("action",), 1),
    "start": (1 << BASELINE, INFUSION, (), 0),
    "dose": (1 << INFUSION, _STAY, ("rate", "units", "reason"), 3),
    "o2": (_ANY_OPEN, _STAY, ("on", "flow"), 1),
    "check": (1 << INFUSION | 1 << RECOVERY | 1 << READY, _STAY, ("score", "scale"), 0),
    "stop": (1 << INFUSION, RECOVERY, (), 0),
    "discharge": (1 << RECOVERY, READY, ("aldrete", "padss"), 2),
    "close": (1 << READY, CLOSED, ("escort", "relationship", "advice"), 3),
}

DOSE_REASONS = ("start", "pain", "side_effect", "other")
CRITERIA = ("recovery_time", "bp", "pr", "spo2", "no_alarm", "alert", "aldrete", "padss")

# events step()/note_nibp() return (bits) besides the ops
EV_REMINDER = const(1)  # a responsiveness check is due
EV_OVERDUE = const(2)  # ... and not done within the grace period (CHECK_OVERDUE)
EV_SAVE = const(4)  # the timers moved on: time to persist the record
EV_READING = const(8)  # a baseline NIBP reading was taken

_S_MAX = const(100000000)  # seconds: timers stop here (over 3 years; small ints)
_ID_MAX = const(999999)  # session ids wrap back to 1 after this
_SAVE_S = const(60)  # the record is persisted at least this often while timers run
_READINGS = const(4)  # baseline NIBP readings kept (the newest), 5 numbers each
_STABLE_SPO2 = const(3)  # SpO2 stays within this many %-points of the period's first value
_STABLE_PR = const(10)  # pulse within this many /min: a "stable period" (docs/session.md)
_MOAAS_ALERT = const(5)
FIRST_SPAN_S = const(3600)  # nibp_first_min holds in the infusion's first hour ...
INCREASE_SPAN_S = const(900)  # ... and for 15 min after each dose increase (issue 11)
_VERSION = const(1)  # record layout; another one is not restored
_FILE_MAX = const(2048)
# argument checks: whole numbers (low, high) and strings (longest)
_RANGE = {
    "course_day": (1, 99),
    "course_total": (1, 99),
    "rate": (0, 99999),
    "flow": (1, 15),
    "score": (0, 5),
    "aldrete": (0, 10),
    "padss": (0, 10),
}
_TEXT = {"patient": 32, "reason": 32, "units": 16, "scale": 16, "escort": 32, "relationship": 32}
# the record on flash: these attributes in this order (docs/session.md "Persistence")
_INTS = (
    "sid", "phase", "course_day", "course_total", "phase_s", "infusion_s", "recovery_s",
    "increase_s", "check_s", "check_ago", "check_score", "score", "rate", "flow", "rec_sys",
    "rec_pr", "aldrete", "padss",
)  # fmt: skip
_BOOLS = ("override", "deep", "o2")
_STRS = ("patient", "reason", "scale", "units", "escort", "relationship")


def _cap(x):
    return x if x < _S_MAX else _S_MAX


def _arg_error(k, v):
    """Why argument k's value v is not acceptable, or None."""
    r = _RANGE.get(k)
    if r is not None:
        if isinstance(v, bool) or not isinstance(v, int) or v < r[0] or v > r[1]:
            return "%s must be a whole number within %d..%d" % (k, r[0], r[1])
        return None
    most = _TEXT.get(k)
    if most is not None:
        if not isinstance(v, str) or not v.strip() or len(v) > most:
            return "%s must be a non-empty string of at most %d characters" % (k, most)
        return None
    if k in ("override", "on", "advice") and not isinstance(v, bool):
        return "%s must be true or false" % k
    return None


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
        ev = 0
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
        if len(rd) >= 5 * _READINGS:
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

    def baseline_error(self):
        """Why the baseline cannot be accepted yet, or None."""
        s = self.s
        if self._pair() is None:
            return "baseline needs 2 NIBP readings %d min apart (have %d)" % (
                s["baseline_gap_min"],
                len(self.rd) // 5,
            )
        need = s["baseline_stable_s"]
        if self.stable_s < need:
            return "baseline needs a stable SpO2 and pulse for %d s (stable for %d s)" % (
                need,
                self.stable_s,
            )
        return None

    # --- discharge --------------------------------------------------------------------------
    def criteria(self, aldrete, padss, alarm):
        """The discharge criteria: [{"name", "ok", "value", "need"}] (docs/session.md).
        alarm: the id of the highest active alarm condition, or None."""
        s = self.s
        band = s["discharge_band_pct"]
        base = self.base
        out = []

        def add(name, ok, value, need):
            out.append({"name": name, "ok": bool(ok), "value": value, "need": need})

        mins = s["recovery_min"]
        rec = self.recovery_s // 60 if self.recovery_s >= 0 else 0
        add("recovery_time", rec >= mins, rec, ">= %d min" % mins)
        pr = self.pr if self.pr != NONE else self.rec_pr
        for name, v, k in (("bp", self.rec_sys, 0), ("pr", pr, 3)):
            b = base[k] if base else NONE
            if b <= 0:
                add(name, False, None, "a baseline")
                continue
            d = b * band // 100
            ok = v != NONE and abs(v - b) * 100 <= b * band
            add(name, ok, None if v == NONE else v, "%d..%d" % (b - d, b + d))
        lim = s["discharge_spo2"]
        v = self.spo2
        ok = v != NONE and v > lim and not self.o2
        add("spo2", ok, None if v == NONE else v, "> %d %% on room air" % lim)
        add("no_alarm", alarm is None, alarm, "no active alarm")
        add("alert", self.score == _MOAAS_ALERT, None if self.score < 0 else self.score, "5")
        add("aldrete", aldrete >= s["aldrete_min"], aldrete, ">= %d" % s["aldrete_min"])
        add("padss", padss >= s["padss_min"], padss, ">= %d" % s["padss_min"])
        return out

    # --- ops --------------------------------------------------------------------------------
    def refuse(self, op, cmd):
        """Why op (with the arguments in cmd) is refused now, or None. Changes nothing.
        The discharge criteria are judged by apply()."""
        spec = OPS.get(op)
        if spec is None:
            return "unknown op %s; ops: %s" % (str(op)[:16], ", ".join(sorted(OPS)))
        allowed, _to, args, required = spec
        for k in range(required):
            if args[k] not in cmd:
                return "%s needs %s" % (op, args[k])
        for a in cmd:
            if a not in args and _any_takes(a):
                return "%s takes no %s" % (op, a)
            err = _arg_error(a, cmd[a]) if a in args else None
            if err:
                return err
        if not allowed & (1 << self.phase):
            ok = [PHASES[p] for p in range(len(PHASES)) if allowed & (1 << p)]
            return "%s is not allowed in phase %s (only in %s)" % (
                op,
                PHASES[self.phase],
                ", ".join(ok),
            )
        if op == "open" and cmd["course_total"] < cmd["course_day"]:
            return "course_total must be at least course_day"
        if op == "baseline":
            if cmd["action"] == "accept":
                return self.baseline_error()
            if cmd["action"] != "repeat":
                return "action must be repeat or accept"
        if op == "start" and self.base is None:
            return "start needs an accepted baseline"
        if op == "dose" and cmd["reason"] not in DOSE_REASONS:
            return "reason must be one of %s" % ", ".join(DOSE_REASONS)
        if op == "o2" and cmd["on"] != ("flow" in cmd):
            return "flow (L/min) is given with on: true, and only then"
        if op == "close" and cmd["advice"] is not True:
            return "advice must be true: the no-driving advice must be given before close"
        return None

    def apply(self, op, cmd, alarm=None):
        """Run op or refuse it. Returns (error or None, criteria list or None); a refused op
        changes nothing. alarm: the highest active alarm id or None (discharge)."""
        err = self.refuse(op, cmd)
        if err:
            return err, None
        crit = None
        if op == "discharge":
            crit = self.criteria(cmd["aldrete"], cmd["padss"], alarm)
            bad = [c["name"] for c in crit if not c["ok"]]
            if bad:
                return "discharge criteria not met: %s" % ", ".join(bad), crit
            self.aldrete = cmd["aldrete"]
            self.padss = cmd["padss"]
        elif op == "open":
            sid = self.sid + 1
            self._reset()
            self.sid = sid if sid <= _ID_MAX else 1
            self.restored = False
            self.patient = cmd["patient"]
            self.course_day = cmd["course_day"]
            self.course_total = cmd["course_total"]
        elif op == "screened":
            self.override = cmd.get("override", False)
            self.rd = []
            self._clear_stable()
        elif op == "cancel":
            self.reason = cmd["reason"]
        elif op == "baseline" and cmd["action"] == "accept":
            self._accept()
        elif op == "dose":
            rate = cmd["rate"]
            if rate > (self.rate if self.rate >= 0 else 0):
                self.increase_s = 0  # an increase: nibp_first_min for INCREASE_SPAN_S
            self.rate = rate
            self.units = cmd["units"]
        elif op == "o2":
            self.o2 = cmd["on"]
            self.flow = cmd["flow"] if self.o2 else -1
        elif op == "check":
            self.check(cmd.get("score", -1), cmd.get("scale"))
        elif op == "close":
            self.escort = cmd["escort"]
            self.relationship = cmd["relationship"]
        to = OPS[op][1]
        if to != _STAY:
            self._to(to)
        return None, crit

    def _accept(self):
        i, j = self._pair()
        rd = self.rd
        n = self._n
        b = [(rd[i + k] + rd[j + k] + 1) // 2 for k in range(4)]  # sys, dia, map, pr
        if n:  # the oximeter's mean over the stable period
            b[3] = (self._sum_pr + n // 2) // n
        b.append((self._sum_spo2 + n // 2) // n if n else NONE)
        self.base = tuple(b)

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
            "baseline_ready": self.phase == BASELINE and self.baseline_error() is None,
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
            _VERSION,
            [getattr(self, k) for k in _INTS],
            [getattr(self, k) for k in _BOOLS],
            [getattr(self, k) for k in _STRS],
            list(self.base) if self.base else None,
            self.rd,
        ]
        body = json.dumps(doc).encode()
        return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"

    def restore(self, raw, now):
        """Take a record written by encode(). Raises ValueError (a readable reason) and leaves
        the session idle if it is corrupt. The outage is not counted (docs/session.md)."""
        try:
            self._restore(raw)
        except Exception as e:
            self._reset()
            if isinstance(e, ValueError):
                raise
            raise ValueError("unreadable: %s" % type(e).__name__) from None
        self._t = now
        self._ms = 0
        self.restored = True
        if self.checking():  # the outage may have been long: a check is due now
            due = self.s["check_interval_min"] * 60
            if self.check_s < due:
                self.check_s = due
            self.reminded = False

    def _restore(self, raw):
        if raw is None or len(raw) > _FILE_MAX or len(raw) < 10 or raw[8:9] != b" ":
            raise ValueError("unreadable: not a session record")
        raw = bytes(raw)
        body = raw[9:-1] if raw[-1:] == b"\n" else raw[9:]
        if int(raw[:8], 16) != crc32(body) & 0xFFFFFFFF:
            raise ValueError("checksum mismatch: session record corrupt")
        d = json.loads(body)
        if d[0] != _VERSION or len(d) != 6:
            raise ValueError("record layout %s is not %d" % (d[0], _VERSION))
        ints, bools, strs, base, rd = d[1:]
        _check(ints, len(_INTS), int)
        _check(bools, len(_BOOLS), bool)
        _check(strs, len(_STRS), str)
        _check(rd, len(rd) - len(rd) % 5 if len(rd) <= 5 * _READINGS else -1, int)
        if base is not None:
            _check(base, 5, int)
        ph = ints[1]
        if ph < IDLE or ph > CLOSED or ints[0] < 0 or ints[0] > _ID_MAX:
            raise ValueError("bad phase or session id")
        self._reset()
        for k in range(len(_INTS)):
            setattr(self, _INTS[k], ints[k])
        for k in range(len(_BOOLS)):
            setattr(self, _BOOLS[k], bools[k])
        for k in range(len(_STRS)):
            setattr(self, _STRS[k], strs[k])
        self.base = tuple(base) if base is not None else None
        self.rd = rd  # in baseline the stable period starts again after a restart


def _check(a, n, kind):
    if not isinstance(a, list) or len(a) != n:
        raise ValueError("bad record field")
    for x in a:
        if kind is str:
            if x is not None and not isinstance(x, str):
                raise ValueError("bad record text")
        elif kind is bool:
            if not isinstance(x, bool):
                raise ValueError("bad record flag")
        elif isinstance(x, bool) or not isinstance(x, int) or x < -1 or x > _S_MAX:
            raise ValueError("bad record number")


def _any_takes(arg):
    """Some op takes this argument (the command table's `session` row lists them all)."""
    for spec in OPS.values():
        if arg in spec[2]:
            return True
    return False


def _v(x):
    return None if x == NONE else x
