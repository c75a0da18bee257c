"""A fake Bedside device speaking host-link protocol v2 (docs/protocol.md) over a pty.

For the link-client and device-command tests: it is written from the protocol document, not
from the firmware, so the same tests can later run against the real `bedside sil`. It has a
boot counter and flash logs (alarm and event rings with record numbers) that survive restarts,
the replay history (last 64 lines plus the last 64 alarm/nibp/nibp_state/setting/audio_off/
fault lines, 16 per replay command with `next`), the log command (a few records per tick,
one request at a time), settings validated by the firmware table (`bedside.settings`), NIBP
start/stop, the AUDIO OFF lease, HOST_LINK_LOST, selftest, and everything that makes a link
hard: lines dropped in transit, a mute link, garbage, restarts, and the port vanishing and
reappearing at the same path (a symlink, like /dev/serial/by-id).

It also speaks the infusion-session protocol (SESSION_PROTOCOL.md, issue 11): `get_session`,
`session` ops with the phase table, baseline readings from NIBP results, discharge criteria,
the `session` message, the heartbeat's `phase`, and the session kept in flash across restarts
(`restored`). Its timing settings are attributes (`baseline_gap_s`, `recovery_min_s`,
`check_every_s`) so tests run in seconds.

A thread runs the device every 10 ms; tests call the hooks (thread-safe) and read the state.
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bedside.settings import OPERATOR, SPEC, Settings, check

TICK_S = 0.01
LINE_MAX = 512
HISTORY = 64
REPLAY_CAP = 16
LOG_CAP = 16
LOG_PER_TICK = 4
COMMANDS_PER_TICK = 4
OUTBOX = 256
IMPORTANT = ("alarm", "nibp", "nibp_state", "setting", "audio_off", "fault")
PRIORITY = {"none": 0, "low": 1, "medium": 2, "high": 3}
TECHNICAL = {
    "OXI_SENSOR_OFF",
    "OXI_SIGNAL_POOR",
    "OXI_COMM_LOST",
    "OXI_DATA_STALE",
    "NIBP_FAILED",
    "NIBP_OVERDUE",
    "NIBP_COMM_LOST",
    "HOST_LINK_LOST",
    "DEVICE_RESTARTED",
    "SETTINGS_DEFAULTED",
    "CHECK_OVERDUE",
    "NIBP_CUFF_FAULT",
    "STORAGE_FAULT",
    "CORE_FAULT",
    "TEST_HIGH",
    "TEST_MEDIUM",
    "TEST_LOW",
}
# Each command's arguments (docs/protocol.md, host -> device commands).
# State-changing ones also carry by, ctr and mac (docs/protocol.md "Authentication"): this fake
# has no device id in its hello, so DeviceLink sends them unsigned and the fake takes them.
_AUTH = ("by", "ctr", "mac")
ARGUMENTS = {
    "set": ("name", "value", "confirm", *_AUTH),
    "nibp": ("action", *_AUTH),
    "log": ("from", "log", "count"),
    "audio_off": ("on", "lease_s", *_AUTH),
    "replay": ("from",),
    "selftest": ("priority", *_AUTH),
    "get_session": (),
    "session": (
        "op", "by", "patient", "course_day", "course_total", "override", "reason", "action",
        "rate", "units", "on", "flow", "score", "scale", "aldrete", "padss", "escort",
        "relationship", "advice", *_AUTH,
    ),
}
# The session phase table (SESSION_PROTOCOL.md): op -> (allowed in, goes to; None: same).
SESSION_OPS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "open": (("idle", "closed"), "screening"),
    "screened": (("screening",), "baseline"),
    "cancel": (("screening", "baseline"), "closed"),
    "baseline": (("baseline",), None),
    "start": (("baseline",), "infusion"),
    "dose": (("infusion",), None),
    "o2": (("screening", "baseline", "infusion", "recovery", "discharge_ready"), None),
    "check": (("infusion", "recovery", "discharge_ready"), None),
    "stop": (("infusion",), "recovery"),
    "discharge": (("recovery",), "discharge_ready"),
    "close": (("discharge_ready",), "closed"),
}
DOSE_REASONS = ("start", "pain", "side_effect", "other")
# Limits that must stay in order (the fake's stand-in for docs/settings.md invariants).
INVARIANTS = (("spo2_desat", "spo2_low"), ("pr_low", "pr_high"), ("sys_low", "sys_high"))


class LogRing:
    """One flash log: records numbered for ever, the oldest dropped beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: deque[dict[str, Any]] = deque()
        self.next = 0
        self.corrupt: set[int] = set()  # records that fail their checksum: skipped on read

    @property
    def first(self) -> int:
        return self.records[0]["n"] if self.records else self.next

    def append(self, boot: int, u: int, fields: dict[str, Any]) -> int:
        rec = {"n": self.next, "b": boot, "u": u, **fields}
        self.records.append(rec)
        self.next += 1
        while len(self.records) > self.capacity:
            self.records.popleft()
        return int(rec["n"])

    def read(self, first: int, count: int) -> list[dict[str, Any]]:
        recs = [r for r in self.records if r["n"] >= first and r["n"] not in self.corrupt]
        return [dict(r) for r in recs[:count]]


