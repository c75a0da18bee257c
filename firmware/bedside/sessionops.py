# sessionops.py: the infusion session's ops, discharge criteria and record restore: the one
# table of which op is allowed in which phase and where it goes (OPS), every argument check,
# and the rules of each op (docs/session.md). Event-time code, kept apart from the resident
# state (session.py): sessionctl.py imports it for an op or a restore and releases it after,
# so it takes no RAM between ops on a Pico-sized heap.
import json

from bedside.compat import const
from bedside.crc import crc32
from bedside.readings import NONE
from bedside.session import (
    _BOOLS,
    _INTS,
    _STRS,
    BASELINE,
    CLOSED,
    IDLE,
    INFUSION,
    PHASES,
    READINGS,
    READY,
    RECORD_VERSION,
    RECOVERY,
    S_MAX,
    SCREENING,
)

_STAY = const(-1)
_ANY_OPEN = const(0x3E)  # screening .. discharge_ready
_ID_MAX = const(999999)  # session ids wrap back to 1 after this
_FILE_MAX = const(2048)
_MOAAS_ALERT = const(5)
# op: (phases it is allowed in (bit per phase), phase it goes to or _STAY, arguments,
#      how many of them are required (the first ones)).
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
_RANGE = {
    "course_day": (1, 99),
    "course_total": (1, 99),
    "rate": (0, 99999),
    "flow": (1, 15),
    "score": (0, 5),
    "aldrete": (0, 10),
    "padss": (0, 10),
}
DOSE_REASONS = ("start", "pain", "side_effect", "other")
CRITERIA = ("recovery_time", "bp", "pr", "spo2", "no_alarm", "alert", "aldrete", "padss")
_TEXT = {"patient": 32, "reason": 32, "units": 16, "scale": 16, "escort": 32, "relationship": 32}


def baseline_error(x):
    """Why the baseline cannot be accepted yet, or None."""
    s = x.s
    if x._pair() is None:
        return "baseline needs 2 NIBP readings %d min apart (have %d)" % (
            s["baseline_gap_min"],
            len(x.rd) // 5,
        )
    need = s["baseline_stable_s"]
    if x.stable_s < need:
        return "baseline needs a stable SpO2 and pulse for %d s (stable for %d s)" % (
            need,
            x.stable_s,
        )
    return None


def criteria(x, aldrete, padss, alarm):
    """The discharge criteria: [{"name", "ok", "value", "need"}] (docs/session.md).
    alarm: the id of the highest active alarm condition, or None."""
    s = x.s
    band = s["discharge_band_pct"]
    base = x.base
    out = []

    def add(name, ok, value, need):
        out.append({"name": name, "ok": bool(ok), "value": value, "need": need})

    mins = s["recovery_min"]
    rec = x.recovery_s // 60 if x.recovery_s >= 0 else 0
    add("recovery_time", rec >= mins, rec, ">= %d min" % mins)
    pr = x.pr if x.pr != NONE else x.rec_pr
    for name, v, k in (("bp", x.rec_sys, 0), ("pr", pr, 3)):
        b = base[k] if base else NONE
        if b <= 0:
            add(name, False, None, "a baseline")
            continue
        d = b * band // 100
        ok = v != NONE and abs(v - b) * 100 <= b * band
        add(name, ok, None if v == NONE else v, "%d..%d" % (b - d, b + d))
    lim = s["discharge_spo2"]
    v = x.spo2
    ok = v != NONE and v > lim and not x.o2
    add("spo2", ok, None if v == NONE else v, "> %d %% on room air" % lim)
    add("no_alarm", alarm is None, alarm, "no active alarm")
    add("alert", x.score == _MOAAS_ALERT, None if x.score < 0 else x.score, "5")
    add("aldrete", aldrete >= s["aldrete_min"], aldrete, ">= %d" % s["aldrete_min"])
    add("padss", padss >= s["padss_min"], padss, ">= %d" % s["padss_min"])
    return out


def refuse(x, op, cmd):
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
    if not allowed & (1 << x.phase):
        ok = [PHASES[p] for p in range(len(PHASES)) if allowed & (1 << p)]
        return "%s is not allowed in phase %s (only in %s)" % (
            op,
            PHASES[x.phase],
            ", ".join(ok),
        )
    if op == "open" and cmd["course_total"] < cmd["course_day"]:
        return "course_total must be at least course_day"
    if op == "baseline":
        if cmd["action"] == "accept":
            return baseline_error(x)
        if cmd["action"] != "repeat":
            return "action must be repeat or accept"
    if op == "start" and x.base is None:
        return "start needs an accepted baseline"
    if op == "dose" and cmd["reason"] not in DOSE_REASONS:
        return "reason must be one of %s" % ", ".join(DOSE_REASONS)
    if op == "o2" and cmd["on"] != ("flow" in cmd):
        return "flow (L/min) is given with on: true, and only then"
    if op == "close" and cmd["advice"] is not True:
        return "advice must be true: the no-driving advice must be given before close"
    return None


