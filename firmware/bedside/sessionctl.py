# sessionctl.py: wires the infusion session (session.py) into the device: the `session` and
# `get_session` commands, session messages and log records, the flash record (write-behind,
# restored at boot), the NIBP interval per phase, CHECK_OVERDUE / SEDATION_DEEP / BP_RISE
# facts for the rules, the device key sequences and the display text (docs/session.md).
# The device imports this (and bedside.session) only once a session is asked for (a session
# command or a record on flash): a device never used for sessions keeps that RAM. The ops
# (bedside.sessionops, sessionrec) are imported for an op or the restore and released after.
import sys

import bedside
from bedside import messages, session
from bedside.compat import const
from bedside.persist import SESSION_FILE
from bedside.readings import NONE
from bedside.ticks import elapsed

KEY_MS = const(10000)  # a key sequence not finished within this is cancelled
_M_NONE = const(0)
_M_SCORE = const(1)  # CHECK held: choosing a MOAA/S score with NIBP presses
_M_START = const(2)  # NIBP held in baseline: CHECK confirms the infusion start
_M_STOP = const(3)  # NIBP held in infusion: CHECK confirms the infusion stop
_SHORT = ("IDLE", "SCREEN", "BASELINE", "INFUSION", "RECOVERY", "READY", "CLOSED")
_LOGGED = ("patient", "course_day", "course_total", "override", "reason", "action", "rate")
_LOGGED2 = ("units", "on", "flow", "score", "scale", "aldrete", "padss", "advice")


