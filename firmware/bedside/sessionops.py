# sessionops.py: the infusion session's ops: the one table of which op is allowed in which
# phase and where it goes (OPS), every argument check, and the rules of each op
# (docs/session.md). Event-time code, kept apart from the resident state (session.py):
# sessionctl.py imports it for an op and releases it after, so it takes no RAM between ops
# on a Pico-sized heap.
from bedside.compat import const
from bedside.readings import NONE
from bedside.session import (
    BASELINE,
    CLOSED,
    ID_MAX,
    IDLE,
    INFUSION,
    PHASES,
    READY,
    RECOVERY,
    SCREENING,
)

_STAY = const(-1)
_ANY_OPEN = const(0x3E)  # screening .. discharge_ready
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
        from bedside import sessioncrit  # (released with this module after the op)

        crit = sessioncrit.criteria(x, cmd["aldrete"], cmd["padss"], alarm)
        bad = [c["name"] for c in crit if not c["ok"]]
        if bad:
            return "discharge criteria not met: %s" % ", ".join(bad), crit
        x.aldrete = cmd["aldrete"]
        x.padss = cmd["padss"]
    elif op == "open":
        sid = x.sid + 1
        x._reset()
        x.sid = sid if sid <= ID_MAX else 1
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


def _any_takes(arg):
    """Some op takes this argument (the command table's `session` row lists them all)."""
    for spec in OPS.values():
        if arg in spec[2]:
            return True
    return False
