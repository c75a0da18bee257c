"""The central station's model: what every chair shows, fed by device messages.

Independent of the transport: the one-process station feeds it from its DeviceLinks, an MQTT
subscriber can feed it from a broker. Every call names the chair (any string id) and gives the
device message as the device sent it (docs/protocol.md) with the host receive time:

    model.add_chair("bay-1", label="Bay 1", device="/dev/ttyACM0")
    model.on_link_state("bay-1", "live")
    model.on_message("bay-1", {"type": "oxi", "spo2": 97, ...}, rx_wall=time.time())
    model.tick()                     # stale detection; call about once a second
    dirty = model.take_dirty()       # chairs changed since the last call
    frame = model.frame(dirty)       # tiles of those chairs (+ alarm list, audio) as JSON

Times in tiles are absolute (UTC epoch seconds of the station clock): the page computes the
ages, so a tile only changes when its data change. The model is not thread-safe: call it from
one thread (the station's event loop). Not a certified medical device: the bedside device is
the primary alarm; the station shows, sounds its own tones and records, and never
acknowledges or silences a bedside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bedside_host import ensure_firmware_on_path

ensure_firmware_on_path()

from bedside.alarms.conditions import CONDITIONS, KIND_NAMES  # noqa: E402

STALE_AFTER_S = 5.0  # no message from a chair for this long: stale (devices report every 1 s)
AUDIO_PAUSE_S = 120.0  # the station's own audio pause (Tucana: 120 s)
USER_MAX = 32  # characters of a user name
REASON_MAX = 120
PRIORITIES = ("none", "low", "medium", "high")
RANK = {p: i for i, p in enumerate(PRIORITIES)}
SIGNAL_STATES = ("active", "audio_paused", "latched", "latched_acknowledged")
SOUNDING_STATES = ("active", "latched")  # what the bedside sounds for (not paused, not acked)
LIVE_LINK = "live"
NO_DATA = "NO_DATA"  # the station's own technical condition: a chair that stopped reporting
NO_DATA_PRIORITY = "medium"

# condition id -> (kind, label), from the firmware's table (one source of truth)
CONDITION_INFO: dict[str, tuple[str, str]] = {c[0]: (KIND_NAMES[c[1]], c[6]) for c in CONDITIONS}
CONDITION_INFO[NO_DATA] = ("technical", "NO DATA FROM CHAIR")
# limit conditions: id prefix -> quantity shown in "SpO2 86<90"
_QUANTITY = (
    ("SPO2_", "SpO2"),
    ("PR_", "PR"),
    ("NIBP_SYS_", "SYS"),
    ("NIBP_DIA_", "DIA"),
    ("NIBP_MAP_", "MAP"),
    ("BP_RISE", "SYS"),
)


def value_text(condition: str, value: Any, limit: Any) -> str:
    """'SpO2 86<90', 'PR 149>130', 'SYS 182' (no limit); '' when there is no value."""
    v = _num(value)
    if v is None:
        return ""
    lim = _num(limit)
    quantity = next((q for pre, q in _QUANTITY if condition.startswith(pre)), None)
    if quantity is None:
        return _fmt(v) if lim is None else f"{_fmt(v)} (limit {_fmt(lim)})"
    if lim is None:
        return f"{quantity} {_fmt(v)}"
    op = "<" if condition.endswith(("_LOW", "_DESAT")) else ">"
    return f"{quantity} {_fmt(v)}{op}{_fmt(lim)}"


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _str(x: Any, limit: int = 64) -> str | None:
    return x[:limit] if isinstance(x, str) else None


def tile_colour(alarms: Iterable[Mapping[str, Any]], offline: bool) -> str:
    """The tile's look: 'offline', 'high' (red, flashing fast), 'medium' (yellow, flashing
    slowly), 'low' (yellow, steady), 'tech-medium' (cyan, flashing slowly), 'tech-low' (cyan,
    steady) or 'normal'. HIGH is red whatever its kind (IEC 60601-1-8 Table 2); at medium and
    low a physiological alarm wins over a technical one of the same priority."""
    if offline:
        return "offline"
    best = (0, 0)  # (priority rank, 1 if physiological)
    for a in alarms:
        if a.get("state") not in SIGNAL_STATES:
            continue
        rank = RANK.get(str(a.get("priority")), 0)
        best = max(best, (rank, 0 if a.get("kind") == "technical" else 1))
    rank, physio = best
    if rank == 3:
        return "high"
    if rank == 0:
        return "normal"
    name = PRIORITIES[rank]
    return name if physio else f"tech-{name}"


def valid_user(name: Any) -> str:
    """A named user: 1..32 printable characters, not blank (ValueError otherwise)."""
    if not isinstance(name, str):
        raise ValueError("a user name is required")
    n = name.strip()
    if not n:
        raise ValueError("a user name is required")
    if len(n) > USER_MAX:
        raise ValueError(f"the user name is longer than {USER_MAX} characters")
    if not n.isprintable():
        raise ValueError("the user name has control characters")
    return n


@dataclass
class Alarm:
    condition: str
    priority: str
    state: str
    kind: str
    value: float | None
    limit: float | None
    onset: float  # station clock, UTC epoch seconds


@dataclass
class Chair:
    id: str
    label: str
    device: str | None  # the record store's device key (the port), for trends and history
    link: str = "connecting"
    link_detail: str = ""
    last_rx: float | None = None
    boot: int | None = None
    seq: int | None = None
    oxi: dict[str, Any] = field(default_factory=dict)
    nibp: dict[str, Any] | None = None
    phase: str | None = None
    session: dict[str, Any] | None = None
    session_rx: float | None = None
    bedside_audio: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, Alarm] = field(default_factory=dict)
    stale: bool = True  # nothing heard yet: never shown as normal
    fw: str | None = None


@dataclass
class Audio:
    """The station's own audio: on, paused until a time, or off (named user, audited)."""

    paused_until: float | None = None
    paused_by: str | None = None
    off: bool = False
    off_by: str | None = None
    off_since: float | None = None
    off_reason: str | None = None


