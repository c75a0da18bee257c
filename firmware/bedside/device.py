# device.py: the whole device core, one poll per main-loop tick.
# Follow a byte: poll() reads the oximeter UART -> sensors decoder updates the OxiReading ->
# alarms.rules judge the conditions -> alarms.engine decides occurrences and signal states ->
# annunciator drives the sounder and LEDs -> hostlink reports to the PC.
# Pure core: the UARTs, sounder, LEDs and flash store are injected; now_ms comes in as an
# argument (wrap-aware 30-bit ticks); nothing here blocks or sleeps.
import json

from bedside import VERSION
from bedside.alarmlog import AlarmLog
from bedside.alarms import fsm, rules
from bedside.alarms.conditions import CONDITIONS, IDS, KIND_NAMES, PRIORITY_NAMES
from bedside.alarms.engine import AlarmEngine
from bedside.annunciator import Annunciator
from bedside.compat import const
from bedside.hostlink import PROTOCOL_VERSION, HostLink
from bedside.nibp_schedule import NibpSchedule
from bedside.readings import F_NO_FINGER, F_SENSOR_OFF, NONE, NibpReading, OxiReading
from bedside.sensors import EV_FRAME, EV_READING, load_oximeter
from bedside.sensors.suntech import EV_NIBP_ERROR, EV_NIBP_RESULT, SuntechNibp
from bedside.sensors.suntech import STATE_NAMES as NIBP_STATE_NAMES
from bedside.settings import OPERATOR, Settings
from bedside.ticks import elapsed

TICK_MS = const(10)  # main-loop period the board aims for
_EVAL_MS = const(100)  # alarm rules are judged at least this often
_REPORT_MS = const(1000)  # vitals and heartbeat messages to the host
_RX = const(64)  # bytes read per UART per read call
_QUALITY_NAMES = ("unknown", "low", "marginal", "good")
SETTINGS_FILE = "settings.json"
_LOG_MAX = const(16)  # records per `log` command


