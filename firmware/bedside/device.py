# device.py: the device core: one short pipeline per main-loop tick.
# Follow a byte: the oximeter UART -> sensors decoder (OxiReading) -> observations (the facts,
# with saturating ages) -> alarms.rules judge the conditions -> alarms.engine decides
# occurrences and signal states -> annunciator drives the sounder and LEDs -> hostlink
# reports to the PC (messages.py builds the bodies, commands.py answers the host).
# Pure core: UARTs, sounder, LEDs and flash store are injected; now_ms comes in as an
# argument (wrap-aware 30-bit ticks); nothing here blocks, sleeps or writes flash: records go
# to the persistence queue, which the main loop drains when no pulse is due (background()).
# No exception leaves poll(), button() or background(): a caught error raises CORE_FAULT (or
# STORAGE_FAULT), is reported and logged, and the annunciator is put in a safe state.
from bedside import messages
from bedside.alarmlog import AlarmLog
from bedside.alarms import rules
from bedside.alarms.conditions import HOST_LINK_LOST, P_HIGH, P_LOW, P_MEDIUM, TEST_HIGH
from bedside.alarms.engine import AlarmEngine
from bedside.annunciator import Annunciator
from bedside.auth import CTR_FILE, S_READY, Auth
from bedside.commands import Commands
from bedside.compat import const
from bedside.hostlink import HostLink
from bedside.observations import Observations
from bedside.persist import SESSION_FILE, Persist
from bedside.readings import NibpReading, OxiReading
from bedside.sensors import EV_FRAME, EV_READING, load_oximeter
from bedside.settings import SETTINGS_FILE, encode, read_settings
from bedside.ticks import Age, elapsed

TICK_MS = const(10)  # main-loop period the board aims for
_EVAL_MS = const(100)  # alarm rules are judged at least this often
_REPORT_MS = const(1000)  # vitals and heartbeat messages to the host
_RX = const(64)  # bytes read per UART per read call
_PERSIST_QUIET_MS = const(60)  # a flash write runs only if no pulse is due this soon
_FAULT_MSG_MS = const(1000)  # at most one fault message a second (the count says the rest)
_BAD_TICKS = const(100)  # ticks in a row whose alarm stages failed: the loop cannot go on
_COUNT_MAX = const(9999)
PROGRESS_MS = const(1000)  # every part of the tick must complete within this, or: unhealthy
PARTS = ("sensors", "alarms", "annunciator", "host")  # the parts whose progress is watched
_EVENT_KEYS = ("ack", "reset", "check", "nibp", "selftest", "check_hold", "nibp_hold")
_WRAP = const(1 << 29)  # statistics counters fold below this: small ints on the Pico for ever
# the statistics counters of decoders, drivers and readings (they rise per frame or reply)
_COUNTERS = (
    "frames_ok", "frames_bad", "bytes_skipped", "frame_losses", "packets", "packets_ok",
    "beeps", "out_of_range", "unconfirmed", "lines_overlong", "field_errors", "bad_checksum",
    "other_packets", "alarm_lines", "count", "commands_sent", "busy_replies", "k_timeouts",
    "unsolicited_k", "aborts_sent", "cuff_faults", "cuff_rejected",
)  # fmt: skip
_EV_NIBP_RESULT = const(2)  # = sensors.suntech.EV_NIBP_RESULT (test_core_hardening checks)
_EV_NIBP_ERROR = const(4)  # = sensors.suntech.EV_NIBP_ERROR


