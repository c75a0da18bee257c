# sessionrec.py: the infusion session's rarely used parts: the discharge criteria (on a
# discharge op) and the flash-record restore (at boot). Imported for that moment and released
# after it by sessionctl.py (RAM on a Pico-sized heap); docs/session.md.
import json

from bedside.compat import const
from bedside.crc import crc32
from bedside.readings import NONE
from bedside.session import (
    _BOOLS,
    _INTS,
    _STRS,
    CLOSED,
    ID_MAX,
    IDLE,
    READINGS,
    RECORD_VERSION,
    S_MAX,
)

_FILE_MAX = const(2048)
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
    if ph < IDLE or ph > CLOSED or ints[0] < 0 or ints[0] > ID_MAX:
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
