# sessioncrit.py: the infusion session's discharge criteria (docs/session.md), imported for a
# discharge op or a `criteria` question and released after it by sessionctl.py (RAM).
from bedside.compat import const
from bedside.readings import NONE

_MOAAS_ALERT = const(5)
CRITERIA = ("recovery_time", "bp", "pr", "spo2", "no_alarm", "alert", "aldrete", "padss")


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