class SessionCtl:
    def __init__(self, dev, now, raw=None):
        """raw: the record found on flash at boot (bytes), or None."""
        self.dev = dev
        self.sess = session.Session(dev.settings, now)
        self.m = session
        self.mode = _M_NONE
        self._mode_t = 0
        self.sel = -1  # the MOAA/S score chosen on the keys (-1: none yet)
        self.text = ""  # display: phase and next check, or the key prompt
        self._interval = -1
        self._key = -1  # what the display text was made from
        if raw is not None:
            self._restore(raw, now)
        self.sync(now)

    # --- boot -----------------------------------------------------------------------------
    def _restore(self, raw, now):
        s = self.sess
        try:
            s.restore(raw, now)
        except ValueError as e:
            _release()
            self.dev.fault("session restore", e)  # CORE_FAULT, a fault message, a log record
            self._event("restore_failed", None, {"error": str(e)[:80]})
            self.save()  # an idle record in its place
            return
        _release()
        if s.phase != self.m.IDLE:
            self._event("restored", None)
            if s.checking() and self.dev.schedule is not None:
                self.dev.schedule.measure_now(now)  # a fresh BP after the outage

    # --- per tick -------------------------------------------------------------------------
    def tick(self, now):
        m = self.m
        o = self.dev.obs
        spo2 = o.oxi.spo2 if o.spo2_current(now) else NONE
        pr = o.oxi.pr if o.pr_current(now) else NONE
        ev = self.sess.step(now, spo2, pr)
        if self.mode and elapsed(now, self._mode_t) >= KEY_MS:
            self.mode = _M_NONE
            self._text()
        if not ev:
            return  # timers move on whole seconds: the rest once a second
        if ev & m.EV_REMINDER:
            self._event("reminder", None)
            self.dev.annunciator.info(now)
        if ev & m.EV_OVERDUE:
            self._event("overdue", None)
        if ev & m.EV_SAVE:
            self.save()
        self.sync(now)

    def sync(self, now):
        """Bring the rules' facts, the NIBP interval and the display text up to date."""
        dev = self.dev
        s = self.sess
        o = dev.obs
        if o.check_overdue != s.overdue or o.sedation_deep != s.deep:
            dev._eval_now = True
        o.check_overdue = s.overdue
        o.sedation_deep = s.deep
        o.sedation_score = s.score if s.deep else NONE
        o.bp_baseline_sys = s.baseline_sys()
        iv = s.nibp_interval_min()
        sched = dev.schedule
        if sched is not None:
            sched.min_gap_ms = dev.settings["nibp_min_gap_s"] * 1000
        if iv != self._interval:
            self._interval = iv
            o.nibp_interval_min = iv
            o.nibp_due.mark(now)  # NIBP_OVERDUE counts from the change
            if sched is not None:
                sched.set_interval(iv, now)
        self._text()

    def _text(self):
        s = self.sess
        due = s.check_due_s()
        key = (s.phase << 12) | (self.mode << 8) | (self.sel + 1)
        key = key * 1000 + (-1 if due is None else (due + 59) // 60 if due > 0 else 0)
        if key == self._key:
            return  # nothing shown changed: no new string (once a second in steady state)
        self._key = key
        if self.mode == _M_SCORE:
            t = "MOAA/S %s CHK=OK" % ("?" if self.sel < 0 else self.sel)
        elif self.mode == _M_START:
            t = "START? CHECK=YES"
        elif self.mode == _M_STOP:
            t = "STOP? CHECK=YES"
        else:
            t = _SHORT[s.phase]
            if due is not None:
                t = "%s CHK %s" % (t[:4], ("%dm" % ((due + 59) // 60)) if due > 0 else "DUE")
        if t != self.text:
            self.text = t

    def nibp(self, now):
        """A valid NIBP result arrived."""
        n = self.dev.nibp
        if self.sess.note_nibp(n.sys, n.dia, n.map, n.pr) & self.m.EV_READING:
            self._event("baseline_reading", None)
            self.save()

    # --- messages and records ---------------------------------------------------------------
    def _event(self, event, by, extra=None):
        dev = self.dev
        fields = messages.session(self.sess, event, by)
        if extra:
            fields.update(extra)
        dev.send("session", fields)

    def _log(self, op, by, cmd):
        rec = {"event": "session", "op": op, "by": by, "id": self.sess.sid}
        rec["phase"] = self.sess.name()
        for names in (_LOGGED, _LOGGED2):
            for k in names:
                if k in cmd:
                    rec[k] = cmd[k]
        self.dev.log_event(rec)

    def save(self):
        p = self.dev.persist
        if p is not None:
            p.save(SESSION_FILE, self.sess.encode())

    # --- commands ---------------------------------------------------------------------------
    def get(self, cmd, rid):
        self.dev.reply("get_session", rid, None, {"session": self.sess.state()})

    def command(self, cmd, rid):
        """The `session` command: one op, validated; a refusal changes nothing. (The command
        layer collected the heap first: the op's code, sessionops, finds room in one piece.)"""
        try:
            self._command(cmd, rid)
        finally:
            _release()

    def _command(self, cmd, rid):
        dev = self.dev
        op = cmd["op"]
        s = self.sess
        err = s.refuse(op, cmd)
        if err is None and op == "baseline" and cmd["action"] == "repeat":
            err = dev.nibp_request("start")
        if err is None:
            top = dev.alarms.top()
            err, crit = s.apply(op, cmd, messages.IDS[top] if top >= 0 else None)
        else:
            crit = None
        fields = {"op": op}
        if err:
            if crit is not None:  # a refused discharge: which criteria do not hold
                fields["criteria"] = crit
            dev.reply("session", rid, err, fields)
            return
        crit = None
        fields["session"] = s.state()
        dev.reply("session", rid, None, fields)
        self._done(op, cmd["by"], cmd)

    def _done(self, op, by, cmd):
        self._event(op, by)
        self._log(op, by, cmd)
        self.save()
        self.sync(self.dev.now)
        self.dev._eval_now = True

    # --- keys (docs/session.md "Key sequences") ---------------------------------------------
    def key(self, name, now):
        """A key event. Returns how many actions it took, or None: not a session key, the
        device handles it as before."""
        s = self.sess
        m = self.m
        mode = self.mode
        if name == "ack":
            if mode:
                self._mode(_M_NONE, now)
            return None  # ACK always acknowledges alarms as well
        if name == "check_hold":
            if s.checking() or s.phase == m.READY:
                self.sel = -1
                self._mode(_M_SCORE, now)
                return 1
            return 0
        if name == "nibp_hold":
            if s.phase == m.BASELINE and s.base is not None:
                self._mode(_M_START, now)
                return 1
            if s.phase == m.INFUSION:
                self._mode(_M_STOP, now)
                return 1
            return 0
        if name == "nibp" and mode:
            if mode == _M_SCORE:  # 5, 4, ... 0, then 5 again
                self.sel = 5 if self.sel <= 0 else self.sel - 1
                self._mode(_M_SCORE, now)
            else:
                self._mode(_M_NONE, now)  # NIBP cancels a start/stop confirmation
            return 1
        if name != "check":
            return None
        if mode == _M_SCORE:
            if self.sel < 0:
                return 0  # nothing chosen yet: CHECK confirms only a chosen score
            score = self.sel
            self._mode(_M_NONE, now)
            return self._key_op("check", {"op": "check", "score": score})
        if mode == _M_START or mode == _M_STOP:
            self._mode(_M_NONE, now)
            return self._key_op("start" if mode == _M_START else "stop", {})
        if s.checking() or s.phase == m.READY:
            return self._key_op("check", {})
        return None

    def _key_op(self, op, cmd):
        err, _crit = self.sess.apply(op, cmd)
        _release()
        if err:
            self.dev.send("session", {"event": "refused", "by": "keys", "op": op, "error": err})
            return 0
        self._done(op, "keys", cmd)
        return 1

    def _mode(self, mode, now):
        self.mode = mode
        self._mode_t = now
        self._text()


def _release():
    """Drop bedside.sessionops and sessionrec (imported for an op or the restore): their RAM
    is free until the next op."""
    for name in ("sessionops", "sessionrec", "sessioncrit"):
        sys.modules.pop("bedside." + name, None)
        if hasattr(bedside, name):
            delattr(bedside, name)