def load_settings(store):
    """Settings from the flash store; unreadable or invalid: defaults, flagged as defaulted."""
    settings = Settings()
    raw = store.read(SETTINGS_FILE) if store is not None else None
    if raw is None:
        return settings  # first boot: defaults, not an error
    try:
        stored = json.loads(raw)
    except (ValueError, UnicodeError):
        stored = None
    settings.load(stored)
    return settings


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
    ):
        self.oxi_uart = oxi_uart
        self.nibp_uart = nibp_uart
        self.host = host
        self.store = store
        self.reset_cause = reset_cause
        self.settings = settings if settings is not None else load_settings(store)
        s = self.settings
        self.oxi = OxiReading()
        self.decoder = load_oximeter(s["oxi_format"], self.oxi)
        self.nibp = NibpReading()
        self.nibp_drv = None
        self.schedule = None
        if nibp_uart is not None:
            self._init_nibp(now)
        self.alarms = AlarmEngine(s, self._alarm_event)
        self.annunciator = Annunciator(sounder, leds, s)
        self.link = HostLink()
        self._buf = bytearray(_RX)
        self._mv = memoryview(self._buf)
        # time
        self.boot_ms = now
        self._last = now
        self.uptime_ms = 0
        self._t_eval = now
        self._t_report = now
        # what the rules look at
        self.oxi_seen = False
        self.oxi_rx_ms = now
        self.spo2_valid_ms = now
        self.spo2_held = False
        self.host_seen = False
        self.host_rx_ms = now
        self._now = now
        self.restarted = reset_cause not in ("power_on", "soft")
        self.check_overdue = False
        self.bp_baseline_sys = NONE
        self.nibp_due_ref_ms = now
        self.phase = "MONITOR"  # session workflow phase, shown on the display (bedside.display)
        self._eval_now = True
        self.alog = None  # persistent alarm log (flash ring), if there is a store
        if store is not None:
            self.alog = AlarmLog(store)
            self.alog.open()
            self.alog.append(0, {"event": "boot", "reset_cause": reset_cause})
        self._hello(None)

    # --- settings -----------------------------------------------------------------------
    def _save_settings(self):
        if self.store is not None:
            self.store.write(SETTINGS_FILE, json.dumps(self.settings.values).encode())

    # --- NIBP ---------------------------------------------------------------------------
    def _init_nibp(self, now):
        s = self.settings
        self.nibp_drv = SuntechNibp(self.nibp_uart, self.nibp, patient=s["nibp_patient"])
        self.schedule = NibpSchedule(interval_min=s["nibp_interval_min"])
        self.schedule.set_interval(s["nibp_interval_min"], now)

    def nibp_condition(self):
        return self.nibp_drv.condition if self.nibp_drv is not None else None

    def nibp_error_code(self):
        return self.nibp_drv.error if self.nibp_drv is not None else NONE

    # --- the tick -----------------------------------------------------------------------
    def poll(self, now):
        """Service every input and output once. Call every TICK_MS or so."""
        self.uptime_ms += elapsed(now, self._last)
        self._last = now
        self._poll_oximeter(now)
        if self.nibp_drv is not None:
            self._poll_nibp(now)
        self._poll_host(now)
        if self._eval_now or elapsed(now, self._t_eval) >= _EVAL_MS:
            self._eval_now = False
            self._t_eval = now
            rules.evaluate(self.alarms, self, now)
            self.alarms.step(now)
        a = self.alarms
        self.annunciator.step(now, a.audible_priority(), a.visible_priority(), a.audio_off)
        if elapsed(now, self._t_report) >= _REPORT_MS:
            self._t_report = now
            self._report(now)
        self.link.flush(self.host)

    def _poll_oximeter(self, now):
        ev = 0
        mv = self._mv
        for _ in range(8):  # bounded: at most 8 reads a tick
            n = self.oxi_uart.readinto(mv)
            if not n:
                break
            ev |= self.decoder.feed(mv, n, now)
            if n < _RX:
                break
        if ev & EV_FRAME:
            self.oxi_seen = True
            self.oxi_rx_ms = now
        if ev & EV_READING:
            r = self.oxi
            if r.spo2 != NONE and not r.flags & (F_SENSOR_OFF | F_NO_FINGER):
                self.spo2_valid_ms = now
            self._eval_now = True
        elif ev & EV_FRAME and self.oxi.flags & F_SENSOR_OFF:
            self._eval_now = True  # sensor-off: judge at once, not at the packet's end

    def _poll_nibp(self, now):
        drv = self.nibp_drv
        mv = self._mv
        ev = 0
        n = self.nibp_uart.readinto(mv)
        if n:
            ev |= drv.feed(mv, n, now)
        ev |= drv.step(now)
        s = self.settings  # SpO2 alarms held while the cuff inflates (alarms.md 4.5), capped
        self.spo2_held = self.alarms.nibp_hold.update(
            s["spo2_hold_nibp"], drv.busy, s["spo2_hold_max_s"], now
        )
        sched = self.schedule
        if sched.in_cycle and not drv.busy:
            sched.cycle_ended(now)  # result, error or abort: the cycle is over either way
        elif not drv.busy and sched.due(now):
            if drv.start(now):
                sched.cycle_started(now)
                self._send("nibp_state", {"state": "starting", "cuff": None})
        if ev & EV_NIBP_RESULT:
            n = self.nibp
            self.nibp_due_ref_ms = now
            if self.bp_baseline_sys == NONE:
                self.bp_baseline_sys = n.sys
            self._send("nibp", self._nibp_fields(now))
            self._eval_now = True
        if ev & EV_NIBP_ERROR:
            self._send(
                "nibp_state",
                {
                    "state": "error",
                    "error": drv.error,
                    "message": drv.error_text(),
                    "condition": drv.condition,
                },
            )
            self._eval_now = True

    def _nibp_fields(self, now):
        n = self.nibp
        if not n.valid:
            return {"sys": None, "dia": None, "map": None, "pr": None, "age_s": None}
        return {
            "sys": n.sys,
            "dia": n.dia,
            "map": n.map,
            "pr": _val(n.pr),
            "age_s": elapsed(now, n.t_ms) // 1000,
        }

    def _poll_host(self, now):
        mv = self._mv
        for _ in range(4):
            n = self.host.readinto(mv)
            if not n:
                break
            self.host_seen = True
            self.host_rx_ms = now
            self._now = now
            self.link.feed(mv, n, self._command)
            if n < _RX:
                break

    # --- buttons ------------------------------------------------------------------------
    def button(self, name, now):
        """A debounced key event: "ack" (short), "reset" (long), "check", "nibp"."""
        if name == "ack":
            n = self.alarms.ack(now)
            if n:
                self.annunciator.silence()
        elif name == "reset":
            self.restarted = False  # staff have seen the restart
            rules.evaluate(self.alarms, self, now)
            self.alarms.step(now)
            n = self.alarms.reset(now)
        elif name == "check":
            n = 1
            self.check_overdue = False
        elif name == "nibp":
            n = self._nibp_key(now)
        else:
            raise ValueError("unknown button %s" % name)
        self._send("button", {"button": name, "affected": n})
        self._eval_now = True
        return n

    def _nibp_key(self, now):
        drv = self.nibp_drv
        if drv is None:
            return 0
        if drv.busy:
            drv.abort(now)
            self._send("nibp_state", {"state": "aborting", "cuff": _val(drv.cuff_mmhg)})
            return 1
        self.schedule.measure_now(now)
        return 1

    # --- alarm events -------------------------------------------------------------------
    def _alarm_event(self, i, event, now):
        a = self.alarms
        fields = {
            "condition": IDS[i],
            "priority": PRIORITY_NAMES[a.prio[i]],
            "state": fsm.STATE_NAMES[a.state[i]],
            "event": fsm.EVENT_NAMES[event],
            "kind": KIND_NAMES[CONDITIONS[i][1]],
            "value": _val(a.value[i]),
            "limit": _val(a.limit[i]),
        }
        if event == fsm.E_ACK:
            fields["pause_s"] = self.settings["audio_pause_s"]
        self._send("alarm", fields)
        if self.alog is not None:
            self.alog.append(self.uptime_ms, fields)

    # --- host link ----------------------------------------------------------------------
    def _send(self, mtype, fields):
        return self.link.send(mtype, self.uptime_ms, fields)

    def _hello(self, req_id):
        self._send(
            "hello",
            {
                "fw": VERSION,
                "protocol": PROTOCOL_VERSION,
                "reset_cause": self.reset_cause,
                "oxi_format": self.settings["oxi_format"],
                "nibp": self.nibp_drv is not None,
                "settings_defaulted": self.settings.defaulted,
                "id": req_id,
            },
        )

    def _report(self, now):
        r = self.oxi
        fresh = self.oxi_seen and elapsed(now, self.oxi_rx_ms) < 2000
        self._send(
            "oxi",
            {
                "spo2": _val(r.spo2) if fresh else None,
                "pr": _val(r.pr) if fresh else None,
                "flags": r.flag_names() if fresh else ["no_data"],
                "quality": _QUALITY_NAMES[r.quality],
                "pi": r.pi_x100 / 100 if r.pi_x100 >= 0 else None,
            },
        )
        a = self.alarms
        top = a.top()
        hb = {
            "priority": PRIORITY_NAMES[a.visible_priority()],
            "audible": PRIORITY_NAMES[a.audible_priority()],
            "top": IDS[top] if top >= 0 else None,
            "active": [IDS[i] for i in range(len(IDS)) if a.state[i]],
            "audio_paused_s": a.paused_remaining_ms(now) // 1000,
            "audio_off": a.audio_off,
            "rx_errors": self.link.rx_errors + self.decoder.frames_bad,
            "tx_dropped": self.link.tx_dropped,
        }
        if self.nibp_drv is not None:
            hb["nibp"] = self._nibp_fields(now)
            hb["nibp_state"] = NIBP_STATE_NAMES[self.nibp_drv.state]
            hb["cuff"] = _val(self.nibp_drv.cuff_mmhg)
        self._send("heartbeat", hb)

    def _command(self, cmd, error):
        if cmd is None:
            self._send("reply", {"ok": False, "error": error})
            return
        name = cmd["cmd"]
        rid = cmd.get("id")
        handler = _COMMANDS.get(name)
        if handler is None:
            self._reply(name, rid, "unknown command %s" % name)
            return
        try:
            handler(self, cmd, rid)
        except (KeyError, TypeError, ValueError) as e:
            self._reply(name, rid, "bad arguments: %s" % e)

    def _reply(self, name, rid, error=None, fields=None):
        out = {"cmd": name, "id": rid, "ok": error is None}
        if error is not None:
            out["error"] = error
        if fields:
            out.update(fields)
        self._send("reply", out)

    def _cmd_ping(self, cmd, rid):
        self._reply("ping", rid)

    def _cmd_hello(self, cmd, rid):
        self._hello(rid)

    def _cmd_get_settings(self, cmd, rid):
        self._reply("get_settings", rid, None, {"settings": self.settings.values})

    def _cmd_set(self, cmd, rid):
        name = cmd["name"]
        value = cmd["value"]
        old = self.settings.values.get(name)
        err = self.settings.set(name, value, OPERATOR)
        if err:
            self._reply("set", rid, err)
            return
        self._save_settings()
        if name == "nibp_interval_min" and self.schedule is not None:
            self.schedule.set_interval(value, self._now)
            self.nibp_due_ref_ms = self._now
        self._reply("set", rid, None, {"name": name, "value": value, "old": old})
        self._send("setting", {"name": name, "value": value, "old": old})
        if self.alog is not None:
            line = {"event": "setting", "name": name, "value": value, "old": old}
            self.alog.append(self.uptime_ms, line)
        self._eval_now = True

    def _cmd_replay(self, cmd, rid):
        first = cmd["from"]
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError("from must be a sequence number")
        n = self.link.replay(first)
        self._reply("replay", rid, None, {"count": n, "oldest": self.link.oldest_kept()})

    def _cmd_status(self, cmd, rid):
        self._report(self._now)

    def _cmd_audio_off(self, cmd, rid):
        """{"cmd": "audio_off", "on": true|false}: AUDIO OFF, only if audio_off_allowed."""
        on = cmd["on"]
        if not isinstance(on, bool):
            raise ValueError("on must be true or false")
        was = self.alarms.audio_off
        err = self.alarms.set_audio_off(on)
        if err:
            self._reply("audio_off", rid, err)
            return
        self._reply("audio_off", rid, None, {"audio_off": on})
        if on != was and self.alog is not None:
            self.alog.append(self.uptime_ms, {"event": "audio_off" if on else "audio_on"})

    def _cmd_log(self, cmd, rid):
        """{"cmd": "log", "from": n}: up to 16 alarm-log records from n, one "log" message
        each, then a reply with count, next (to ask for) and the oldest/next numbers kept."""
        first = cmd.get("from", 0)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError("from must be a record number")
        if self.alog is None:
            self._reply("log", rid, "no alarm log (no flash store)")
            return
        recs = self.alog.read(first, _LOG_MAX)
        for rec in recs:
            self._send("log", rec)
        nxt = recs[-1]["n"] + 1 if recs else max(first, self.alog.seq)
        fields = {"count": len(recs), "next": nxt, "end": self.alog.seq, "boot": self.alog.boot}
        self._reply("log", rid, None, fields)

    def _cmd_nibp(self, cmd, rid):
        """{"cmd": "nibp", "action": "start"/"stop"}: measure now (STAT), or abort."""
        action = cmd["action"]
        drv = self.nibp_drv
        if action not in ("start", "stop"):
            raise ValueError("action must be start or stop")
        if drv is None:
            self._reply("nibp", rid, "no NIBP module on this device")
        elif action == "start" and drv.busy:
            self._reply("nibp", rid, "a measurement is already running")
        elif action == "stop" and not drv.busy:
            self._reply("nibp", rid, "no measurement is running")
        else:
            self._nibp_key(self._now)
            self._reply("nibp", rid, None, {"action": action})


_COMMANDS = {
    "ping": Device._cmd_ping,
    "hello": Device._cmd_hello,
    "get_settings": Device._cmd_get_settings,
    "set": Device._cmd_set,
    "replay": Device._cmd_replay,
    "status": Device._cmd_status,
    "log": Device._cmd_log,
    "audio_off": Device._cmd_audio_off,
    "nibp": Device._cmd_nibp,
}


def _val(x):
    return None if x == NONE else x