def apply(x, op, cmd, alarm=None):
    """Run op or refuse it. Returns (error or None, criteria list or None); a refused op
    changes nothing. alarm: the highest active alarm id or None (discharge)."""
    err = refuse(x, op, cmd)
    if err:
        return err, None
    crit = None
    if op == "discharge":
        crit = criteria(x, cmd["aldrete"], cmd["padss"], alarm)
        bad = [c["name"] for c in crit if not c["ok"]]
        if bad:
            return "discharge criteria not met: %s" % ", ".join(bad), crit
        x.aldrete = cmd["aldrete"]
        x.padss = cmd["padss"]
    elif op == "open":
        sid = x.sid + 1
        x._reset()
        x.sid = sid if sid <= _ID_MAX else 1
        x.restored = False
        x.patient = cmd["patient"]
        x.course_day = cmd["course_day"]
        x.course_total = cmd["course_total"]
    elif op == "screened":
        x.override = cmd.get("override", False)
        x.rd = []
        x._clear_stable()
    elif op == "cancel":
        x.reason = cmd["reason"]
    elif op == "baseline" and cmd["action"] == "accept":
        _accept(x)
    elif op == "dose":
        rate = cmd["rate"]
        if rate > (x.rate if x.rate >= 0 else 0):
            x.increase_s = 0  # an increase: nibp_first_min for INCREASE_SPAN_S
        x.rate = rate
        x.units = cmd["units"]
    elif op == "o2":
        x.o2 = cmd["on"]
        x.flow = cmd["flow"] if x.o2 else -1
    elif op == "check":
        x.check(cmd.get("score", -1), cmd.get("scale"))
    elif op == "close":
        x.escort = cmd["escort"]
        x.relationship = cmd["relationship"]
    to = OPS[op][1]
    if to != _STAY:
        x._to(to)
    return None, crit


def _accept(x):
    i, j = x._pair()
    rd = x.rd
    n = x._n
    b = [(rd[i + k] + rd[j + k] + 1) // 2 for k in range(4)]  # sys, dia, map, pr
    if n:  # the oximeter's mean over the stable period
        b[3] = (x._sum_pr + n // 2) // n
    b.append((x._sum_spo2 + n // 2) // n if n else NONE)
    x.base = tuple(b)


def restore(x, raw, now):
    """Take a record written by encode(). Raises ValueError (a readable reason) and leaves
    the session idle if it is corrupt. The outage is not counted (docs/session.md)."""
    try:
        _restore(x, raw)
    except Exception as e:
        x._reset()
        if isinstance(e, ValueError):
            raise
        raise ValueError("unreadable: %s" % type(e).__name__) from None
    x._t = now
    x._ms = 0
    x.restored = True
    if x.checking():  # the outage may have been long: a check is due now
        due = x.s["check_interval_min"] * 60
        if x.check_s < due:
            x.check_s = due
        x.reminded = False


def _restore(x, raw):
    if raw is None or len(raw) > _FILE_MAX or len(raw) < 10 or raw[8:9] != b" ":
        raise ValueError("unreadable: not a session record")
    raw = bytes(raw)
    body = raw[9:-1] if raw[-1:] == b"\n" else raw[9:]
    if int(raw[:8], 16) != crc32(body) & 0xFFFFFFFF:
        raise ValueError("checksum mismatch: session record corrupt")
    d = json.loads(body)
    if d[0] != RECORD_VERSION or len(d) != 6:
        raise ValueError("record layout %s is not %d" % (d[0], RECORD_VERSION))
    ints, bools, strs, base, rd = d[1:]
    _check(ints, len(_INTS), int)
    _check(bools, len(_BOOLS), bool)
    _check(strs, len(_STRS), str)
    _check(rd, len(rd) - len(rd) % 5 if len(rd) <= 5 * READINGS else -1, int)
    if base is not None:
        _check(base, 5, int)
    ph = ints[1]
    if ph < IDLE or ph > CLOSED or ints[0] < 0 or ints[0] > _ID_MAX:
        raise ValueError("bad phase or session id")
    x._reset()
    for k in range(len(_INTS)):
        setattr(x, _INTS[k], ints[k])
    for k in range(len(_BOOLS)):
        setattr(x, _BOOLS[k], bools[k])
    for k in range(len(_STRS)):
        setattr(x, _STRS[k], strs[k])
    x.base = tuple(base) if base is not None else None
    x.rd = rd  # in baseline the stable period starts again after a restart


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
        elif isinstance(x, bool) or not isinstance(x, int) or x < -1 or x > S_MAX:
            raise ValueError("bad record number")


def _any_takes(arg):
    """Some op takes this argument (the command table's `session` row lists them all)."""
    for spec in OPS.values():
        if arg in spec[2]:
            return True
    return False