class Device:
    """The Bedside core. Construct once at boot; call poll(now_ms) every tick."""

    def __init__(
        self,
        now,
        oxi_uart,
        host,
        sounder,
        leds,
        store=None,
        nibp_uart=None,
        reset_cause="power_on",
        settings=None,
        selftest=True,
        device_id="",
    ):
        self.link = HostLink()  # first: its rings are the largest blocks (a Pico-sized heap)
        self.oxi_uart = oxi_uart
        self.nibp_uart = nibp_uart
        self.host = host
        self.reset_cause = reset_cause
        self.now = now
        self.faults = 0
        self.last_fault = None
        self._t_fault_msg = now
        self._fault_quiet = True
        self._bad_ticks = 0
        self._failing = bytearray(4)  # per part of PARTS: its stage failed and has not
        self._fail_t = [0, 0, 0, 0]  # completed work since ... the first failure's time
        self.display_errors = 0
        self.settings = settings if settings is not None else read_settings(store)
        s = self.settings
        # flash: two logs and the write-behind queue; a failing store is a technical alarm
        self.persist = None
        self.alog = self.elog = None
        self.boot = 0
        storage_ok = True
        storage_err = None
        if store is not None:
            self.alog = AlarmLog(store)
            self.elog = AlarmLog(store, prefix="eventlog.")
            try:
                self.boot = self.alog.open()
                self.elog.open(self.boot)
            except Exception as e:  # OSError above all: alarms go on without a log
                storage_ok = False
                storage_err = "flash log unreadable at start: %s: %s" % (type(e).__name__, e)
            self.persist = Persist(store, self.alog, self.elog)
        self.link.boot = self.boot
        self.oxi = OxiReading()
        self.decoder = load_oximeter(s["oxi_format"], self.oxi)
        self.nibp = NibpReading()
        self.nibp_age = Age()
        self.nibp_drv = None
        self.nibp_states = ()
        self.schedule = None
        if nibp_uart is not None:  # imported only with a module: RAM on a Pico-sized heap
            from bedside.nibp_schedule import NibpSchedule
            from bedside.sensors.suntech import STATE_NAMES, SuntechNibp

            self.nibp_states = STATE_NAMES
            self.nibp_drv = SuntechNibp(nibp_uart, self.nibp, patient=s["nibp_patient"])
            self.schedule = NibpSchedule(min_gap_s=s["nibp_min_gap_s"])
            self.schedule.set_interval(s["nibp_interval_min"], now)  # the session's per phase
        restarted = reset_cause not in ("power_on", "soft")
        self.obs = Observations(now, self.oxi, self.nibp, restarted)
        self.obs.storage_fault = not storage_ok
        self.obs.nibp_interval_min = s["nibp_interval_min"]
        self.alarms = AlarmEngine(s, self._alarm_event)
        self.annunciator = Annunciator(sounder, leds, s)
        self.selftest = None  # the power-on self-test while it runs (then released: RAM)
        self.device_id = device_id  # the board's unique id (hello): the host's key name
        self.auth = Auth(store)
        self.last_error = None  # of the last reply (the command log records it)
        self.cmds = Commands(self)
        self._on_line = self.cmds.handle  # bound once: no allocation per tick
        self._buf = bytearray(_RX)
        self._mv = memoryview(self._buf)
        self._last = now
        self.up_s = 0
        self._up_ms = 0
        self._t_eval = now
        self._t_report = now
        self._eval_now = True
        self._audio_lease = Age()
        self._audio_lease_ms = 0
        self._tests = []  # test alarms queued after the running one
        self._last_audible = 0
        self._pfault = False
        if not storage_ok:
            self._fault_msg("storage", storage_err)
        self.sessctl = None  # the infusion session (sessionctl.py), loaded on first use
        raw = None
        try:
            raw = store.read(SESSION_FILE) if store is not None else None
        except Exception as e:  # the session starts idle; STORAGE_FAULT says why
            self.storage_error(e)
        if raw is not None:
            self.session(raw)  # restored in its phase, or idle with a fault if corrupt
        if selftest:
            from bedside.selftest import SelfTest

            self.selftest = SelfTest(sounder, leds)
            self.selftest.start(now)
        self.log_event({"event": "boot", "reset_cause": reset_cause}, alarm=True)
        for text in s.problems:
            self.log_event({"event": "settings_problem", "problem": text})
        if self.auth.problem:
            self.log_event({"event": "auth_problem", "problem": self.auth.problem})
        if self.auth.state == S_READY:
            self.save_counter()  # the reserve after a start is used up: never again
        if s.needs_save:
            self.save_settings()  # an older schema: written once in the current one
        self.send_hello(None)

    @property
    def uptime_ms(self):
        return self.up_s * 1000 + self._up_ms

    def uptime(self):
        """(seconds, ms) of uptime: what queued records keep (no big int on the Pico)."""
        return (self.up_s, self._up_ms)

    # --- the tick -----------------------------------------------------------------------
    def poll(self, now):
        """Service every input and output once. Call every TICK_MS or so. Never raises."""
        self.now = now
        d = elapsed(now, self._last)
        self._last = now
        self._up_ms += d
        if self._up_ms >= 1000:  # uptime as seconds + ms: small ints for ever
            q = self._up_ms // 1000
            self.up_s += q
            self._up_ms -= q * 1000
        bad = False
        try:
            if self._read_sensors(now):
                self._failing[0] = 0  # bytes went through the decoders
        except Exception as e:
            self._stage_failed(0, now)
            self.fault("sensors", e)
        host_ok = True
        try:
            if self.link.pump(self.host, self._on_line):
                self.obs.host_seen = True
                self.obs.host_rx.mark(now)
        except Exception as e:
            host_ok = False
            self._stage_failed(3, now)
            self.fault("host", e)
        try:
            if self.sessctl is not None:
                self.sessctl.tick(now)
        except Exception as e:
            self.fault("session", e)
        try:
            self._judge(now)
            self._failing[1] = 0
        except Exception as e:
            bad = True
            self._stage_failed(1, now)
            self.fault("alarms", e)
        try:
            self._annunciate(now)
            self._failing[2] = 0
        except Exception as e:
            bad = True
            self._stage_failed(2, now)
            self.fault("annunciator", e)
            self._safe(now)
        try:
            if elapsed(now, self._t_report) >= _REPORT_MS:
                self._t_report = now
                self.report(now)
            self.cmds.step(now)
        except Exception as e:
            self.fault("report", e)
        try:
            self.link.flush(self.host)
            if host_ok:
                self._failing[3] = 0
        except Exception as e:
            self._stage_failed(3, now)
            self.fault("host", e)
        self._bad_ticks = self._bad_ticks + 1 if bad else 0

    def _stage_failed(self, i, now):
        if not self._failing[i]:
            self._failing[i] = 1
            self._fail_t[i] = now

    def stalled(self):
        """The first of PARTS (index) whose stage failed PROGRESS_MS ago and has completed no
        work since (a decoder that raises on every byte, a host link that raises every tick),
        or -1. A part with nothing to do (no bytes) is not stalled."""
        now = self.now
        for i in range(4):
            if self._failing[i] and elapsed(now, self._fail_t[i]) >= PROGRESS_MS:
                return i
        return -1

    def healthy(self):
        """False once the alarm stages have failed _BAD_TICKS ticks in a row, or any part of
        the tick (sensor decoders, alarm evaluation, annunciator, host link) has made no
        progress for PROGRESS_MS: the board then stops feeding the watchdog (a reset, then
        DEVICE_RESTARTED, is the way back to a working loop)."""
        return self._bad_ticks < _BAD_TICKS and self.stalled() < 0

    def background(self, now):
        """Flash write-behind: one store operation, only when no auditory pulse is due soon
        (on the rp2 port a flash erase runs with interrupts off). Never raises."""
        p = self.persist
        if p is None or not p.pending():
            return
        try:
            if self.annunciator.quiet_ms(now) < _PERSIST_QUIET_MS:
                return
            saving = p.saving(SETTINGS_FILE)
            p.step()
            if p.fault != self._pfault:
                self._pfault = p.fault
                self.obs.storage_fault = p.fault
                self._eval_now = True
                if p.fault:
                    self._fault_msg("storage", p.last_error)
            if saving and not p.fault and not p.saving(SETTINGS_FILE):
                self.settings.saved()  # valid settings are on flash: SETTINGS_DEFAULTED ends
                self._eval_now = True
        except Exception as e:
            self.fault("storage", e)

    def _read_sensors(self, now):
        """Returns whether any byte went through a decoder this tick."""
        fed = False
        n = self.oxi_uart.readinto(self._mv)  # every tick: nothing read costs a small frame
        if n:
            self._oxi_in(n, now)
            fed = True
        if self.nibp_drv is not None:
            fed = self._poll_nibp(now) or fed
        return fed

    def _oxi_in(self, n, now):
        """n bytes are in self._mv: decode them and read on, at most 8 reads a tick."""
        ev = self.decoder.feed(self._mv, n, now)
        k = 7
        while k and n >= _RX:  # a short read: the UART had no more
            k -= 1
            n = self.oxi_uart.readinto(self._mv)
            if not n:
                break
            ev |= self.decoder.feed(self._mv, n, now)
        if ev:
            self._oxi_events(ev, now)

    def _oxi_events(self, ev, now):
        o = self.obs
        if ev & EV_FRAME:
            o.oxi_frame(self.oxi.flags, now)
        if ev & EV_READING:
            r = self.oxi
            o.oxi_values(r.spo2, r.pr, r.flags, now)
            self._eval_now = True
        elif ev & EV_FRAME and o.off_flags:
            self._eval_now = True  # sensor-off: judge soon, not at the packet's end

    def _judge(self, now):
        if not (self._eval_now or elapsed(now, self._t_eval) >= _EVAL_MS):
            return
        self._eval_now = False
        self._t_eval = now
        a = self.alarms
        was_off = a.audio_off
        rules.evaluate(a, self.settings, self.obs, now)
        a.step(now)
        if a.audio_off:
            if self._audio_lease.ms(now) >= self._audio_lease_ms:
                self._end_audio_off("lease_expired")
            elif a.exists[HOST_LINK_LOST]:
                self._end_audio_off("host_link_lost")
        elif was_off:
            self._audio_off_event(False, "withdrawn")  # the organisation withdrew it
        if self._tests and not self.obs.test_running(now):
            self.obs.test_prio = self._tests.pop(0)
            self.obs.test.mark(now)
            self._eval_now = True

    def _annunciate(self, now):
        a = self.alarms
        audible = a.audible_priority()
        self._last_audible = audible
        st = self.selftest
        if st is not None:
            if st.running and not audible and st.step(now, self.settings["sounder_hz"]):
                return
            st.stop()  # done, or a real alarm needs the outputs
            self.selftest = None
            _release_selftest()
            self.annunciator.invalidate()
            self.send("selftest", {"step": "done", "by": "boot"})
        self.annunciator.step(now, audible, a.visible_priority(), a.audio_off)

    def _safe(self, now):
        """The annunciator failed: restart it sounding at least the highest known priority;
        if even that fails, a steady tone and the red LED."""
        prio = self._last_audible if self._last_audible > P_MEDIUM else P_MEDIUM
        try:
            self.annunciator.safe(now, prio)
        except Exception:
            try:
                self.annunciator.sounder.tone(self.settings["sounder_hz"], 16384)
                self.annunciator.leds.set(0, True)
            except Exception:
                pass

    # --- faults -------------------------------------------------------------------------
    def fault(self, where, e):
        """An unexpected error was caught: CORE_FAULT, a fault message and a log record."""
        try:
            if self.faults < _COUNT_MAX:
                self.faults += 1
            self.obs.fault.mark(self.now)
            self._eval_now = True
            self._fault_msg(where, "%s: %s" % (type(e).__name__, e))
        except Exception:
            pass

    def _fault_msg(self, where, text):
        text = (text or "")[:80]
        self.last_fault = text
        now = self.now
        if self._fault_quiet or elapsed(now, self._t_fault_msg) >= _FAULT_MSG_MS:
            self._fault_quiet = False
            self._t_fault_msg = now
            fields = {"where": where, "error": text, "count": self.faults}
            self.send("fault", fields)
            self.log_event({"event": "fault", "where": where, "error": text})

    def storage_error(self, e):
        self.obs.storage_fault = True
        self._eval_now = True
        self._fault_msg("storage", "%s: %s" % (type(e).__name__, e))

    # --- NIBP ---------------------------------------------------------------------------
    def _poll_nibp(self, now):
        drv = self.nibp_drv
        mv = self._mv
        ev = 0
        n = self.nibp_uart.readinto(mv)
        fed = False
        if n:
            ev |= drv.feed(mv, n, now)
            fed = True
        ev |= drv.step(now)
        o = self.obs
        s = self.settings  # SpO2 alarms held while the cuff inflates (alarms.md 6), capped
        o.spo2_held = self.alarms.nibp_hold.update(
            s["spo2_hold_nibp"], drv.busy, s["spo2_hold_max_s"], now
        )
        o.nibp_cond = drv.condition
        o.nibp_error = drv.error
        cuff_fault = drv.cuff_fault
        if cuff_fault != o.cuff_fault:
            o.cuff_fault = cuff_fault
            self._eval_now = True
            state = "cuff_fault" if cuff_fault else "deflated"
            fields = {"state": state, "cuff": messages.val(drv.cuff_mmhg)}
            if cuff_fault:
                fields["reason"] = drv.cuff_fault_reason
            self.send("nibp_state", fields)
        sched = self.schedule
        if sched.in_cycle and not drv.busy:
            sched.cycle_ended(now)  # result, error or abort: the cycle is over either way
        elif not drv.busy and sched.due(now):
            if drv.start(now):
                sched.cycle_started(now)
                self.send("nibp_state", {"state": "starting", "cuff": None})
        if ev & _EV_NIBP_RESULT:
            self.nibp_result(now)
        if ev & _EV_NIBP_ERROR:
            fields = {
                "state": "error",
                "error": drv.error,
                "message": drv.error_text(),
                "condition": drv.condition,
            }
            self.send("nibp_state", fields)
            self._eval_now = True
        return fed

    def nibp_result(self, now):
        """A valid reading is in self.nibp: report it, judge it, give it to the session."""
        self.obs.nibp_due.mark(now)
        self.nibp_age.mark(now)
        self.send("nibp", messages.nibp(self, now))
        if self.sessctl is not None:
            self.sessctl.nibp(now)
        self._eval_now = True

    def nibp_request(self, action):
        """Host: "start" (STAT) or "stop" (abort). Returns an error string or None."""
        drv = self.nibp_drv
        if drv is None:
            return "no NIBP module on this device"
        if action == "start" and drv.busy:
            return "a measurement is already running"
        if action == "stop" and not drv.busy:
            return "no measurement is running"
        if action == "start" and drv.cuff_fault:
            return "the cuff is not deflated (NIBP_CUFF_FAULT)"
        self._nibp_key(self.now)
        return None

    def _nibp_key(self, now):
        """The NIBP key: start a measurement, or abort the running one. During a cuff fault it
        sends the abort again; if the module is silent (cuff pressure unknown) it records that
        staff have taken the cuff off (the only way such a fault ends)."""
        drv = self.nibp_drv
        if drv is None:
            return 0
        if drv.cuff_fault and drv.clear_cuff_fault(now):
            self.log_event({"event": "cuff_cleared", "by": "keys"})
            return 1
        if drv.busy:
            drv.abort(now)
            self.send("nibp_state", {"state": "aborting", "cuff": messages.val(drv.cuff_mmhg)})
            return 1
        self.schedule.measure_now(now)
        return 1

    # --- keys -----------------------------------------------------------------------------
    def button(self, name, now):
        """A key event: "ack" (short), "reset" (long), "check", "nibp", "selftest". Returns
        how many alarms or actions it touched. Never raises (an unknown name touches none)."""
        try:
            return self._button(name, now)
        except Exception as e:
            self.fault("button", e)
            return 0

    def _button(self, name, now):
        if name not in _EVENT_KEYS:
            return 0
        self.now = now
        n = None  # key sequences of the session (docs/session.md)
        if self.sessctl is not None:
            n = self.sessctl.key(name, now)
        if n is not None:
            pass
        elif name == "ack":
            n = self.alarms.ack(now)
            if n:
                self.annunciator.silence()
        elif name == "reset":
            o = self.obs
            o.restarted = False  # staff have seen the restart
            if self.settings.defaulted:  # staff have seen the defaulted settings: keep these
                if self.persist is not None:
                    self.save_settings()  # SETTINGS_DEFAULTED ends once they are on flash
                else:
                    self.settings.reset_defaulted()
            rules.evaluate(self.alarms, self.settings, o, now)
            self.alarms.step(now)
            n = self.alarms.reset(now)
        elif name == "check" or name == "check_hold" or name == "nibp_hold":
            n = 0  # no session check running: nothing to record
        elif name == "nibp":
            n = self._nibp_key(now)
        else:
            n = self.test_alarm(0, "keys")
        self.send("button", {"button": name, "affected": n})
        self._eval_now = True
        return n

    def test_alarm(self, prio, by):
        """A test alarm of `prio` (0: HIGH, MEDIUM, LOW in turn), through the whole chain."""
        seq = [prio] if prio else [P_HIGH, P_MEDIUM, P_LOW]
        self._tests = seq
        self.obs.test_prio = 0
        self._eval_now = True
        self.send("selftest", {"step": "alarm", "by": by, "priorities": len(seq)})
        self.log_event({"event": "selftest", "by": by})
        return len(seq)

    def session(self, raw=None):
        """The session control, imported and made on first use (RAM on a Pico-sized heap)."""
        if self.sessctl is None:
            from bedside.sessionctl import SessionCtl

            self.sessctl = SessionCtl(self, self.now, raw)
        return self.sessctl

    # --- settings and AUDIO OFF (host commands) -------------------------------------------
    def change_setting(self, name, value, access, by, confirm=False):
        """Validate and apply; returns (error or None, reply fields). A change that widens
        the limit of an active physiological alarm, or widens a limit by more than the
        organisation's limit_step, needs confirm (settings.needs_confirm)."""
        s = self.settings
        err = s.check_set(name, value, access)
        if err:
            return err, None
        old = s[name]
        if not s.would_change(name, value):
            return None, {"name": name, "value": value, "old": old, "changed": False}
        from bedside.authcmd import needs_confirm  # loaded by the command's authentication

        why = needs_confirm(s, name, value, self.alarms)
        if why and not confirm:
            return "%s: send again with confirm to change it" % why, None
        err = s.set(name, value, access)
        if err:
            return err, None
        fields = {"name": name, "value": value, "old": old, "changed": True}
        if why:
            fields["confirmed"] = why
        self.save_settings()
        if self.sessctl is not None:
            self.sessctl.sync(self.now)  # the NIBP interval per session phase
        elif name == "nibp_interval_min":
            self.obs.nibp_interval_min = value
            self.obs.nibp_due.mark(self.now)
            if self.schedule is not None:
                self.schedule.set_interval(value, self.now)
        elif name == "nibp_min_gap_s" and self.schedule is not None:
            self.schedule.min_gap_ms = value * 1000
        if name == "nibp_patient" and self.nibp_drv is not None:
            self.nibp_drv.set_patient(value)
        msg = {"name": name, "value": value, "old": old, "by": by}
        rec = {"event": "setting", "name": name, "value": value, "old": old, "by": by}
        if why:
            msg["confirmed"] = True
            rec["confirmed"] = True
        self.send("setting", msg)
        self.log_event(rec)
        self._eval_now = True
        return None, fields

    def save_counter(self):
        """Queue the authentication counter (written behind, coalesced)."""
        if self.persist is not None:
            self.persist.save(CTR_FILE, self.auth.counter_file())

    def save_settings(self):
        """Queue the settings file (written behind; settings.saved() once it is on flash)."""
        if self.persist is not None:
            self.persist.save(SETTINGS_FILE, encode(self.settings.values))

    def set_audio_off(self, on, lease_s, reason):
        a = self.alarms
        was = a.audio_off
        err = a.set_audio_off(on)
        if err:
            return err
        if on:
            self._audio_lease.mark(self.now)
            self._audio_lease_ms = lease_s * 1000
        if on != was or on:
            self._audio_off_event(on, reason, lease_s)
        self._eval_now = True
        return None

    def _end_audio_off(self, reason):
        self.alarms.set_audio_off(False)
        self._audio_off_event(False, reason)

    def _audio_off_event(self, on, reason, lease_s=None):
        self.send("audio_off", {"on": on, "reason": reason, "lease_s": lease_s})
        self.log_event({"event": "audio_off" if on else "audio_on", "reason": reason})

    def audio_off_left_ms(self, now):
        left = self._audio_lease_ms - self._audio_lease.ms(now)
        return left if left > 0 else 0

    # --- alarm events and logs ------------------------------------------------------------
    def _alarm_event(self, i, event, now):
        fields = messages.alarm(self, i, event)
        self.send("alarm", fields)
        if self.persist is not None:  # test alarms go to the event log, not the alarm log
            if i < TEST_HIGH:
                self.persist.log_alarm(self.uptime(), fields)
            else:
                self.persist.log_event(self.uptime(), fields)

    def log_event(self, fields, alarm=False):
        p = self.persist
        if p is None:
            return
        if alarm:
            p.log_alarm(self.uptime(), fields)
        else:
            p.log_event(self.uptime(), fields)

    def log_for(self, which):
        return self.alog if which == "alarm" else self.elog

    def log_positions(self):
        if self.alog is None:
            return None
        out = {}
        for name, log in (("alarm", self.alog), ("event", self.elog)):
            try:
                out[name] = {"first": log.first(), "next": log.seq}
            except Exception:
                out[name] = None
        return out

    # --- host link ----------------------------------------------------------------------
    def send(self, mtype, fields):
        return self.link.send(mtype, self.uptime_ms, fields)

    def reply(self, name, rid, error=None, fields=None):
        self.last_error = error
        out = {"cmd": name, "id": rid, "ok": error is None}
        if error is not None:
            out["error"] = error
        if fields:
            for k in fields:
                if k not in out:
                    out[k] = fields[k]
        self.send("reply", out)

    def send_hello(self, rid):
        self.send("hello", messages.hello(self, rid))

    def report(self, now):
        for obj in (self.decoder, self.oxi, self.nibp, self.nibp_drv):
            if obj is not None:
                _fold(obj)
        self.send("oxi", messages.oxi(self, now))
        self.send("heartbeat", messages.heartbeat(self, now))


def _fold(obj):
    """Keep obj's statistics counters below _WRAP (they count on modulo 2**29; a per-frame
    increment past 2**30 would allocate a big int on the Pico after about 165 days)."""
    for name in _COUNTERS:
        v = getattr(obj, name, 0)
        if v >= _WRAP:
            setattr(obj, name, v - _WRAP)


def _release_selftest():
    """The power-on self-test ran once: its code leaves the heap (it never runs again)."""
    import sys

    import bedside

    sys.modules.pop("bedside.selftest", None)
    if hasattr(bedside, "selftest"):
        delattr(bedside, "selftest")
