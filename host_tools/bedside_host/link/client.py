"""DeviceLink: one Bedside device over its host link (protocol v2, docs/protocol.md).

A ``transitions`` state machine (disconnected, connecting, syncing, live, stale) around a
Transport. ``poll()`` never raises for link problems: a vanished port, a device restart or a
pulled cable become state changes, a reconnect with bounded exponential backoff, and in the
output either recovered lines or an explicit Gap.

Lossless link (docs/protocol.md "Lossless link"): the client tracks ``(boot, seq)``. A missing
seq starts a replay pass (``replay`` from the first missing seq, 16 lines per command, following
``next``); the replayed lines are delivered with ``replayed=True``. What the device no longer
holds is looked up, for alarm events, in the device's flash alarm log (``log`` command; alarm
events are recognised by boot, uptime, condition, event and state, so events already received
are not delivered twice). Every stretch of seqs that could not be recovered is reported as a
``Gap`` whose reason says what the alarm log gave. A new ``boot`` (or, on a device without a
flash store, the seq going back) is a restart: the rest of the old boot is reported as a gap
with an unknown end and its alarm events are read from the flash log.

Each line is delivered exactly once: a seq is delivered or lies in a Gap. Lines the client
reads only to fill a gap (flash-log records) are held until their command's reply and then
delivered: those that fill the gap as recovered history, the others with ``known=True`` (no
news for a view; a recorder stores them, so every device message is kept once).

Wall time: per boot, ``offset = min(rx_time - t_ms / 1000)`` over live lines (the first live
line sets it, later ones refine it: transport delay only ever adds), ``wall_time = t_ms / 1000
+ offset``. Replayed lines use their boot's offset; flash-log records (type ``log``) are mapped
by their own ``b`` and ``u`` where that boot was seen live, else ``wall_time`` is None.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

from transitions import Machine

from bedside_host import ensure_firmware_on_path
from bedside_host.keys import load_key
from bedside_host.link.messages import (
    UNKNOWN_END,
    Gap,
    LinkDown,
    LinkError,
    LinkStats,
    LinkTimeout,
    Received,
)
from bedside_host.link.transport import BAUD, PortGone, Transport

ensure_firmware_on_path()

from bedside.commands import AUTHENTICATED  # noqa: E402  (the one list of signed commands)

PING_EVERY_S = 2.0  # host traffic at least this often keeps HOST_LINK_LOST quiet
STALE_AFTER_S = 3.0  # no line for this long: stale (the device reports every second)
REOPEN_AFTER_S = 10.0  # stale this long: close and reopen the port
HELLO_RETRY_S = 1.0  # while syncing, ask for hello again this often
BACKOFF_MIN_S = 0.2  # reconnect delays double from here ...
BACKOFF_MAX_S = 5.0  # ... up to here; back to the minimum once the device answered hello
CMD_TIMEOUT_S = 3.0  # an internal replay or log command without its reply is sent again
CMD_RETRIES = 3  # ... this many times (also for lines lost in transit while replaying)
BUSY_RETRY_S = 0.5  # the device's one log request at a time: ask again after this
LOG_PAGE = 16  # records per log command (the device's cap)
RX_LINE_MAX = 65536  # a longer unterminated line is garbage
MAX_MISSED_BOOTS = 8  # whole boots missed between two seen ones, each looked up in the log
ALARM_MATCH_MS = 0  # a log record's `u` equals its alarm line's `t_ms` (same uptime)
BY_COMMANDS = frozenset(AUTHENTICATED)  # commands that carry `by` (operator), ctr and mac
_STALE_CTR = re.compile(r"counter not above (\d+)")

STATES = ["disconnected", "connecting", "syncing", "live", "stale"]
# One row per transition (tests/test_link_states.py has one test per row).
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "connect", "source": "disconnected", "dest": "connecting"},
    {"trigger": "opened", "source": "connecting", "dest": "syncing"},
    {"trigger": "open_failed", "source": "connecting", "dest": "disconnected"},
    {"trigger": "synced", "source": "syncing", "dest": "live"},
    {"trigger": "quiet", "source": ["syncing", "live"], "dest": "stale"},
    {"trigger": "heard", "source": "stale", "dest": "live", "conditions": "is_synced"},
    {"trigger": "heard", "source": "stale", "dest": "syncing", "unless": "is_synced"},
    {"trigger": "restarted", "source": "live", "dest": "syncing"},  # (stale: heard first)
    {"trigger": "lost", "source": ["syncing", "live", "stale"], "dest": "disconnected"},
    {"trigger": "close", "source": "*", "dest": "disconnected"},
]

_CAUSE = {
    "attach": "before the host attached",
    "transit": "lost in transit",
    "restart": "the device restarted and these lines of the new boot were not received",
}


class _Fsm:
    """The model the transitions Machine drives (its `state` and `trigger`)."""

    state: str
    trigger: Callable[..., bool]

    def __init__(self, link: DeviceLink) -> None:
        self._link = link

    def is_synced(self) -> bool:
        return self._link._synced


@dataclass
class _Hole:
    first: int
    last: int
    t_lo: int  # t_ms of the line received before the hole (0: start of the boot)
    t_hi: int  # t_ms of the line received after it
    cause: str


@dataclass
class _Cmd:
    kind: str  # "replay" or "log"
    id: int
    args: dict[str, Any]
    sent: float
    user: bool = False
    got: int = 0  # lines received for it before the reply (replay: old seqs; log: records)
    retries: int = 0
    lossy: bool = False  # a replay command gave up with lines still lost in transit
    held: list[tuple[Received, dict[str, Any]]] = field(default_factory=list)
    given: set[int] = field(default_factory=set)  # ids of held items delivered as recovered


@dataclass
class _Fill:
    """Alarm events of boot `boot` with uptime in [t_lo, t_hi] (None: to the boot's end)."""

    boot: int
    t_lo: int
    t_hi: int | None
    gaps: list[tuple[int, int, str]]  # (first_seq, last_seq, reason) reported when done
    cursor: int | None = None  # record number to read forward from, once found
    recovered: int = 0
    note: str = ""  # why the log could not cover the whole window
    not_before: float = 0.0  # clock(): do not ask before (device busy)
    tries: int = 0
    lookup: bool = True  # False: report the gaps without reading the log
    upper: int | None = None  # the next backward seek ends here (progress without records)


class DeviceLink:
    """One device: ``poll()`` often (it connects, reads, pings, fills gaps, reconnects)."""

    def __init__(
        self,
        url: str,
        *,
        operator: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        catch_up: bool = True,
        baudrate: int = BAUD,
    ) -> None:
        """`catch_up`: on attach, fetch what the device still holds from the start of its
        boot (and report what it no longer holds as a gap). One-shot commands turn it off."""
        self.url = url
        self.operator = operator
        self.catch_up = catch_up
        self.stats = LinkStats()
        self.hello: dict[str, Any] | None = None  # the device's last hello
        self.last_error = ""  # the last link problem, readable
        self.state_since = clock()
        # byte hook (``bedside record --raw``): called with ("device", bytes read, host receive
        # time) for every read and ("host", line, send time) for every command written
        self.on_bytes: Callable[[str, bytes, float], None] | None = None
        self.state_log: deque[tuple[float, str, str]] = deque(maxlen=64)  # (clock, from, to)
        self._prev_state = "disconnected"
        self._clock = clock
        self._wall = wall
        self._transport = Transport(url, baudrate)
        self._fsm = _Fsm(self)
        self._machine = Machine(
            model=self._fsm,
            states=STATES,
            transitions=TRANSITIONS,
            initial="disconnected",
            auto_transitions=False,
            after_state_change=self._state_changed,
        )
        self._out: list[Received | Gap] = []
        self._buf = bytearray()
        self._closed = False
        self._fresh = False  # the next line is the first since the port was opened
        self._opened_once = False
        self._conn = 0  # connection counter (a request fails if the port was lost meanwhile)
        self._backoff = BACKOFF_MIN_S
        self._retry_at = 0.0
        self._next_id = 0
        self._last_tx = 0.0
        self._last_line = 0.0
        self._hello_at = 0.0
        self._synced = False
        # sequence tracking (current boot)
        self._boot: int | None = None
        self._last_seq = 0
        self._t_last = 0
        self._holes: list[_Hole] = []
        self._replay: _Cmd | None = None
        self._replay_quiet_until = 0.0  # late replay lines are not a restart before this
        # flash alarm log
        self._has_log: bool | None = None  # None: no hello yet
        self._log_first = 0
        self._log_end = 0
        self._anchors: list[tuple[int, int, int]] = []  # (next record, boot, t_ms) at hello
        self._recs: dict[int, tuple[int, int]] = {}  # record number -> (boot, uptime)
        self._fills: deque[_Fill] = deque()
        self._logcmd: _Cmd | None = None
        self._user_log_waiting = False
        self._seen_alarms: dict[tuple[int, str, str, str], list[int]] = {}
        # wall time per boot
        self._offsets: dict[int, float] = {}
        self._waiting: dict[int, dict[str, Any] | None] = {}
        # authentication: the key for the device named in hello, and the counter
        self.device_id: str | None = None
        self._key: bytes | None = None
        self._ctr = 0

    # --- authentication (docs/protocol.md "Authentication") ----------------------------
    @property
    def has_key(self) -> bool:
        """This host holds the key of the device (its hello named it)."""
        return self._key is not None

    def use_key(self, key: bytes | None) -> None:
        """Sign with this key from now on (bedside provision, after a key change)."""
        self._key = key

    def _line_for(self, body: dict[str, Any]) -> bytes:
        """The command line: state-changing commands get `by`, the next counter and, when
        this host has the device's key, the MAC over the line's bytes before `,"mac":"`."""
        if body["cmd"] not in BY_COMMANDS:
            return (json.dumps(body, separators=(",", ":")) + "\n").encode()
        if "by" not in body:
            body["by"] = (self.operator or _login())[:32]
        self._ctr += 1
        body["ctr"] = self._ctr
        text = json.dumps(body, separators=(",", ":"))
        if self._key is None:
            return (text + "\n").encode()
        prefix = text[:-1].encode()
        mac = hmac.new(self._key, prefix, hashlib.sha256).hexdigest()
        return prefix + b',"mac":"' + mac.encode() + b'"}\n'

    # --- public -------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._fsm.state

    @property
    def boot(self) -> int | None:
        """The device's current boot counter (None before the first line)."""
        return self._boot

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def catching_up(self) -> bool:
        """Missing lines are being replayed or looked up in the flash log (gaps to come)."""
        return bool(self._holes or self._fills or self._replay or self._logcmd)

    def retry_in(self) -> float | None:
        """Seconds until the next reconnect attempt (None unless disconnected)."""
        if self.state != "disconnected" or self._closed:
            return None
        return max(0.0, self._retry_at - self._clock())

    def wall_time(self, boot: int, t_ms: int) -> float | None:
        """Device uptime in boot `boot` as UTC epoch seconds, where that boot was seen live."""
        off = self._offsets.get(boot)
        return None if off is None else t_ms / 1000.0 + off

    def poll(self, timeout: float = 0.0) -> list[Received | Gap]:
        """One step (waits up to `timeout` s for input); returns what is ready, in order."""
        self._step(timeout)
        out, self._out = self._out, []
        return out

    def wait_live(self, timeout: float) -> bool:
        """Step until the device answered hello (state live); messages stay for poll()."""
        end = time.monotonic() + timeout
        while self.state != "live" and not self._closed:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._step(min(left, 0.05))
        return self.state == "live"

    def send(self, cmd: str, **fields: Any) -> int:
        """Send one command line; returns its id. Raises LinkDown when the port is not open."""
        if not self._transport.is_open:
            why = f": {self.last_error}" if self.last_error else ""
            raise LinkDown(f"{self.url} is {self.state}{why}")
        self._next_id = self._next_id % 1_000_000_000 + 1
        rid = self._next_id
        body: dict[str, Any] = {"cmd": cmd, "id": rid, **fields}
        data = self._line_for(body)
        try:
            self._transport.write(data)
        except PortGone as e:
            self._lost(str(e))
            raise LinkDown(str(e)) from None
        if self.on_bytes is not None:
            self.on_bytes("host", data, self._wall())
        self._last_tx = self._clock()
        return rid

    def request(
        self, cmd: str, timeout: float = 3.0, _retried: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Send and wait for the reply with that id; lines received meanwhile stay for the
        next poll(). Raises LinkError (the device's reason) on ok:false, LinkTimeout, or
        LinkDown if the port is not open or was lost while waiting."""
        end = time.monotonic() + timeout
        if cmd == "log":  # the device runs one log request at a time: the caller's goes next
            self._user_log_waiting = True
            try:
                while self._logcmd is not None:
                    if time.monotonic() >= end:
                        raise LinkTimeout(f"{cmd}: the device's flash log is busy")
                    self._step(0.05)
            finally:
                self._user_log_waiting = False
        conn = self._conn
        rid = self.send(cmd, **fields)
        self._waiting[rid] = None
        if cmd == "log":
            self._logcmd = _Cmd("log", rid, dict(fields), self._clock(), user=True)
        try:
            while True:
                reply = self._waiting.get(rid)
                if reply is not None:
                    break
                if self._conn != conn or not self._transport.is_open:
                    raise LinkDown(f"{self.url}: link lost while waiting for {cmd}")
                left = end - time.monotonic()
                if left <= 0:
                    raise LinkTimeout(f"no reply to {cmd} within {timeout:g} s")
                self._step(min(left, 0.05))
        finally:
            self._waiting.pop(rid, None)
            if self._logcmd is not None and self._logcmd.user and self._logcmd.id == rid:
                self._logcmd = None
        if reply.get("ok") is False:
            if (
                not _retried and cmd in BY_COMMANDS and _STALE_CTR.search(str(reply.get("error")))
            ):  # the device's counter was ahead (another host, a restart): once more
                left = end - time.monotonic()
                if left > 0:
                    return self.request(cmd, left, _retried=True, **fields)
            raise LinkError(cmd, reply)
        return reply

    def close(self) -> None:
        self._closed = True
        self._transport.close()
        self._fsm.trigger("close")

    # --- state --------------------------------------------------------------------------
    def _state_changed(self) -> None:
        now = self._clock()
        self.state_log.append((now, self._prev_state, self.state))
        self._prev_state = self.state
        self.state_since = now

    def _connect(self, now: float) -> None:
        self._fsm.trigger("connect")
        try:
            self._transport.open()
        except PortGone as e:
            self.last_error = str(e)
            self._fsm.trigger("open_failed")
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
            return
        self._fsm.trigger("opened")
        if self._opened_once:
            self.stats.reconnects += 1
        self._opened_once = True
        self._conn += 1
        self._buf.clear()
        self._fresh = True
        self._synced = False
        self._last_line = now
        self._hello_at = now
        self._send_quiet("hello")

    def _lost(self, reason: str) -> None:
        self.last_error = reason
        self._transport.close()
        self._replay = None  # the pass starts again after the reconnect
        self._drop_logcmd()  # a fill job goes on after the reconnect; a request gets LinkDown
        if self.state in ("syncing", "live", "stale"):
            self._fsm.trigger("lost")
        now = self._clock()
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _send_quiet(self, cmd: str, **fields: Any) -> int | None:
        try:
            return self.send(cmd, **fields)
        except LinkDown:
            return None

    # --- the step -----------------------------------------------------------------------
    def _step(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        n0 = len(self._out)
        while True:
            left = end - time.monotonic()
            if self._closed:
                if left > 0:
                    time.sleep(left)
                return
            if not self._transport.is_open:
                now = self._clock()
                if now >= self._retry_at:
                    self._connect(now)
                if not self._transport.is_open:
                    if left <= 0:
                        return
                    time.sleep(max(0.001, min(left, self._retry_at - now, 0.05)))
                    continue
            try:
                data = self._transport.read(max(0.0, min(left, 0.1)))
            except PortGone as e:
                self._lost(str(e))
                continue
            now = self._clock()
            if data:
                rx = self._wall()
                if self.on_bytes is not None:
                    self.on_bytes("device", data, rx)
                self._feed(data, rx, now)
            if self._transport.is_open:
                self._timers(now)
            if self._transport.is_open:
                self._pump(now)
            if len(self._out) > n0 or any(v is not None for v in self._waiting.values()):
                return
            if time.monotonic() >= end:
                return

    def _feed(self, data: bytes, rx_wall: float, now: float) -> None:
        buf = self._buf
        buf += data
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            raw = bytes(buf[:i])
            del buf[: i + 1]
            self._line(raw, rx_wall, now)
        if len(buf) > RX_LINE_MAX:
            buf.clear()
            self.stats.bad_lines += 1

    def _timers(self, now: float) -> None:
        if not self._synced and now - self._hello_at >= HELLO_RETRY_S:
            self._hello_at = now
            self._send_quiet("hello")
        if now - self._last_tx >= PING_EVERY_S:
            self._send_quiet("ping")
        quiet = now - self._last_line
        if self.state in ("syncing", "live") and quiet >= STALE_AFTER_S:
            self._fsm.trigger("quiet")
        elif self.state == "stale" and quiet >= REOPEN_AFTER_S:
            self._lost(f"no line for {quiet:.0f} s; reopening {self.url}")
            self._retry_at = now  # at once: the port itself did not fail
            return
        rp = self._replay
        if rp is not None and now - rp.sent >= CMD_TIMEOUT_S:
            if rp.retries < CMD_RETRIES:
                self._send_replay(rp.args["from"], rp.retries + 1)
            else:
                self._replay = None
                self._replay_quiet_until = now + CMD_TIMEOUT_S
                self._resolve_holes(self._last_seq + 1, None, "replay not answered", True)
        lc = self._logcmd
        if lc is not None and not lc.user and now - lc.sent >= CMD_TIMEOUT_S:
            self._drop_logcmd()
            if self._fills:
                job = self._fills[0]
                job.tries += 1
                if job.tries > CMD_RETRIES:
                    job.note = "the flash alarm log was not answered"
                    self._finish_fill()

    # --- one line -----------------------------------------------------------------------
    def _line(self, raw: bytes, rx_wall: float, now: float) -> None:
        first, self._fresh = self._fresh, False
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            line = ""
            msg: Any = None
        else:
            if not line.strip():
                return
            try:
                msg = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                msg = None
        if not _valid(msg):
            if not first:  # the first bytes after opening may be the tail of a line
                self.stats.bad_lines += 1
            return
        self._last_line = now
        self.stats.last_rx = now
        if self.state == "stale":
            self._fsm.trigger("heard")
        seq: int = msg["seq"]
        boot: int = msg.get("boot", 0)
        t_ms: int = msg["t_ms"]
        mtype: str = msg["type"]
        replayed = False
        if self._boot is None:
            self._begin_boot(boot, seq, t_ms, "attach")
        elif boot != self._boot or self._seq_went_back(boot, seq, mtype, now):
            self._restart(boot, seq, t_ms)
        elif seq > self._last_seq:
            if seq > self._last_seq + 1:
                self._add_hole(self._last_seq + 1, seq - 1, self._t_last, t_ms, "transit")
            self._last_seq = seq
            self._t_last = t_ms
        else:
            if self._replay is not None:
                self._replay.got += 1
            if not self._take_hole(seq):
                self.stats.duplicates += 1
                return
            replayed = True
            self.stats.recovered += 1
        if mtype == "log":
            self._on_log_line(line, msg, rx_wall, boot, t_ms, replayed)
            return
        wall = self._map(boot, t_ms, rx_wall, live=not replayed)
        self._deliver(Received(self.url, line, msg, rx_wall, wall, replayed))
        if mtype == "alarm":
            self._seen_alarm(boot, t_ms, msg)
        elif mtype == "hello":
            self._on_hello(msg, boot, t_ms, live=not replayed)
        elif mtype == "reply" and not replayed:
            self._on_reply(msg)

    def _deliver(self, item: Received | Gap) -> None:
        if isinstance(item, Received):
            self.stats.received += 1
        else:
            self.stats.gaps += 1
            if item.last_seq != UNKNOWN_END:
                self.stats.lost += item.last_seq - item.first_seq + 1
        self._out.append(item)

    def _map(self, boot: int, t_ms: int, rx_wall: float, live: bool) -> float | None:
        if live:
            off = rx_wall - t_ms / 1000.0
            cur = self._offsets.get(boot)
            if cur is None or off < cur:
                self._offsets[boot] = off
        return self.wall_time(boot, t_ms)

    def _seq_went_back(self, boot: int, seq: int, mtype: str, now: float) -> bool:
        """Same boot, lower seq: a restart only without a flash store (boot 0), and only when
        no replay could explain it; with a boot counter (boot, seq) is unique for ever."""
        if boot != 0 or seq >= self._last_seq:
            return False
        if self._replay is not None or now < self._replay_quiet_until:
            return False
        return seq == 1 or mtype == "hello" or not self._is_hole(seq)

    # --- boots and holes ----------------------------------------------------------------
    def _begin_boot(self, boot: int, seq: int, t_ms: int, cause: str) -> None:
        self._boot = boot
        self._last_seq = seq
        self._t_last = t_ms
        self._holes = []
        if seq > 1 and (cause != "attach" or self.catch_up):
            self._add_hole(1, seq - 1, 0, t_ms, cause)

    def _restart(self, boot: int, seq: int, t_ms: int) -> None:
        old = self._boot
        assert old is not None
        self.stats.restarts += 1
        self._replay = None
        if self._logcmd is not None and not self._logcmd.user:
            self._drop_logcmd()  # the old boot will not answer it: ask again
        gaps: list[tuple[int, int, str]] = []
        t_lo = self._t_last
        for h in self._holes:
            gaps.append((h.first, h.last, f"{_CAUSE[h.cause]}; the device restarted first"))
            t_lo = min(t_lo, h.t_lo)
        last = self._last_seq
        gaps.append(
            (
                last + 1,
                UNKNOWN_END,
                f"the device restarted (boot {old} -> {boot}): lines after seq {last} "
                f"of boot {old} were not received (how many is not known)",
            )
        )
        self._fills.append(_Fill(old, t_lo, None, gaps))
        if old > 0 and boot > old + 1:
            missed = list(range(old + 1, boot))
            for b in missed[:MAX_MISSED_BOOTS]:
                self._fills.append(
                    _Fill(b, 0, None, [(1, UNKNOWN_END, f"boot {b} was not seen at all")])
                )
            if len(missed) > MAX_MISSED_BOOTS:
                first_b, last_b = missed[MAX_MISSED_BOOTS], missed[-1]
                self._fills.append(
                    _Fill(
                        last_b,
                        0,
                        0,
                        [
                            (
                                1,
                                UNKNOWN_END,
                                f"boots {first_b}..{last_b} were not seen at all "
                                "(not looked up in the flash log)",
                            )
                        ],
                        lookup=False,
                    )
                )
        if boot == old:
            self._offsets.pop(boot, None)  # no flash store: the boot counter stays 0
        for key in [k for k in self._seen_alarms if k[0] < boot - MAX_MISSED_BOOTS]:
            del self._seen_alarms[key]
        self._begin_boot(boot, seq, t_ms, "restart")
        if self._synced:
            self._synced = False
            self._hello_at = self._clock()
            if self.state in ("live", "stale"):
                self._fsm.trigger("restarted")
            self._send_quiet("hello")

    def _add_hole(self, first: int, last: int, t_lo: int, t_hi: int, cause: str) -> None:
        self.stats.missing += last - first + 1
        self._holes.append(_Hole(first, last, t_lo, t_hi, cause))
        self._holes.sort(key=lambda h: h.first)

    def _is_hole(self, seq: int) -> bool:
        return any(h.first <= seq <= h.last for h in self._holes)

    def _take_hole(self, seq: int) -> bool:
        for i, h in enumerate(self._holes):
            if h.first <= seq <= h.last:
                parts = []
                if h.first < seq:
                    parts.append(_Hole(h.first, seq - 1, h.t_lo, h.t_hi, h.cause))
                if seq < h.last:
                    parts.append(_Hole(seq + 1, h.last, h.t_lo, h.t_hi, h.cause))
                self._holes[i : i + 1] = parts
                return True
        return False

    def _resolve_holes(self, below: int, oldest: int | None, why: str, lossy: bool) -> None:
        """Holes (parts) under `below` are not held: look their alarm events up in the log
        (unless every important line since before them was held), then report them."""
        keep: list[_Hole] = []
        done: list[_Hole] = []
        for h in self._holes:
            if h.first >= below:
                keep.append(h)
            elif h.last >= below:
                done.append(_Hole(h.first, below - 1, h.t_lo, h.t_hi, h.cause))
                keep.append(_Hole(below, h.last, h.t_lo, h.t_hi, h.cause))
            else:
                done.append(h)
        self._holes = keep
        if not done or self._boot is None:
            return
        rx = self._wall()
        need: list[_Hole] = []
        for h in done:
            if not lossy and oldest is not None and h.first >= oldest:
                reason = (
                    f"{_CAUSE[h.cause]}; {why} (every alarm line since seq {oldest} is held, "
                    "so no alarm event is missing)"
                )
                self._deliver(Gap(self.url, self._boot, h.first, h.last, reason, rx))
            else:
                need.append(h)
        if need:
            gaps = [(h.first, h.last, f"{_CAUSE[h.cause]}; {why}") for h in need]
            t_lo = min(h.t_lo for h in need)
            t_hi = max(h.t_hi for h in need)
            self._fills.append(_Fill(self._boot, t_lo, t_hi, gaps))

    # --- replay -------------------------------------------------------------------------
    def _send_replay(self, first: int, retries: int = 0) -> None:
        rid = self._send_quiet("replay", **{"from": first})
        if rid is None:
            self._replay = None
            return
        self._replay = _Cmd("replay", rid, {"from": first}, self._clock(), retries=retries)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        stale = _STALE_CTR.search(str(msg.get("error"))) if msg.get("ok") is False else None
        if stale:
            self._ctr = max(self._ctr, int(stale.group(1)))
        rid = msg.get("id")
        if isinstance(rid, int) and rid in self._waiting:
            self._waiting[rid] = msg
        rp = self._replay
        if rp is not None and rid == rp.id:
            self._on_replay_reply(rp, msg)
        lc = self._logcmd
        if lc is not None and rid == lc.id:
            self._on_log_reply(lc, msg)

    def _on_replay_reply(self, rp: _Cmd, msg: dict[str, Any]) -> None:
        self._replay = None
        self._replay_quiet_until = self._clock() + 0.5
        seq = msg["seq"]
        if msg.get("ok") is False:
            why = f"replay refused: {msg.get('error')}"
            self._resolve_holes(seq, None, why, True)
            return
        count, oldest, nxt = msg.get("count"), msg.get("oldest"), msg.get("next")
        if _int(count) and rp.got < count:
            if rp.retries < CMD_RETRIES:
                self._send_replay(rp.args["from"], rp.retries + 1)
                return
            rp.lossy = True
        if _int(nxt) and nxt > rp.args["from"] and any(h.last >= nxt for h in self._holes):
            self._send_replay(nxt)
            if self._replay is not None:
                self._replay.lossy = rp.lossy
            return
        why = "not held for replay"
        if rp.lossy:
            why += f", or its replayed copy was lost again ({CMD_RETRIES + 1} tries)"
        self._resolve_holes(seq, oldest if _int(oldest) else None, why, rp.lossy)

    # --- hello and the flash alarm log --------------------------------------------------
    def _on_hello(self, msg: dict[str, Any], boot: int, t_ms: int, live: bool) -> None:
        """Where the flash alarm log stood when the hello was made is an anchor for finding
        records by time: records from `next` on are later, the ones before are earlier."""
        log = msg.get("log")
        alarm = log.get("alarm") if isinstance(log, dict) else None
        if isinstance(alarm, dict) and _int(alarm.get("first")) and _int(alarm.get("next")):
            self._has_log = True
            self._log_first = alarm["first"]
            self._log_end = alarm["next"]
            self._anchors.append((alarm["next"], boot, t_ms))
            del self._anchors[:-32]
        elif live:
            self._has_log = False
        if not live:
            return
        self.hello = msg
        dev_id = msg.get("device")
        if isinstance(dev_id, str) and dev_id:
            if dev_id != self.device_id:
                self.device_id = dev_id
                try:
                    self._key = load_key(dev_id)
                except ValueError as e:
                    self._key = None
                    self.last_error = str(e)
        auth = msg.get("auth")
        if isinstance(auth, dict) and _int(auth.get("ctr")):
            self._ctr = max(self._ctr, auth["ctr"])
        rid = msg.get("id")
        if _int(rid) and rid in self._waiting and self._waiting[rid] is None:
            self._waiting[rid] = msg  # protocol v1 answers hello with the hello only
        if not self._synced:
            self._synced = True
            self._backoff = BACKOFF_MIN_S
            if self.state == "syncing":
                self._fsm.trigger("synced")

    def _seen_alarm(self, boot: int, t_ms: int, msg: dict[str, Any]) -> None:
        key = (boot, str(msg.get("condition")), str(msg.get("event")), str(msg.get("state")))
        times = self._seen_alarms.setdefault(key, [])
        times.append(t_ms)
        del times[:-256]

    def _known_alarm(self, b: int, u: int, rec: dict[str, Any]) -> bool:
        key = (b, str(rec.get("condition")), str(rec.get("event")), str(rec.get("state")))
        return any(abs(u - t) <= ALARM_MATCH_MS for t in self._seen_alarms.get(key, ()))

    def _on_log_line(
        self,
        line: str,
        msg: dict[str, Any],
        rx_wall: float,
        boot: int,
        t_ms: int,
        replayed: bool,
    ) -> None:
        self._map(boot, t_ms, rx_wall, live=not replayed)  # its own t_ms refines the offset
        rec = msg.get("rec")
        if not isinstance(rec, dict):
            rec = msg  # protocol v1: the record's fields are the message's
        b, u = rec.get("b"), rec.get("u")
        wall = self.wall_time(b, u) if _int(b) and _int(u) else None
        item = Received(self.url, line, msg, rx_wall, wall, True)
        lc = self._logcmd
        if (
            not replayed
            and lc is not None
            and msg.get("log", "alarm") == lc.args.get("log", "alarm")
        ):
            lc.got += 1
            if _int(rec.get("n")) and _int(b) and _int(u):
                self._remember_record(rec["n"], b, u)
            if not lc.user:
                lc.held.append((item, rec))  # delivered only if it fills a gap
                return
        if replayed and _int(b) and _int(u) and "condition" in rec:
            # a log reply line lost in transit and replayed: its alarm event may have been
            # delivered already (by a fill): then it is no news
            if self._known_alarm(b, u, rec):
                item = replace(item, known=True)
            else:
                self._seen_alarm(b, u, rec)
        self._deliver(item)

    def _remember_record(self, n: int, b: int, u: int) -> None:
        self._recs[n] = (b, u)
        if len(self._recs) > 4096:
            for k in sorted(self._recs)[:1024]:
                del self._recs[k]

    def _drop_logcmd(self) -> None:
        """Forget the running log command; the lines it held are delivered (known)."""
        lc, self._logcmd = self._logcmd, None
        if lc is not None:
            self._release(lc)

    def _release(self, lc: _Cmd) -> None:
        """Deliver the held flash-log lines not delivered as recovered, marked known."""
        for item, _rec in lc.held:
            if id(item) not in lc.given:
                self._deliver(replace(item, known=True))
        lc.held.clear()
        lc.given.clear()

    def _on_log_reply(self, lc: _Cmd, msg: dict[str, Any]) -> None:
        self._logcmd = None
        try:
            self._on_log_reply_fill(lc, msg)
        finally:
            self._release(lc)

    def _on_log_reply_fill(self, lc: _Cmd, msg: dict[str, Any]) -> None:
        if _int(msg.get("first")):
            self._log_first = msg["first"]
        if _int(msg.get("end")):
            self._log_end = msg["end"]
        if lc.user or not self._fills:
            return
        job = self._fills[0]
        if msg.get("ok") is False:
            err = str(msg.get("error"))
            if "busy" in err and job.tries < 20:
                job.tries += 1
                job.not_before = self._clock() + BUSY_RETRY_S
                return
            job.note = f"the flash alarm log could not be read: {err}"
            self._finish_fill()
            return
        count = msg.get("count")
        if _int(count) and lc.got < count and lc.retries < CMD_RETRIES:
            # lines of the page were lost in transit (a long page can outrun the device's
            # output ring while it catches up): ask again for a smaller page
            smaller = max(1, lc.args["count"] // 2)
            self._send_log(lc.args["from"], smaller, lc.args["phase"], lc.retries + 1)
            return
        if _int(count) and lc.got < count and not job.note:
            job.note = (
                f"{count - lc.got} flash alarm log records were lost in transit: "
                "alarm events may be missing"
            )
        if lc.args["phase"] == "seek":
            job.upper = lc.args["from"]  # records remembered; the next seek goes further back
            return
        hi = (job.boot, job.t_hi if job.t_hi is not None else 1 << 62)
        lo = (job.boot, job.t_lo)
        recs = [(r["b"], r["u"], item, r) for item, r in lc.held if _int(r.get("b"))]
        recs = [x for x in recs if _int(x[1])]
        if lc.args["from"] <= self._log_first and self._log_first > 0 and not job.note:
            if not recs or (recs[0][0], recs[0][1]) > lo:  # the start may be overwritten
                job.note = (
                    f"the flash alarm log no longer holds records before {self._log_first}: "
                    "alarm events may be missing"
                )
        for b, u, item, rec in recs:
            if (b, u) > hi:
                self._finish_fill()
                return
            if (b, u) >= lo and not self._known_alarm(b, u, rec):
                self._seen_alarm(b, u, rec)
                self._deliver(item)
                lc.given.add(id(item))
                self.stats.recovered += 1
                job.recovered += 1
        nxt = msg.get("next")
        end = msg.get("end", self._log_end)
        if not _int(nxt) or not count or (_int(end) and nxt >= end):
            self._finish_fill()
        else:
            job.cursor = nxt

    def _send_log(self, first: int, count: int, phase: str, retries: int = 0) -> None:
        rid = self._send_quiet("log", **{"from": first, "log": "alarm", "count": count})
        if rid is None:
            return
        args = {"from": first, "log": "alarm", "count": count, "phase": phase}
        self._logcmd = _Cmd("log", rid, args, self._clock(), retries=retries)

    def _finish_fill(self) -> None:
        job = self._fills.popleft()
        if not job.lookup:
            tail = ""
        elif job.note:
            tail = f"; {job.note}"
            if job.recovered:
                tail += f" ({job.recovered} alarm events recovered from it)"
        elif job.recovered:
            tail = f"; {job.recovered} alarm events recovered from the flash alarm log"
        else:
            tail = "; the flash alarm log holds no other alarm event for it"
        rx = self._wall()
        for first, last, reason in job.gaps:
            self._deliver(Gap(self.url, job.boot, first, last, reason + tail, rx))

    def _fill_step(self, now: float) -> None:
        """Start the next log command of the first fill job (one log request at a time)."""
        job = self._fills[0]
        if now < job.not_before:
            return
        if not job.lookup:
            self._finish_fill()
            return
        if self._has_log is None:
            return  # wait for hello to say whether there is a log
        if not self._has_log:
            job.note = "the device has no flash alarm log"
            self._finish_fill()
            return
        first, end = self._log_first, self._log_end
        if job.cursor is not None:  # `end` may be stale: the reply says when the log ends
            self._send_log(max(job.cursor, first), LOG_PAGE, "read")
            return
        lo = (job.boot, job.t_lo)
        cands = [n + 1 for n, k in self._recs.items() if k < lo]
        cands += [n for n, b, u in self._anchors if (b, u) < lo]
        above = [n for n, k in self._recs.items() if k >= lo]
        above += [n for n, b, u in self._anchors if (b, u) >= lo]
        hi = min([end, *above] + ([job.upper] if job.upper is not None else []))
        best = max([first, *cands])
        if hi - best <= LOG_PAGE or hi <= first:
            job.cursor = max(first, min(best, hi))
            self._fill_step(now)
            return
        start = max(best, hi - LOG_PAGE)
        self._send_log(start, hi - start, "seek")

    def _pump(self, now: float) -> None:
        if self._replay is None and self._holes:
            self._send_replay(self._holes[0].first)
        if (
            self._logcmd is None
            and self._fills
            and not self._user_log_waiting
            and self._transport.is_open
        ):
            self._fill_step(now)


def _login() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def _int(x: Any) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def _valid(msg: Any) -> bool:
    """A protocol message: an object with an int seq >= 1, a string type, an int t_ms and
    (protocol v2) an int boot; protocol v1 lines have no boot (taken as 0)."""
    return (
        isinstance(msg, dict)
        and _int(msg.get("seq"))
        and msg["seq"] >= 1
        and isinstance(msg.get("type"), str)
        and _int(msg.get("t_ms"))
        and _int(msg.get("boot", 0))
    )
