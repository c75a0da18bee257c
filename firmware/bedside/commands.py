# commands.py: the host command table (docs/protocol.md), in mpremote's style: each command
# names its arguments as data (field, kind, required) and one handler. Every line is validated
# before a handler runs; bad input gets a reply with a readable error and changes nothing.
# Long answers (the flash log) are served a few records per tick from a cursor.
import gc

from bedside.alarms.conditions import P_HIGH, P_LOW, P_MEDIUM
from bedside.compat import const
from bedside.settings import OPERATOR

# Every command that changes state: HMAC-signed with the device key, a fresh counter and an
# operator name `by` (docs/protocol.md "Authentication"); accepted and refused ones are logged.
# A new state-changing command joins by name here. The rest are read-only and need no key.
AUTHENTICATED = ("set", "nibp", "audio_off", "selftest", "session", "provision")
AUTH_FIELDS = ("by", "ctr", "mac")  # carried by every authenticated command

_LOG_PER_TICK = const(4)  # log records sent per tick
_LOG_MAX = const(16)  # records per log command
_ID_MAX = const(32)  # longest string id / operator name
_LEASE_MIN_S = const(10)
_LEASE_MAX_S = const(300)
LEASE_DEFAULT_S = const(60)

# argument kinds
A_INT = const(0)  # a whole number (not a bool), >= 0
A_BOOL = const(1)
A_STR = const(2)  # a string of at most _ID_MAX characters
A_VALUE = const(3)  # a setting value: a whole number or a string (checked by settings)
_KIND_TEXT = (
    "a whole number >= 0",
    "true or false",
    "a string of at most 32 characters",
    "a value",
)
_PRIORITIES = {"high": P_HIGH, "medium": P_MEDIUM, "low": P_LOW}


def _ok_kind(kind, v):
    if kind == A_INT:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if kind == A_BOOL:
        return isinstance(v, bool)
    if kind == A_STR:
        return isinstance(v, str) and len(v) <= _ID_MAX
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, str) and len(v) <= 64
    )


def valid_id(rid):
    """A command id the reply may echo: a short string, a whole number, or null."""
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -(1 << 53) <= rid <= (1 << 53)
    return isinstance(rid, str) and len(rid) <= _ID_MAX