class Flash:
    """What survives a restart."""

    def __init__(self, alarm_capacity: int, event_capacity: int) -> None:
        self.boot = 0
        self.settings: dict[str, Any] = {}
        self.alarm = LogRing(alarm_capacity)
        self.event = LogRing(event_capacity)
        self.session_counter = 0
        self.session: dict[str, Any] | None = None  # the open session (survives a restart)


class FakeDevice:
    def __init__(
        self,
        tmp: Path,
        *,
        store: bool = True,
        nibp: bool = True,
        report_s: float = 1.0,
        alarm_log: int = 1024,
        event_log: int = 1024,
        org: dict[str, Any] | None = None,
        nibp_s: float = 1.5,
    ) -> None:
        self.path = str(tmp / "bedside-port")  # what the host opens (a symlink to the pty)
        self.store = store
        self.has_nibp = nibp
        self.report_s = report_s
        self.nibp_s = nibp_s
        self.flash = Flash(alarm_log, event_log) if store else None
        self._org = dict(org or {})
        self.lock = threading.RLock()
        self.commands: list[dict[str, Any]] = []  # every valid command line received
        self.sent: list[dict[str, Any]] = []  # every message made (written or dropped)
        self.drop_seqs: set[int] = set()  # lines with these seqs are lost in transit
        self.drop_replay: dict[int, int] = {}  # seq -> how many replayed copies are lost too
        self.mute = False  # every line is lost in transit (the device keeps running)
        self.spo2: int | None = 97
        self.pr: int | None = 72
        # session timing (settings on a real device; short here so tests run in seconds)
        self.baseline_gap_s = 0.2
        self.recovery_min_s = 0.0
        self.check_every_s = 900.0
        self.discharge_band = 20  # % of baseline
        self.discharge_spo2 = 92
        self.aldrete_min = 9
        self.padss_min = 9
        self._volatile_session: dict[str, Any] | None = None
        self._session_counter = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._rx = bytearray()
        self._overlong = False
        self._outbox: deque[bytes] = deque()
        self._partial = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._volatile_settings: dict[str, Any] = {}
        self.boots = 0
        self._boot(reset_cause="power_on")
        self.plug()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeDevice:
        self._thread = threading.Thread(target=self._run, name="fake-device", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.lock:
            self.unplug()

    def __enter__(self) -> FakeDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def plug(self) -> None:
        """Connect the cable: a new pty, the symlink pointing at it."""
        with self.lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            tmp = self.path + ".new"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.path)

    def unplug(self) -> None:
        """Pull the cable: the port vanishes (the device itself keeps running)."""
        with self.lock:
            if os.path.lexists(self.path):
                os.unlink(self.path)
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
            self._rx.clear()
            self._outbox.clear()
            self._partial = b""

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def restart(self, reset_cause: str = "soft", unplug_s: float | None = None) -> None:
        """Restart the device; with unplug_s the USB port vanishes for that long (a Pico)."""
        with self.lock:
            if unplug_s is not None:
                self.unplug()
            self._outbox.clear()
            self._partial = b""
            self._boot(reset_cause)
        if unplug_s is not None:
            timer = threading.Timer(unplug_s, self.plug)
            timer.daemon = True
            timer.start()

    def _boot(self, reset_cause: str) -> None:
        f = self.flash
        if f is not None:
            f.boot += 1
        self.boots += 1
        self.boot = f.boot if f is not None else 0
        self.seq = 0
        self._t0 = time.monotonic()
        self._history: deque[tuple[int, bytes]] = deque(maxlen=HISTORY)
        self._important: deque[tuple[int, bytes]] = deque(maxlen=HISTORY)
        self.settings = Settings()
        stored = f.settings if f is not None else self._volatile_settings
        for k, v in {**self._org, **stored}.items():
            self.settings.values[k] = v
        self.active: dict[str, dict[str, Any]] = {}
        self.audio_paused_until = 0.0
        self.audio_off_until: float | None = None
        self.nibp_state = "idle"
        self.nibp_started = 0.0
        self.last_nibp: dict[str, Any] | None = None
        self.host_seen = False
        self.host_rx = 0.0
        self._log_job: dict[str, Any] | None = None
        self._selftest_end: dict[str, float] = {}
        self._next_report = time.monotonic() + self.report_s
        self.tx_dropped = 0
        self.rx_errors = 0
        if f is not None:
            f.event.append(self.boot, 0, {"event": "boot", "reset_cause": reset_cause})
        self._hello(reset_cause, None)
        self._reset_cause = reset_cause
        # the session: restored from flash (times rebased on the new uptime), else idle
        self.sess: dict[str, Any] | None = None
        kept = f.session if f is not None else None
        if kept is not None:
            now = time.monotonic()
            self.sess = dict(kept, restored=True)
            for k in ("phase_t", "infusion_t", "recovery_t", "check_t"):
                if self.sess.get(k) is not None:
                    self.sess[k] = now - self.sess[k + "_age"]
            self._send("session", {"event": "restored", "by": None, "session": self._state()})

    # --- time ---------------------------------------------------------------------------
    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    # --- device -> host -----------------------------------------------------------------
    def _send(self, mtype: str, fields: dict[str, Any]) -> int:
        self.seq += 1
        msg = {"v": 2, "seq": self.seq, "boot": self.boot, "type": mtype, "t_ms": self.uptime_ms()}
        msg.update(fields)
        line = (json.dumps(msg) + "\n").encode()
        self._history.append((self.seq, line))
        if mtype in IMPORTANT:
            self._important.append((self.seq, line))
        self.sent.append(msg)
        if self.mute or self.seq in self.drop_seqs or self._master is None:
            return self.seq
        self._queue(line)
        return self.seq

    def _queue(self, line: bytes) -> None:
        if self._master is None:
            return
        if len(self._outbox) >= OUTBOX:
            self._outbox.popleft()
            self.tx_dropped += 1
        self._outbox.append(line)

    def _flush(self) -> None:
        while self._master is not None and (self._partial or self._outbox):
            if not self._partial:
                self._partial = self._outbox.popleft()
            try:
                n = os.write(self._master, self._partial)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                raise
            self._partial = self._partial[n:]

    def write_raw(self, data: bytes) -> None:
        """Bytes on the wire outside the protocol (noise, a partial line)."""
        with self.lock:
            self._queue(data)

    def _log_pos(self) -> dict[str, Any] | None:
        f = self.flash
        if f is None:
            return None
        return {
            "alarm": {"first": f.alarm.first, "next": f.alarm.next},
            "event": {"first": f.event.first, "next": f.event.next},
        }

    def _hello(self, reset_cause: str, rid: Any) -> None:
        self._send(
            "hello",
            {
                "fw": "0.1.0-fake",
                "protocol": 2,
                "reset_cause": reset_cause,
                "oxi_format": self.settings["oxi_format"],
                "nibp": self.has_nibp,
                "settings_defaulted": False,
                "settings_problems": [],
                "log": self._log_pos(),
                "history": HISTORY,
                "id": rid,
            },
        )

    def _oxi(self) -> None:
        self._send(
            "oxi",
            {
                "spo2": self.spo2,
                "pr": self.pr,
                "spo2_age_s": 0 if self.spo2 is not None else None,
                "flags": [],
                "quality": "good",
                "pi": 2.5,
            },
        )

    def _alarm_rows(self, now: float) -> list[dict[str, Any]]:
        rows = sorted(self.active.values(), key=lambda a: (-PRIORITY[a["priority"]], a["onset"]))
        return [
            {
                "condition": a["condition"],
                "priority": a["priority"],
                "state": a["state"],
                "kind": a["kind"],
                "value": a["value"],
                "limit": a["limit"],
                "age_s": int(now - a["onset"]),
            }
            for a in rows
        ]

    def _heartbeat(self) -> None:
        now = time.monotonic()
        rows = self._alarm_rows(now)
        prio = rows[0]["priority"] if rows else "none"
        sounding = [r for r in rows if r["state"] == "active"]
        paused = max(0, math.ceil(self.audio_paused_until - now))
        off = self.audio_off_until is not None
        audible = "none" if off or not sounding else sounding[0]["priority"]
        hb: dict[str, Any] = {
            "priority": prio,
            "audible": audible,
            "top": rows[0]["condition"] if rows else None,
            "alarms": rows,
            "active": [r["condition"] for r in rows],
            "audio_paused_s": paused,
            "audio_off": off,
            "audio_off_left_s": (
                max(0, math.ceil(self.audio_off_until - now))
                if self.audio_off_until is not None
                else None
            ),
            "phase": self.sess["phase"] if self.sess is not None else "idle",
            "rx_errors": self.rx_errors,
            "tx_dropped": self.tx_dropped,
            "faults": 0,
            "storage_errors": 0,
            "display_errors": 0,
            "uptime_s": self.uptime_ms() // 1000,
        }
        if self.has_nibp:
            hb["nibp"] = self._nibp_fields(now)
            hb["nibp_state"] = self.nibp_state
            hb["cuff"] = self._cuff(now)
        self._send("heartbeat", hb)

    def _nibp_fields(self, now: float) -> dict[str, Any]:
        n = self.last_nibp
        if n is None:
            return {"sys": None, "dia": None, "map": None, "pr": None, "age_s": None}
        return {**n["values"], "age_s": int(now - n["t"])}

    def _cuff(self, now: float) -> int | None:
        if self.nibp_state != "measuring":
            return None
        return int(40 + 120 * min(1.0, (now - self.nibp_started) / max(self.nibp_s, 0.1)))

    # --- alarms (test hooks) ------------------------------------------------------------
    def alarm(
        self,
        condition: str,
        event: str = "raise",
        state: str = "active",
        priority: str = "medium",
        value: Any = None,
        limit: Any = None,
    ) -> int:
        """One alarm event, reported and written to the flash alarm log; returns its seq."""
        with self.lock:
            kind = "technical" if condition in TECHNICAL else "physiological"
            fields = {
                "condition": condition,
                "priority": priority,
                "state": state,
                "event": event,
                "kind": kind,
                "value": value,
                "limit": limit,
            }
            if state == "inactive":
                self.active.pop(condition, None)
            else:
                prev = self.active.get(condition)
                onset = prev["onset"] if prev else time.monotonic()
                self.active[condition] = {**fields, "onset": onset}
            seq = self._send("alarm", fields)
            if self.flash is not None:
                u = self.sent[-1]["t_ms"]
                self.flash.alarm.append(
                    self.boot,
                    u,
                    {k: fields[k] for k in ("condition", "priority", "state", "event")}
                    | {"value": value, "limit": limit},
                )
            return seq

    def raise_alarm(self, condition: str, priority: str = "medium", **kw: Any) -> int:
        return self.alarm(condition, "raise", "active", priority, **kw)

    def end_alarm(self, condition: str) -> int:
        with self.lock:
            a = self.active.get(condition, {"priority": "medium"})
            return self.alarm(condition, "end", "inactive", a["priority"])

    def ack(self) -> None:
        with self.lock:
            pause = self.settings["audio_pause_s"]
            self.audio_paused_until = time.monotonic() + pause
            for cond, a in list(self.active.items()):
                if a["state"] == "active":
                    self.alarm(cond, "ack", "audio_paused", a["priority"], a["value"], a["limit"])
                    self.sent[-1]["pause_s"] = pause

    def nibp_result(self, sys: int, dia: int, map_: int, pr: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.last_nibp = {"values": {"sys": sys, "dia": dia, "map": map_, "pr": pr}, "t": now}
            self.nibp_state = "idle"
            self._send("nibp", self._nibp_fields(now))
            ss = self.sess
            if ss is not None and ss["phase"] == "baseline" and ss["baseline"] is None:
                ss["readings"].append({"sys": sys, "dia": dia, "map": map_, "pr": pr, "t": now})
                self._session_event("baseline_reading", None)

    # --- the infusion session (SESSION_PROTOCOL.md) --------------------------------------
    def _state(self) -> dict[str, Any]:
        ss = self.sess
        now = time.monotonic()
        if ss is None:
            return {
                "id": self._counter(), "patient": None, "course_day": None,
                "course_total": None, "phase": "idle", "phase_s": 0, "infusion_s": None,
                "recovery_s": None, "baseline": None, "baseline_readings": 0,
                "baseline_ready": False, "dose": None, "o2": {"on": False, "flow": None},
                "last_check": None, "check_due_s": None, "nibp_interval_s": 900,
                "restored": False,
            }  # fmt: skip
        checking = ss["phase"] in ("infusion", "recovery")
        last = ss["last_check"]
        ref = ss["check_t"] if ss["check_t"] is not None else ss["phase_t"]
        return {
            "id": ss["id"],
            "patient": ss["patient"],
            "course_day": ss["course_day"],
            "course_total": ss["course_total"],
            "phase": ss["phase"],
            "phase_s": int(now - ss["phase_t"]),
            "infusion_s": None if ss["infusion_t"] is None else int(now - ss["infusion_t"]),
            "recovery_s": None if ss["recovery_t"] is None else int(now - ss["recovery_t"]),
            "baseline": ss["baseline"],
            "baseline_readings": len(ss["readings"]),
            "baseline_ready": self._baseline_ready(),
            "dose": ss["dose"],
            "o2": dict(ss["o2"]),
            "last_check": None
            if last is None
            else {"score": last, "ago_s": int(now - ss["check_t"])},
            "check_due_s": int(ref + self.check_every_s - now) if checking else None,
            "nibp_interval_s": 300 if ss["phase"] == "infusion" else 900,
            "restored": bool(ss.get("restored")),
        }

    def _counter(self) -> int:
        return self.flash.session_counter if self.flash is not None else self._session_counter

    def _baseline_ready(self) -> bool:
        ss = self.sess
        if ss is None:
            return False
        r = ss["readings"]
        return len(r) >= 2 and r[-1]["t"] - r[0]["t"] >= self.baseline_gap_s and (
            self.spo2 is not None and self.pr is not None
        )

    def _persist(self) -> None:
        ss = self.sess
        if ss is not None:
            now = time.monotonic()
            for k in ("phase_t", "infusion_t", "recovery_t", "check_t"):
                ss[k + "_age"] = None if ss.get(k) is None else now - ss[k]
        if self.flash is not None:
            self.flash.session = None if ss is None else dict(ss)
        else:
            self._volatile_session = None if ss is None else dict(ss)

    def _session_event(self, event: str, by: Any) -> None:
        self._persist()
        self._send("session", {"event": event, "by": by, "session": self._state()})
        if self.flash is not None:
            self.flash.event.append(
                self.boot, self.uptime_ms(), {"event": "session", "op": event, "by": by}
            )

    def criteria(self, aldrete: int, padss: int) -> list[dict[str, Any]]:
        ss = self.sess
        assert ss is not None
        now = time.monotonic()
        base = ss["baseline"] or {}
        band = self.discharge_band / 100.0
        rec_s = 0 if ss["recovery_t"] is None else now - ss["recovery_t"]
        n = self.last_nibp["values"] if self.last_nibp is not None else {}

        def within(v: Any, b: Any) -> bool:
            return v is not None and b is not None and abs(v - b) <= band * b

        last = ss["last_check"]
        return [
            {"name": "recovery_time", "ok": rec_s >= self.recovery_min_s, "value": int(rec_s),
             "need": int(self.recovery_min_s)},
            {"name": "bp", "ok": within(n.get("sys"), base.get("sys")), "value": n.get("sys"),
             "need": f"{base.get('sys')} +/- {self.discharge_band} %"},
            {"name": "pr", "ok": within(self.pr, base.get("pr")), "value": self.pr,
             "need": f"{base.get('pr')} +/- {self.discharge_band} %"},
            {"name": "spo2", "ok": self.spo2 is not None and self.spo2 > self.discharge_spo2
             and not ss["o2"]["on"], "value": self.spo2,
             "need": f"> {self.discharge_spo2} on room air"},
            {"name": "no_alarm", "ok": not self.active, "value": sorted(self.active),
             "need": "none"},
            {"name": "alert", "ok": last == 5, "value": last, "need": 5},
            {"name": "aldrete", "ok": aldrete >= self.aldrete_min, "value": aldrete,
             "need": self.aldrete_min},
            {"name": "padss", "ok": padss >= self.padss_min, "value": padss,
             "need": self.padss_min},
        ]  # fmt: skip

    def _cmd_get_session(self, cmd: dict[str, Any], rid: Any) -> None:
        self._reply("get_session", rid, session=self._state())

    def _cmd_session(self, cmd: dict[str, Any], rid: Any) -> None:
        op, by = cmd["op"], cmd["by"]

        def text(name: str, limit: int) -> str:
            v = cmd[name]
            if not isinstance(v, str) or not v or len(v) > limit:
                raise ValueError(f"{name} must be text of 1..{limit} characters")
            return v

        def num(name: str, lo: int, hi: int) -> int:
            v = cmd[name]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be {lo}..{hi}")
            return v

        if op not in SESSION_OPS:
            raise ValueError(f"unknown session op {op!r}")
        text("by", 32)
        phase = self.sess["phase"] if self.sess is not None else "idle"
        allowed, dest = SESSION_OPS[op]
        if phase not in allowed:
            self._reply("session", rid, f"{op} is not allowed in phase {phase}", op=op)
            return
        now = time.monotonic()
        ss = self.sess
        if op == "open":
            patient = text("patient", 32)
            day, total = num("course_day", 1, 99), num("course_total", 1, 99)
            if total < day:
                raise ValueError("course_total must be >= course_day")
            if self.flash is not None:
                self.flash.session_counter += 1
            else:
                self._session_counter += 1
            self.sess = ss = {
                "id": self._counter(), "patient": patient, "course_day": day,
                "course_total": total, "phase": "screening", "phase_t": now,
                "infusion_t": None, "recovery_t": None, "baseline": None, "readings": [],
                "dose": None, "o2": {"on": False, "flow": None}, "last_check": None,
                "check_t": None,
            }  # fmt: skip
        assert ss is not None
        if op == "screened" and not isinstance(cmd["override"], bool):
            raise ValueError("override must be true or false")
        if op == "cancel":
            text("reason", 32)
        if op == "baseline":
            action = cmd["action"]
            if action == "repeat":
                if self.nibp_state == "measuring":
                    self._reply("session", rid, "an NIBP reading is already running", op=op)
                    return
                self.nibp_state = "measuring"
                self.nibp_started = now
            elif action == "accept":
                if not self._baseline_ready():
                    n = len(ss["readings"])
                    self._reply(
                        "session", rid,
                        f"baseline needs 2 NIBP readings {self.baseline_gap_s:g} s apart"
                        f" (have {n})", op=op,
                    )  # fmt: skip
                    return
                r = ss["readings"]
                ss["baseline"] = {
                    k: round(sum(x[k] for x in r) / len(r)) for k in ("sys", "dia", "map", "pr")
                } | {"spo2": self.spo2}
            else:
                raise ValueError("action must be repeat or accept")
        if op == "start" and ss["baseline"] is None:
            self._reply("session", rid, "the baseline has not been accepted", op=op)
            return
        if op == "start":
            ss["infusion_t"] = now
        if op == "dose":
            rate = num("rate", 0, 10**9)
            units = text("units", 16)
            if cmd["reason"] not in DOSE_REASONS:
                raise ValueError("reason must be start, pain, side_effect or other")
            ss["dose"] = {"rate": rate, "units": units}
        if op == "o2":
            on = cmd["on"]
            if not isinstance(on, bool):
                raise ValueError("on must be true or false")
            flow = num("flow", 1, 15) if on else None
            ss["o2"] = {"on": on, "flow": flow}
        if op == "check":
            score = cmd.get("score")
            if score is not None:
                num("score", 0, 5)
            ss["last_check"] = score
            ss["check_t"] = now
        if op == "stop":
            ss["recovery_t"] = now
        if op == "discharge":
            crit = self.criteria(num("aldrete", 0, 10), num("padss", 0, 10))
            failing = [c["name"] for c in crit if not c["ok"]]
            if failing:
                self._reply(
                    "session", rid, "discharge criteria not met: " + ", ".join(failing),
                    op=op, criteria=crit,
                )  # fmt: skip
                return
        if op == "close":
            text("escort", 32)
            text("relationship", 32)
            if cmd["advice"] is not True:
                self._reply("session", rid, "the no-driving advice must be given", op=op)
                return
        if dest is not None and dest != ss["phase"]:
            ss["phase"] = dest
            ss["phase_t"] = now
        ss["restored"] = False
        state = self._state()
        self._reply("session", rid, op=op, session=state)  # (discharge: no criteria when ok)
        self._session_event(op, by)

    # --- host -> device -----------------------------------------------------------------
    def _read_host(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                return
            raise
        if data:
            self.host_seen = True
            self.host_rx = time.monotonic()
            self._rx += data

    def _lines(self) -> list[bytes | None]:
        """Up to COMMANDS_PER_TICK complete lines (None: an overlong line); the rest wait."""
        out: list[bytes | None] = []
        while len(out) < COMMANDS_PER_TICK:
            i = self._rx.find(b"\n")
            if i < 0:
                if len(self._rx) > LINE_MAX:
                    self._overlong = True
                    self._rx.clear()
                break
            line = bytes(self._rx[:i]).rstrip(b"\r")
            del self._rx[: i + 1]
            if self._overlong or len(line) > LINE_MAX:
                self._overlong = False
                out.append(None)
            elif line.strip():
                out.append(line)
        return out

    def _reply(self, cmd: Any, rid: Any, error: str | None = None, **fields: Any) -> None:
        out: dict[str, Any] = {"cmd": cmd, "id": rid, "ok": error is None}
        if error is not None:
            out["error"] = error
        out.update(fields)
        self._send("reply", out)

    def _command(self, line: bytes | None) -> None:
        if line is None:
            self.rx_errors += 1
            self._reply(None, None, f"line longer than {LINE_MAX} bytes")
            return
        try:
            cmd = json.loads(line)
        except (ValueError, UnicodeError):
            self.rx_errors += 1
            self._reply(None, None, "invalid JSON")
            return
        if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
            self.rx_errors += 1
            self._reply(None, None, 'a command is a JSON object with a string "cmd"')
            return
        name = cmd["cmd"]
        rid = cmd.get("id")
        if not (
            rid is None
            or (isinstance(rid, str) and len(rid) <= 32)
            or (isinstance(rid, int) and not isinstance(rid, bool))
        ):
            self._reply(
                name, None, "id must be a string of at most 32 characters, a whole number or null"
            )
            return
        self.commands.append(cmd)
        handler: Callable[[dict[str, Any], Any], None] | None = getattr(self, "_cmd_" + name, None)
        if handler is None:
            self._reply(name, rid, f"unknown command {name}")
            return
        extra = sorted(set(cmd) - {"cmd", "id"} - set(ARGUMENTS.get(name, ())))
        if extra:  # the protocol's argument column is the whole list
            self._reply(name, rid, f"unknown argument {extra[0]}")
            return
        try:
            handler(cmd, rid)
        except (KeyError, TypeError, ValueError) as e:
            self._reply(name, rid, f"bad arguments: {e}")

    def _cmd_ping(self, cmd: dict[str, Any], rid: Any) -> None:
        self._reply("ping", rid)

    def _cmd_hello(self, cmd: dict[str, Any], rid: Any) -> None:
        self._reply("hello", rid)
        self._hello(self._reset_cause, rid)

    def _cmd_status(self, cmd: dict[str, Any], rid: Any) -> None:
        self._reply("status", rid)
        self._oxi()
        self._heartbeat()

    def _cmd_get_settings(self, cmd: dict[str, Any], rid: Any) -> None:
        self._reply("get_settings", rid, settings=dict(self.settings.values))

    def _cmd_set(self, cmd: dict[str, Any], rid: Any) -> None:
        name, value, by = cmd["name"], cmd["value"], cmd.get("by")
        if by is not None and not (isinstance(by, str) and len(by) <= 32):
            raise ValueError("by must be a name of at most 32 characters")
        err = check(name, value)
        if err is None and SPEC[name][4] > OPERATOR:
            err = f"{name} may be changed only by the responsible organisation"
        if err is None:
            trial = {**self.settings.values, name: value}
            for lo, hi in INVARIANTS:
                if trial[lo] >= trial[hi]:
                    err = f"{lo} must stay below {hi} ({trial[lo]} >= {trial[hi]})"
        if err:
            self._reply("set", rid, err)
            return
        old = self.settings.values[name]
        if old == value:
            self._reply("set", rid, name=name, value=value, old=old, changed=False)
            return
        self.settings.values[name] = value
        stored = self.flash.settings if self.flash is not None else self._volatile_settings
        stored[name] = value
        self._reply("set", rid, name=name, value=value, old=old, changed=True)
        self._send("setting", {"name": name, "value": value, "old": old, "by": by})
        if self.flash is not None:
            self.flash.event.append(
                self.boot,
                self.uptime_ms(),
                {"event": "setting", "name": name, "value": value, "old": old, "by": by},
            )

    def set_org(self, name: str, value: Any) -> None:
        """The responsible organisation's configuration (like `bedside sil --set`)."""
        with self.lock:
            assert check(name, value) is None
            self.settings.values[name] = value
            self._org[name] = value

    def _cmd_nibp(self, cmd: dict[str, Any], rid: Any) -> None:
        action = cmd["action"]
        if action not in ("start", "stop"):
            raise ValueError("action must be start or stop")
        if not self.has_nibp:
            self._reply("nibp", rid, "no NIBP module on this device")
        elif action == "start" and self.nibp_state == "measuring":
            self._reply("nibp", rid, "a measurement is already running")
        elif action == "stop" and self.nibp_state != "measuring":
            self._reply("nibp", rid, "no measurement is running")
        elif action == "start":
            self.nibp_state = "measuring"
            self.nibp_started = time.monotonic()
            self._reply("nibp", rid, action="start")
            self._send("nibp_state", {"state": "starting", "cuff": None})
        else:
            cuff = self._cuff(time.monotonic())
            self.nibp_state = "idle"
            self._reply("nibp", rid, action="stop")
            self._send("nibp_state", {"state": "aborting", "cuff": cuff})

    def _cmd_log(self, cmd: dict[str, Any], rid: Any) -> None:
        first = cmd.get("from", 0)
        which = cmd.get("log", "alarm")
        count = cmd.get("count", LOG_CAP)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError("from must be a record number")
        if which not in ("alarm", "event"):
            raise ValueError("log must be alarm or event")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= LOG_CAP:
            raise ValueError(f"count must be 1..{LOG_CAP}")
        if self.flash is None:
            self._reply("log", rid, "no flash log (no store)")
            return
        if self._log_job is not None:
            self._reply("log", rid, "busy")
            return
        ring = self.flash.alarm if which == "alarm" else self.flash.event
        recs = ring.read(first, count)
        nxt = recs[-1]["n"] + 1 if recs else max(first, ring.next)
        self._log_job = {
            "id": rid,
            "log": which,
            "ring": ring,
            "todo": recs,
            "count": len(recs),
            "next": nxt,
        }

    def _log_tick(self) -> None:
        """The records of the running log request, a few per tick, then its reply."""
        job = self._log_job
        if job is None:
            return
        for _ in range(LOG_PER_TICK):
            if not job["todo"]:
                break
            self._send("log", {"log": job["log"], "rec": job["todo"].pop(0)})
        if job["todo"]:
            return
        self._log_job = None
        ring: LogRing = job["ring"]
        self._reply(
            "log",
            job["id"],
            log=job["log"],
            count=job["count"],
            next=job["next"],
            first=ring.first,
            end=ring.next,
            boot=self.boot,
        )

    def _cmd_audio_off(self, cmd: dict[str, Any], rid: Any) -> None:
        on = cmd["on"]
        lease = cmd.get("lease_s", 60)
        if not isinstance(on, bool):
            raise ValueError("on must be true or false")
        if isinstance(lease, bool) or not isinstance(lease, int) or not 10 <= lease <= 300:
            raise ValueError("lease_s must be within 10..300 s")
        if on and self.settings["audio_off_allowed"] != 1:
            self._reply(
                "audio_off",
                rid,
                "AUDIO OFF is not allowed (organisation setting audio_off_allowed is 0)",
            )
            return
        was = self.audio_off_until is not None
        self._reply("audio_off", rid, audio_off=on, lease_s=lease)
        if on:
            self.audio_off_until = time.monotonic() + lease
            self._send("audio_off", {"on": True, "reason": "command", "lease_s": lease})
            if not was and self.flash is not None:
                self.flash.event.append(self.boot, self.uptime_ms(), {"event": "audio_off"})
        elif was:
            self._end_audio_off("command")

    def _end_audio_off(self, reason: str) -> None:
        self.audio_off_until = None
        self._send("audio_off", {"on": False, "reason": reason, "lease_s": None})
        if self.flash is not None:
            self.flash.event.append(self.boot, self.uptime_ms(), {"event": "audio_on"})

    def _cmd_replay(self, cmd: dict[str, Any], rid: Any) -> None:
        first = cmd["from"]
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError("from must be a sequence number")
        held = sorted(dict(list(self._history) + list(self._important)).items())
        todo = [(s, line) for s, line in held if s >= first]
        batch, rest = todo[:REPLAY_CAP], todo[REPLAY_CAP:]
        for s, line in batch:
            if self.drop_replay.get(s, 0) > 0:
                self.drop_replay[s] -= 1
            elif not self.mute:
                self._queue(line)
        oldest = held[0][0] if held else self.seq + 1
        self._reply(
            "replay", rid, count=len(batch), oldest=oldest, next=rest[0][0] if rest else None
        )

    def _cmd_selftest(self, cmd: dict[str, Any], rid: Any) -> None:
        prio = cmd["priority"]
        if prio not in ("high", "medium", "low"):
            raise ValueError("priority must be high, medium or low")
        self._reply("selftest", rid)
        cond = "TEST_" + prio.upper()
        self.alarm(cond, "raise", "active", prio)
        self._selftest_end[cond] = time.monotonic() + 5.0

    # --- the loop -----------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        self._read_host()
        for line in self._lines():
            self._command(line)
        self._log_tick()
        if self.nibp_state == "measuring" and now - self.nibp_started >= self.nibp_s:
            self.nibp_result(128, 82, 97, 71)
        if self.audio_off_until is not None and now >= self.audio_off_until:
            self._end_audio_off("lease_expired")
        for cond, end in list(self._selftest_end.items()):
            if now >= end:
                del self._selftest_end[cond]
                self.end_alarm(cond)
        timeout = self.settings["host_timeout_s"]
        if self.host_seen and now - self.host_rx >= timeout:
            if "HOST_LINK_LOST" not in self.active:
                self.alarm("HOST_LINK_LOST", "raise", "active", "low")
                if self.audio_off_until is not None:
                    self._end_audio_off("host_link_lost")
        elif self.host_seen and "HOST_LINK_LOST" in self.active:
            self.alarm("HOST_LINK_LOST", "end", "inactive", "low")
        if now >= self._next_report:
            self._next_report = now + self.report_s
            self._oxi()
            self._heartbeat()
        self._flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self._tick()
            time.sleep(TICK_S)

    # --- for tests ----------------------------------------------------------------------
    def sent_of(self, mtype: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.sent if m["type"] == mtype]

    def commands_of(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.commands if c["cmd"] == name]