class StationModel:
    """Every chair's tile, the alarm list and the station audio state."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.clock = clock
        self.stale_after_s = stale_after_s
        self.chairs: dict[str, Chair] = {}
        self.audio = Audio()
        self._dirty: set[str] = set()
        self._alarms_dirty = True
        self._audio_dirty = True
        self.listeners: list[Callable[[], None]] = []  # called after every change
        self.messages = 0

    # --- feeding ------------------------------------------------------------------------
    def add_chair(
        self, chair_id: str, label: str | None = None, device: str | None = None
    ) -> None:
        if chair_id not in self.chairs:
            self.chairs[chair_id] = Chair(chair_id, label or chair_id, device)
            self._changed(chair_id, alarms=True)

    def remove_chair(self, chair_id: str) -> None:
        if self.chairs.pop(chair_id, None) is not None:
            self._dirty.add(chair_id)
            self._alarms_dirty = True
            self._notify()

    def on_link_state(self, chair_id: str, state: str, detail: str = "") -> None:
        """The transport's view of the chair: 'live' or anything else (connecting, syncing,
        stale, disconnected, offline: an MQTT last will)."""
        ch = self._chair(chair_id)
        if ch.link == state and ch.link_detail == detail:
            return
        ch.link, ch.link_detail = state, detail
        self._restale(ch, self.clock())
        self._changed(chair_id, alarms=True)

    def on_message(self, chair_id: str, msg: Mapping[str, Any], rx_wall: float) -> None:
        """One device message (docs/protocol.md) as received at `rx_wall`. Replayed and
        flash-log lines update nothing live (they are history); bad fields are ignored."""
        if not isinstance(msg, Mapping) or msg.get("replayed"):
            return
        ch = self._chair(chair_id)
        self.messages += 1
        mtype = msg.get("type")
        if mtype in ("log", "reply"):
            return
        seq, boot = msg.get("seq"), msg.get("boot")
        if isinstance(seq, int) and not isinstance(seq, bool):
            ch.seq = seq
        if isinstance(boot, int) and not isinstance(boot, bool):
            if ch.boot is not None and boot != ch.boot:
                ch.alarms.clear()  # a restart: the device reports its alarms afresh
            ch.boot = boot
        ch.last_rx = rx_wall
        alarms_changed = False
        if ch.stale:
            self._restale(ch, rx_wall)
            alarms_changed = True
        if mtype == "oxi":
            age = _num(msg.get("spo2_age_s"))
            ch.oxi = {
                "spo2": _num(msg.get("spo2")),
                "pr": _num(msg.get("pr")),
                "rx": rx_wall,
                "spo2_valid_at": None if age is None else rx_wall - age,
                "flags": [f for f in msg.get("flags") or () if isinstance(f, str)][:8],
                "quality": _str(msg.get("quality"), 16),
                "pi": _num(msg.get("pi")),
            }
        elif mtype == "nibp":
            self._nibp(ch, msg, rx_wall)
        elif mtype == "heartbeat":
            alarms_changed |= self._heartbeat(ch, msg, rx_wall)
        elif mtype == "alarm":
            alarms_changed |= self._alarm_event(ch, msg, rx_wall)
        elif mtype == "session":
            self._session(ch, msg.get("session"), rx_wall)
        elif mtype == "hello":
            ch.fw = _str(msg.get("fw"), 32)
        self._changed(chair_id, alarms=alarms_changed)

    def tick(self, now: float | None = None) -> None:
        """Mark chairs stale whose last message is older than ``stale_after_s``."""
        t = self.clock() if now is None else now
        for ch in self.chairs.values():
            if self._restale(ch, t):
                self._changed(ch.id, alarms=True)

    # --- station audio -------------------------------------------------------------------
    def pause_audio(self, user: str | None = None) -> float:
        """The station's own audio pause (never the bedside's): AUDIO_PAUSE_S from now."""
        now = self.clock()
        self.audio.paused_until = now + AUDIO_PAUSE_S
        self.audio.paused_by = user.strip()[:USER_MAX] if user and user.strip() else None
        self._audio_changed()
        return self.audio.paused_until

    def audio_off(self, user: str, reason: str = "") -> None:
        """Station audio off until switched on again; needs a named user (ValueError)."""
        who = valid_user(user)
        self.audio.off = True
        self.audio.off_by = who
        self.audio.off_since = self.clock()
        self.audio.off_reason = reason.strip()[:REASON_MAX] or None
        self._audio_changed()

    def audio_on(self, user: str) -> None:
        valid_user(user)
        self.audio = Audio()
        self._audio_changed()

    def audio_state(self, now: float | None = None) -> dict[str, Any]:
        t = self.clock() if now is None else now
        a = self.audio
        paused = a.paused_until is not None and a.paused_until > t
        sounding = self.sounding_priority()
        mode = "off" if a.off else "paused" if paused else "on"
        return {
            "mode": mode,
            "priority": sounding,  # what the station would sound for
            "play": sounding if mode == "on" else "none",
            "paused_until": a.paused_until if paused else None,
            "paused_by": a.paused_by if paused else None,
            "off_by": a.off_by,
            "off_since": a.off_since,
            "off_reason": a.off_reason,
            "pause_s": AUDIO_PAUSE_S,
        }

    def sounding_priority(self) -> str:
        """The highest priority the station sounds for: alarms sounding at their bedside
        (active or latched, not paused or acknowledged there) and chairs with no data."""
        best = 0
        for a in self.alarm_list():
            if a["state"] in SOUNDING_STATES:
                best = max(best, RANK.get(a["priority"], 0))
        return PRIORITIES[best]

    # --- reading --------------------------------------------------------------------------
    def take_dirty(self) -> tuple[set[str], bool, bool]:
        """(chairs changed, alarm list changed, audio changed) since the last call."""
        d, a, u = self._dirty, self._alarms_dirty, self._audio_dirty
        self._dirty, self._alarms_dirty, self._audio_dirty = set(), False, False
        return d, a, u

    def tile(self, chair_id: str) -> dict[str, Any]:
        ch = self.chairs[chair_id]
        alarms = self._chair_alarms(ch)
        offline = ch.stale
        return {
            "id": ch.id,
            "label": ch.label,
            "device": ch.device,
            "link": ch.link,
            "link_detail": ch.link_detail,
            "offline": offline,
            "last_rx": ch.last_rx,
            "boot": ch.boot,
            "seq": ch.seq,
            "fw": ch.fw,
            "colour": tile_colour(alarms, offline),
            "priority": max((a["priority"] for a in alarms), key=RANK.__getitem__, default="none"),
            "spo2": ch.oxi.get("spo2"),
            "pr": ch.oxi.get("pr"),
            "oxi_rx": ch.oxi.get("rx"),
            "spo2_valid_at": ch.oxi.get("spo2_valid_at"),
            "oxi_flags": ch.oxi.get("flags", []),
            "quality": ch.oxi.get("quality"),
            "nibp": ch.nibp,
            "phase": ch.phase,
            "session": self._session_view(ch),
            "bedside_audio": ch.bedside_audio,
            "alarms": alarms,
        }

    def alarm_list(self) -> list[dict[str, Any]]:
        """Every alarm with a signal at any chair (and every chair with no data), highest
        priority first, then oldest onset, then chair."""
        out: list[dict[str, Any]] = []
        for ch in self.chairs.values():
            out.extend(self._chair_alarms(ch))
        out.sort(
            key=lambda a: (-RANK.get(a["priority"], 0), a["onset"], a["chair"], a["condition"])
        )
        return out

    def frame(
        self, chairs: Iterable[str] | None = None, *, alarms: bool = True, audio: bool = True
    ) -> dict[str, Any]:
        """A WebSocket frame: the tiles of `chairs` (None: every chair), the whole alarm list
        and the audio state when asked; `removed` lists chairs that no longer exist."""
        ids = list(self.chairs) if chairs is None else list(chairs)
        out: dict[str, Any] = {"type": "frame", "t": self.clock()}
        out["tiles"] = [self.tile(c) for c in ids if c in self.chairs]
        gone = [c for c in ids if c not in self.chairs]
        if gone:
            out["removed"] = gone
        if alarms:
            out["alarms"] = self.alarm_list()
        if audio:
            out["audio"] = self.audio_state()
        return out

    def snapshot(self) -> dict[str, Any]:
        f = self.frame(None)
        f["type"] = "snapshot"
        f["order"] = list(self.chairs)
        f["stale_after_s"] = self.stale_after_s
        return f

    # --- internals ------------------------------------------------------------------------
    def _chair(self, chair_id: str) -> Chair:
        ch = self.chairs.get(chair_id)
        if ch is None:
            self.add_chair(chair_id)
            ch = self.chairs[chair_id]
        return ch

    def _changed(self, chair_id: str, alarms: bool = False) -> None:
        self._dirty.add(chair_id)
        if alarms:
            self._alarms_dirty = True
            self._audio_dirty = True  # the sounding priority may have changed
        self._notify()

    def _audio_changed(self) -> None:
        self._audio_dirty = True
        self._notify()

    def _notify(self) -> None:
        for cb in self.listeners:
            cb()

    def _restale(self, ch: Chair, now: float) -> bool:
        """Recompute the chair's stale flag; True if it changed."""
        quiet = ch.last_rx is None or now - ch.last_rx > self.stale_after_s
        stale = ch.link != LIVE_LINK or quiet
        if stale == ch.stale:
            return False
        ch.stale = stale
        return True

    def _nibp(self, ch: Chair, m: Mapping[str, Any], rx: float) -> None:
        sys_, dia = _num(m.get("sys")), _num(m.get("dia"))
        if sys_ is None and dia is None:
            return
        age = _num(m.get("age_s")) or 0.0
        ch.nibp = {
            "sys": sys_,
            "dia": dia,
            "map": _num(m.get("map")),
            "pr": _num(m.get("pr")),
            "taken_at": rx - age,
        }

    def _heartbeat(self, ch: Chair, m: Mapping[str, Any], rx: float) -> bool:
        phase = _str(m.get("phase"), 32)
        ch.phase = phase.lower() if phase else None
        nibp = m.get("nibp")
        if isinstance(nibp, Mapping):
            self._nibp(ch, nibp, rx)
        ch.bedside_audio = {
            "paused_s": _num(m.get("audio_paused_s")),
            "off": bool(m.get("audio_off")),
        }
        rows = m.get("alarms")
        if not isinstance(rows, list):
            return False
        seen: dict[str, Alarm] = {}
        for r in rows:
            if not isinstance(r, Mapping) or not isinstance(r.get("condition"), str):
                continue
            a = self._alarm_from(ch, r, rx, _num(r.get("age_s")))
            if a is not None:
                seen[a.condition] = a
        changed = _alarm_key(seen) != _alarm_key(ch.alarms)
        ch.alarms = seen
        return changed

    def _alarm_from(
        self, ch: Chair, r: Mapping[str, Any], rx: float, age: float | None
    ) -> Alarm | None:
        cond = str(r["condition"])[:64]
        state = _str(r.get("state"), 24) or "active"
        if state not in SIGNAL_STATES:
            return None
        prio = str(r.get("priority"))
        if prio not in RANK or prio == "none":
            prio = "low"
        kind = _str(r.get("kind"), 16) or CONDITION_INFO.get(cond, ("technical", ""))[0]
        old = ch.alarms.get(cond)
        onset = old.onset if old is not None else rx - (age or 0.0)
        return Alarm(cond, prio, state, kind, _num(r.get("value")), _num(r.get("limit")), onset)

    def _alarm_event(self, ch: Chair, m: Mapping[str, Any], rx: float) -> bool:
        """An alarm event between heartbeats (a raise shows at once)."""
        cond = m.get("condition")
        if not isinstance(cond, str):
            return False
        before = _alarm_key(ch.alarms)
        a = self._alarm_from(ch, m, rx, 0.0)
        if a is None:
            ch.alarms.pop(cond[:64], None)
        else:
            old = ch.alarms.get(a.condition)
            if old is not None and old.value is not None and a.value is None:
                a.value, a.limit = old.value, old.limit
            ch.alarms[a.condition] = a
        return _alarm_key(ch.alarms) != before

    def _session(self, ch: Chair, s: Any, rx: float) -> None:
        if isinstance(s, Mapping):
            ch.session = dict(s)
            ch.session_rx = rx
            phase = _str(s.get("phase"), 32)
            if phase:
                ch.phase = phase.lower()

    def _session_view(self, ch: Chair) -> dict[str, Any] | None:
        """The session fields a tile shows, as absolute times (None: no session state)."""
        s, rx = ch.session, ch.session_rx
        if s is None or rx is None:
            return None

        def since(key: str) -> float | None:
            v = _num(s.get(key))
            return None if v is None else rx - v

        due = _num(s.get("check_due_s"))
        dose = s.get("dose")
        last = s.get("last_check")
        return {
            "id": s.get("id") if isinstance(s.get("id"), int) else None,
            "patient": _str(s.get("patient"), 32),
            "course_day": s.get("course_day"),
            "course_total": s.get("course_total"),
            "phase": _str(s.get("phase"), 32),
            "phase_since": since("phase_s"),
            "infusion_since": since("infusion_s"),
            "stopped_at": since("recovery_s"),
            "check_due_at": None if due is None else rx + due,
            "dose": dict(dose) if isinstance(dose, Mapping) else None,
            "o2": dict(s["o2"]) if isinstance(s.get("o2"), Mapping) else None,
            "last_score": last.get("score") if isinstance(last, Mapping) else None,
        }

    def _chair_alarms(self, ch: Chair) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for a in ch.alarms.values():
            kind, label = CONDITION_INFO.get(a.condition, (a.kind, a.condition))
            out.append(
                {
                    "chair": ch.id,
                    "label": ch.label,
                    "condition": a.condition,
                    "text": label,
                    "value_text": value_text(a.condition, a.value, a.limit),
                    "value": a.value,
                    "limit": a.limit,
                    "priority": a.priority,
                    "kind": a.kind or kind,
                    "state": a.state,
                    "onset": a.onset,
                    "stale": ch.stale,  # last known: the chair is not reporting
                }
            )
        if ch.stale:
            since = ch.last_rx if ch.last_rx is not None else self.clock()
            why = ch.link if ch.link != LIVE_LINK else "no data"
            out.append(
                {
                    "chair": ch.id,
                    "label": ch.label,
                    "condition": NO_DATA,
                    "text": CONDITION_INFO[NO_DATA][1],
                    "value_text": why + (f": {ch.link_detail}" if ch.link_detail else ""),
                    "value": None,
                    "limit": None,
                    "priority": NO_DATA_PRIORITY,
                    "kind": "technical",
                    "state": "active",
                    "onset": since,
                    "stale": True,
                }
            )
        out.sort(key=lambda a: (-RANK.get(a["priority"], 0), a["onset"]))
        return out


def _alarm_key(alarms: Mapping[str, Alarm]) -> set[tuple[Any, ...]]:
    return {(a.condition, a.priority, a.state, a.value, a.limit) for a in alarms.values()}