class Commands:
    """Validates and runs host commands against the device; dev.reply()/dev.send() answer."""

    def __init__(self, dev):
        self.dev = dev
        self._log = None  # running log request: [reader, which, sent, limit, rid, first]
        self.accepted = 0  # authenticated commands taken (saturates)
        self.refused = 0  # authenticated commands refused before their handler (saturates)
        self.suppressed = 0  # refusals not logged since the last refusal record
        self.t_refusal = 0
        self.refusal_quiet = True

    # --- entry point (HostLink calls it once per received line) ---------------------------
    def handle(self, cmd, error):
        dev = self.dev
        if cmd is None:
            dev.send("reply", {"ok": False, "error": error, "id": None})
            return
        name = cmd["cmd"]
        rid = cmd.get("id")
        if not valid_id(rid):
            dev.reply(name, None, "id must be a string of at most 32 characters or a whole number")
            return
        spec = TABLE.get(name)
        if spec is None:
            dev.reply(name, rid, "unknown command %s" % name[:_ID_MAX])
            return
        args, handler = spec
        auth = name in AUTHENTICATED
        if auth:
            from bedside import authcmd  # at the first state-changing command (RAM)

            err = authcmd.authenticate(self, name, cmd)
            if err:
                authcmd.refuse(self, name, cmd, err)
                dev.reply(name, rid, err)
                return
            # an authenticated operator action (rare; a flood without the key never gets
            # here): collect first, so what it loads or builds finds room in one piece
            gc.collect()
        err = self._check_args(cmd, args, auth)
        if err:
            dev.reply(name, rid, err)
            if auth:
                authcmd.record(self, name, cmd, err)
            return
        dev.last_error = None
        try:
            handler(self, cmd, rid)
        except (KeyError, TypeError, ValueError) as e:
            dev.reply(name, rid, "bad arguments: %s" % e)
        except Exception as e:  # never out of the tick: reported as a fault, answered
            dev.fault("command", e)
            dev.reply(name, rid, "internal error")
        if auth:
            authcmd.record(self, name, cmd, dev.last_error)

    def _check_args(self, cmd, args, auth=False):
        for key in cmd:
            if key == "cmd" or key == "id" or (auth and key in AUTH_FIELDS):
                continue
            if not any(a[0] == key for a in args):
                return "unknown argument %s" % str(key)[:_ID_MAX]
        for field, kind, required in args:
            if field not in cmd:
                if required:
                    return "%s is required" % field
                continue
            if not _ok_kind(kind, cmd[field]):
                return "%s must be %s" % (field, _KIND_TEXT[kind])
        return None

    # --- per tick: long answers ------------------------------------------------------------
    def step(self, now):
        if self._log is not None:  # every tick: no log request costs no frame of _step's size
            self._step(self._log)

    def _step(self, job):
        dev = self.dev
        reader, which, sent, limit, rid, first = job
        for _ in range(_LOG_PER_TICK):
            if sent >= limit or dev.link.room() < 8:
                break
            try:
                rec = reader.next()
            except OSError as e:  # the flash failed mid-read: end this request, say so
                self._log = None
                dev.storage_error(e)
                dev.reply("log", rid, "flash read failed")
                return
            if rec is None:
                if reader.done:
                    limit = sent  # the log has no more
                break  # a bounded read found nothing yet: go on next tick
            dev.send("log", {"log": which, "rec": rec})
            sent += 1
            job[5] = rec["n"] + 1
        job[2] = sent
        job[3] = limit
        if sent >= limit:
            self._log = None
            log = dev.log_for(which)
            dev.reply(
                "log",
                rid,
                None,
                {
                    "log": which,
                    "count": sent,
                    "next": max(job[5], first),
                    "first": log.first() if log is not None else 0,
                    "end": log.seq if log is not None else 0,
                    "boot": dev.boot,
                },
            )

    # --- handlers --------------------------------------------------------------------------
    def _ping(self, cmd, rid):
        self.dev.reply("ping", rid)

    def _hello(self, cmd, rid):
        self.dev.reply("hello", rid)
        self.dev.send_hello(rid)

    def _status(self, cmd, rid):
        self.dev.reply("status", rid)
        self.dev.report(self.dev.now)

    def _get_settings(self, cmd, rid):
        self.dev.reply("get_settings", rid, None, {"settings": self.dev.settings.values})

    def _set(self, cmd, rid):
        dev = self.dev
        confirm = cmd.get("confirm", False)
        err, fields = dev.change_setting(cmd["name"], cmd["value"], OPERATOR, cmd["by"], confirm)
        dev.reply("set", rid, err, fields)

    def _provision(self, cmd, rid):
        from bedside.authcmd import provision

        provision(self.dev, cmd, rid)

    def _replay(self, cmd, rid):
        link = self.dev.link
        n, nxt = link.replay(cmd["from"])
        self.dev.reply(
            "replay", rid, None, {"count": n, "oldest": link.oldest_kept(), "next": nxt}
        )

    def _audio_off(self, cmd, rid):
        lease = cmd.get("lease_s", LEASE_DEFAULT_S)
        if lease < _LEASE_MIN_S or lease > _LEASE_MAX_S:
            raise ValueError("lease_s must be within %d..%d" % (_LEASE_MIN_S, _LEASE_MAX_S))
        err = self.dev.set_audio_off(cmd["on"], lease, "command")
        self.dev.reply(
            "audio_off", rid, err, None if err else {"audio_off": cmd["on"], "lease_s": lease}
        )

    def _log(self, cmd, rid):
        dev = self.dev
        which = cmd.get("log", "alarm")
        if which not in ("alarm", "event"):
            raise ValueError("log must be alarm or event")
        count = cmd.get("count", _LOG_MAX)
        if count < 1 or count > _LOG_MAX:
            raise ValueError("count must be within 1..%d" % _LOG_MAX)
        log = dev.log_for(which)
        if log is None:
            dev.reply("log", rid, "no %s log (no flash store)" % which)
            return
        if self._log is not None:
            dev.reply("log", rid, "busy: a log request is running")
            return
        first = cmd.get("from", 0)
        try:
            reader = log.reader(first)
        except OSError as e:
            dev.storage_error(e)
            dev.reply("log", rid, "flash read failed")
            return
        self._log = [reader, which, 0, count, rid, first]

    def _nibp(self, cmd, rid):
        action = cmd["action"]
        if action not in ("start", "stop"):
            raise ValueError("action must be start or stop")
        err = self.dev.nibp_request(action)
        self.dev.reply("nibp", rid, err, None if err else {"action": action})

    def _session(self, cmd, rid):
        self.dev.session().command(cmd, rid)

    def _get_session(self, cmd, rid):
        self.dev.session().get(cmd, rid)

    def _selftest(self, cmd, rid):
        p = _PRIORITIES.get(cmd["priority"])
        if p is None:
            raise ValueError("priority must be high, medium or low")
        self.dev.test_alarm(p, "host")
        self.dev.reply("selftest", rid, None, {"priority": cmd["priority"]})


# the `session` command's arguments (which op takes which: bedside.session.OPS)
_SESSION_ARGS = (
    ("patient", A_STR), ("course_day", A_INT), ("course_total", A_INT), ("override", A_BOOL),
    ("reason", A_STR), ("action", A_STR), ("rate", A_INT), ("units", A_STR), ("on", A_BOOL),
    ("flow", A_INT), ("score", A_INT), ("scale", A_STR), ("aldrete", A_INT), ("padss", A_INT),
    ("escort", A_STR), ("relationship", A_STR), ("advice", A_BOOL),
)  # fmt: skip

# name: ((argument, kind, required), ...), handler
TABLE = {
    "ping": ((), Commands._ping),
    "hello": ((), Commands._hello),
    "status": ((), Commands._status),
    "get_settings": ((), Commands._get_settings),
    "set": (
        (("name", A_STR, True), ("value", A_VALUE, True), ("confirm", A_BOOL, False)),
        Commands._set,
    ),
    "provision": ((("key", A_VALUE, True),), Commands._provision),
    "replay": ((("from", A_INT, True),), Commands._replay),
    "audio_off": ((("on", A_BOOL, True), ("lease_s", A_INT, False)), Commands._audio_off),
    "log": (
        (("from", A_INT, False), ("log", A_STR, False), ("count", A_INT, False)),
        Commands._log,
    ),
    "nibp": ((("action", A_STR, True),), Commands._nibp),
    "selftest": ((("priority", A_STR, True),), Commands._selftest),
    "get_session": ((), Commands._get_session),
    # every op's arguments (session.OPS says which op takes which, and checks them)
    "session": (
        (("op", A_STR, True), ("by", A_STR, True))
        + tuple((a, kind, False) for a, kind in _SESSION_ARGS),
        Commands._session,
    ),
}
del _SESSION_ARGS  # (in the table now)
