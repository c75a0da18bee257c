# authcmd.py: the per-command side of authentication (docs/protocol.md "Authentication"),
# imported at the first state-changing command: MAC check in constant time, counter, lockout
# with backoff, the flash event-log record of every authenticated command (refusals at most one
# a second), provisioning, and the rule that a widened limit needs the operator's confirm.
# `self` below is the bedside.auth.Auth (or, for the command functions, bedside.commands
# Commands) it works on: plain functions keep this rarely used code out of the boot heap.
import hashlib

from bedside.alarms.conditions import IDS
from bedside.auth import CTR_FILE, KEY_FILE, S_NONE, S_READY, auth_file, parse_key
from bedside.compat import const
from bedside.ticks import elapsed

_MAC_HEX = const(64)
_SUFFIX = const(74)  # ,"mac":"<64 hex>"} ends every signed line
MARK = b',"mac":"'
FAILS_FREE = const(5)  # failures in a row before a lockout
LOCK_MS = const(2000)  # the first lockout; each further one doubles ...
_LOCK_MAX_MS = const(300000)  # ... up to this
_CTR_MAX = const(0x3FFFFFFF)
_ID_MAX = const(32)
_REFUSAL_LOG_MS = const(1000)  # refused authentications: at most one log record a second
_HEX = bytearray(_MAC_HEX)  # the expected MAC in hex, built in place


def locked(self, now):
    """Milliseconds of lockout left (0: none)."""
    if not self.lock_ms:
        return 0
    left = self.lock_ms - self._lock.ms(now)
    if left <= 0:
        self.lock_ms = 0
        return 0
    return left


def fail(self, now):
    """A failed authentication: counted; FAILS_FREE in a row start a lockout, each next
    one twice as long (up to _LOCK_MAX_MS). Returns the lockout started (ms) or 0."""
    if self.failures < _CTR_MAX:
        self.failures += 1
    self.fails += 1
    if self.fails < FAILS_FREE:
        return 0
    self.fails = 0
    ms = LOCK_MS
    for _ in range(self.lockouts):
        ms *= 2
        if ms >= _LOCK_MAX_MS:
            ms = _LOCK_MAX_MS
            break
    if self.lockouts < 16:
        self.lockouts += 1
    self.lock_ms = ms
    self._lock.mark(now)
    return ms


def check(self, line, ctr):
    """Whether `line` (the received bytes, without LF) carries a valid MAC and a fresh
    counter: None, or the reason it does not. Compares all 64 characters whatever they
    hold (constant time). Changes nothing; accept(ctr) after the command is taken."""
    if self._retry:
        self._retry = False
        self.state = S_NONE
        self._load()
    if self.state != S_READY:
        if self.state == S_NONE:
            return "not provisioned: run bedside provision"
        return "key store unreadable: reset the key in maintenance mode"
    n = len(line)
    if n <= _SUFFIX or bytes(line[n - _SUFFIX : n - _SUFFIX + 8]) != MARK:
        return "authentication required: no mac at the end of the line"
    if line[n - 2] != 34 or line[n - 1] != 125:  # "}
        return "authentication required: no mac at the end of the line"
    h = hashlib.sha256(self._ipad)
    h.update(line[: n - _SUFFIX])
    inner = h.digest()
    h = hashlib.sha256(self._opad)
    h.update(inner)
    mac = h.digest()
    out = _HEX
    for i in range(32):
        b = mac[i]
        hi = b >> 4
        lo = b & 15
        out[2 * i] = hi + 48 if hi < 10 else hi + 87
        out[2 * i + 1] = lo + 48 if lo < 10 else lo + 87
    diff = 0
    base = n - _SUFFIX + 8
    for i in range(_MAC_HEX):
        diff |= out[i] ^ line[base + i]
    if diff:
        return "authentication failed: wrong mac"
    if isinstance(ctr, bool) or not isinstance(ctr, int) or ctr <= self.last:
        return "authentication failed: counter not above %d (replayed or stale)" % self.last
    if ctr > _CTR_MAX:
        return "authentication failed: counter above %d" % _CTR_MAX
    return None


def install(self, key):
    """Use the 32-byte key from now on and store it (OSError if the store fails: then
    nothing changed). A store-less device keeps it in RAM only."""
    if self.store is not None:  # the counter first: a failed key write leaves the old key
        self.store.write(CTR_FILE, self.counter_file())
        self.store.write(KEY_FILE, auth_file("".join("%02x" % b for b in key).encode()))
    self._use(key)
    self.problem = None


