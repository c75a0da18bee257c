# sessionrec.py: the infusion session's flash-record restore (at boot), imported for that
# moment and released after it by sessionctl.py (RAM on a Pico-sized heap); docs/session.md.
# The discharge criteria are in sessioncrit.py (a discharge op loads that one, not this).
import json

from bedside.compat import const
from bedside.crc import crc32
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