def authenticate(self, name, cmd):
    """None when the command may go on (its counter is then used up), else why not."""
    dev = self.dev
    a = dev.auth
    now = dev.now
    left = locked(a, now)
    if left:
        return "locked out after repeated authentication failures: %d s left" % (
            (left + 999) // 1000
        )
    by = cmd.get("by")
    if not isinstance(by, str) or not by or len(by) > _ID_MAX:
        return "by (operator name, 1..32 characters) is required"
    if name == "provision" and a.state == 0 and "mac" not in cmd:
        return None  # the first key: unsigned, on an unprovisioned device only
    err = check(a, dev.link.line(), cmd.get("ctr"))
    if err is None:
        a.accept(cmd["ctr"])
        dev.save_counter()
        return None
    if err.startswith("authentication"):
        ms = fail(a, now)
        if ms:
            err = "%s; locked out for %d s" % (err, ms // 1000)
    return err


def refuse(self, name, cmd, err):
    """Log a refused authentication: at most one record a second; the rest are counted
    in the next record's `more` (a flood never floods the flash)."""
    if self.refused < 0x3FFFFFFF:
        self.refused += 1
    now = self.dev.now
    if not self.refusal_quiet and elapsed(now, self.t_refusal) < _REFUSAL_LOG_MS:
        self.suppressed += 1
        return
    self.refusal_quiet = False
    self.t_refusal = now
    record(self, name, cmd, err, self.suppressed)
    self.suppressed = 0


def record(self, name, cmd, err, more=0):
    """The flash event-log record of an authenticated command, accepted or refused."""
    by = cmd.get("by")
    rec = {
        "event": "command",
        "cmd": name[:_ID_MAX],
        "by": by[:_ID_MAX] if isinstance(by, str) else None,
        "ok": err is None,
    }
    if err is None:
        if self.accepted < 0x3FFFFFFF:
            self.accepted += 1
    else:
        rec["reason"] = err[:80]
    if cmd.get("confirm") is True:
        rec["confirm"] = True
    if more:
        rec["more"] = more
    self.dev.log_event(rec)
    self.dev.send("command", rec)  # the same as a live message (the host's audit table)


def provision(dev, cmd, rid):
    key = cmd["key"]
    key = parse_key(key) if isinstance(key, str) else None
    if key is None:
        raise ValueError("key must be 64 lowercase hex characters")
    try:
        install(dev.auth, key)
    except OSError as e:
        dev.storage_error(e)
        dev.reply("provision", rid, "flash write failed: key not changed")
        return
    dev.reply("provision", rid, None, {"provisioned": True, "ctr": dev.auth.last})


# Operator settings that make an alarm less sensitive when they move one way: name ->
# (direction of widening: -1 down, +1 up; whether 0 means off (a widening of any size);
# the condition it is the limit or delay of). A widening by more than limit_step, or any
# widening while that condition's predicate holds (it could end the alarm), needs confirm.
WIDENS = {
    "spo2_low": (-1, False, "SPO2_LOW"),
    "spo2_desat": (-1, False, "SPO2_DESAT"),
    "spo2_low_delay_s": (1, False, "SPO2_LOW"),
    "pr_low": (-1, False, "PR_LOW"),
    "pr_high": (1, False, "PR_HIGH"),
    "sys_high": (1, False, "NIBP_SYS_HIGH"),
    "sys_low": (-1, False, "NIBP_SYS_LOW"),
    "dia_high": (1, False, "NIBP_DIA_HIGH"),
    "map_low": (-1, False, "NIBP_MAP_LOW"),
    "bp_rise_pct": (1, True, "BP_RISE"),
    "nibp_interval_min": (1, True, "NIBP_OVERDUE"),
}


def needs_confirm(s, name, value, alarms):
    """Why a change of operator setting `name` to `value` needs the operator's confirm (a
    readable reason), or None. `alarms`: the AlarmEngine (raw and exists per condition)."""
    row = WIDENS.get(name)
    if row is None:
        return None
    way, zero_off, cond = row
    old = s[name]
    if zero_off and value == 0:
        if old == 0:
            return None
        step = 1 << 20  # off: a widening of any size
    else:
        if zero_off and old == 0:
            return None  # from off to on is a narrowing
        step = (value - old) * way
    if step <= 0:
        return None
    i = IDS.index(cond)
    if alarms is not None and (alarms.raw[i] or alarms.exists[i]):
        return "%s %s widens the limit of the active %s alarm (it may end it)" % (
            name,
            value,
            cond,
        )
    if step > s["limit_step"]:
        if step >= 1 << 20:
            return "%s %s turns the %s alarm off" % (name, value, cond)
        return "%s %s widens the limit by %d, more than limit_step %d" % (
            name,
            value,
            step,
            s["limit_step"],
        )
    return None
