"""The record store: every device message in SQLite, raw line first, clinic tables beside it.

One file (stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``) holds, per device message:

* ``raw_lines``: the NDJSON line verbatim with its host receive time, device key, boot and seq,
  ``UNIQUE(device, boot, epoch, seq)`` so replays and re-deliveries are stored once;
* the tables a clinic queries, written in the same transaction as the raw line and only when
  the raw line is new: ``vitals`` (``oxi``), ``nibp``, ``alarms``, ``events`` (buttons,
  settings, audio off, faults, self-tests, NIBP states, hellos, flash-log records),
  ``settings_changes`` (who/when/old/new), ``link_gaps``; and ``devices``, ``boots``,
  ``sessions`` (a session is one device boot for now: ``kind = 'boot'``).

Writes are batched: :meth:`Store.add` buffers and one transaction commits every
``batch_items`` items or ``batch_ms`` milliseconds. A kill at any instant loses at most the
uncommitted batch, which is never more than the device keeps for replay (64 lines), and the
re-delivered lines are stored once (raw uniqueness; derived rows only for new raw lines, in
the same transaction; flash-log records deduplicated against the live events they repeat).

A device without a flash store reports ``boot`` 0 at every start, so ``(boot, seq)`` does not
identify its messages across restarts. For boot 0 the store numbers the runs itself
(``epoch``): the same line with the same seq in the current run (or the very same delivery) is
a duplicate; a live line whose seq is not above the last one, or whose uptime went back,
starts a new run; replayed lines fill holes of the current run. For every other boot
``epoch`` is 0.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades a file one
version at a time (a new file runs them all). Not a certified medical device: a record for
review, never an alarm path.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bedside_host import session_records

SCHEMA_VERSION = 6
BATCH_ITEMS = 64  # never more than the device keeps for replay (docs/protocol.md)
BATCH_MS = 500.0
BUSY_TIMEOUT_MS = 5000
_INT_MAX = 2**62
MERGE_MS = 100  # a flash-log record and a live line of the same event: uptimes this close


class StoreError(Exception):
    """The file cannot be used as a record store (not SQLite, newer schema, missing)."""


class UnknownSession(StoreError):
    """No session with that id."""


class ReceivedItem(Protocol):
    """A device message as the link client delivers it (``bedside_host.link.client.Received``)."""

    @property
    def port(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def msg(self) -> Mapping[str, Any]: ...
    @property
    def rx_time(self) -> float: ...
    @property
    def wall_time(self) -> float | None: ...
    @property
    def replayed(self) -> bool: ...


class GapItem(Protocol):
    """Messages neither replay nor the flash log could give (``...link.client.Gap``)."""

    @property
    def port(self) -> str: ...
    @property
    def boot(self) -> int: ...
    @property
    def first_seq(self) -> int: ...
    @property
    def last_seq(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def rx_time(self) -> float: ...


Item = ReceivedItem | GapItem


# --- schema -----------------------------------------------------------------------------------
# Version 1: the first release. Version 2: raw lines keep the device wall time and the
# replayed flag; sessions (kind 'boot', backfilled from boots); alarms keep kind and pause_s;
# vitals keep spo2_age_s.

_V1 = """
CREATE TABLE devices (
    key TEXT PRIMARY KEY,            -- the port the device is attached on
    first_rx REAL NOT NULL,
    last_rx REAL NOT NULL,
    fw TEXT
);
CREATE TABLE boots (
    device TEXT NOT NULL REFERENCES devices(key),
    boot INTEGER NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,  -- host-numbered run, only for boot 0 (no flash store)
    first_rx REAL NOT NULL,
    last_rx REAL NOT NULL,
    last_seq INTEGER,
    t0_wall REAL,                    -- UTC of device uptime 0 (from the link's time mapping)
    fw TEXT,
    reset_cause TEXT,
    hello TEXT,                      -- the last hello message (JSON)
    PRIMARY KEY (device, boot, epoch)
);
CREATE TABLE raw_lines (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    boot INTEGER NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    seq INTEGER,                     -- NULL only for a line without a valid seq
    rx_time REAL NOT NULL,           -- host receive time, UTC epoch seconds
    line TEXT NOT NULL               -- the NDJSON line verbatim
);
CREATE UNIQUE INDEX raw_lines_key ON raw_lines(device, boot, epoch, seq);
CREATE UNIQUE INDEX raw_lines_unsequenced ON raw_lines(device, rx_time, line)
    WHERE seq IS NULL;
CREATE TABLE vitals (
    raw_id INTEGER PRIMARY KEY REFERENCES raw_lines(id),
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    t_ms INTEGER, wall_time REAL, rx_time REAL NOT NULL,
    spo2 REAL, pr REAL, pi REAL, quality TEXT, flags TEXT
);
CREATE INDEX vitals_boot ON vitals(device, boot, epoch, t_ms);
CREATE TABLE nibp (
    raw_id INTEGER PRIMARY KEY REFERENCES raw_lines(id),
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    t_ms INTEGER, wall_time REAL, rx_time REAL NOT NULL,
    sys REAL, dia REAL, map REAL, pr REAL, age_s REAL
);
CREATE INDEX nibp_boot ON nibp(device, boot, epoch, t_ms);
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    raw_id INTEGER REFERENCES raw_lines(id),
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    t_ms INTEGER NOT NULL, wall_time REAL, rx_time REAL NOT NULL,
    condition TEXT NOT NULL, priority TEXT, state TEXT, event TEXT NOT NULL,
    value REAL, limit_value REAL,
    source TEXT NOT NULL,            -- live, log (flash alarm log) or live+log
    log_n INTEGER,
    UNIQUE (device, boot, epoch, t_ms, condition, event)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    raw_id INTEGER REFERENCES raw_lines(id),
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    t_ms INTEGER NOT NULL, wall_time REAL, rx_time REAL NOT NULL,
    type TEXT NOT NULL,              -- button, setting, audio_off, fault, selftest, ...
    key TEXT NOT NULL,               -- what tells two events of a type at one instant apart
    by TEXT,                         -- operator, where the device reports one
    summary TEXT NOT NULL,           -- one readable line
    fields TEXT NOT NULL,            -- the message or log record fields (JSON)
    source TEXT NOT NULL,
    log_name TEXT, log_n INTEGER,
    UNIQUE (device, boot, epoch, t_ms, type, key)
);
CREATE TABLE settings_changes (
    id INTEGER PRIMARY KEY,
    raw_id INTEGER REFERENCES raw_lines(id),
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    t_ms INTEGER NOT NULL, wall_time REAL, rx_time REAL NOT NULL,
    name TEXT NOT NULL, old TEXT, value TEXT,  -- JSON values
    by TEXT,
    source TEXT NOT NULL,
    UNIQUE (device, boot, epoch, t_ms, name, value)
);
CREATE TABLE link_gaps (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    reason TEXT NOT NULL, rx_time REAL NOT NULL,
    UNIQUE (device, boot, epoch, first_seq, last_seq, reason)
);
"""


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run the statements of ``sql`` inside the open transaction (``executescript`` commits)."""
    stmt = ""
    for line in sql.splitlines(keepends=True):
        stmt += line
        if sqlite3.complete_statement(stmt):
            conn.execute(stmt)
            stmt = ""
    if stmt.strip():
        raise ValueError(f"incomplete SQL statement: {stmt.strip()[:60]}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        ALTER TABLE raw_lines ADD COLUMN wall_time REAL;
        ALTER TABLE raw_lines ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE vitals ADD COLUMN spo2_age_s REAL;
        ALTER TABLE vitals ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE alarms ADD COLUMN kind TEXT;
        ALTER TABLE alarms ADD COLUMN pause_s REAL;
        CREATE INDEX raw_lines_boot0 ON raw_lines(device, seq) WHERE boot = 0;
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'boot',   -- the infusion-session work adds kinds
            device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
            started REAL NOT NULL, ended REAL NOT NULL,   -- host receive times
            label TEXT,
            UNIQUE (kind, device, boot, epoch)
        );
        INSERT INTO sessions (kind, device, boot, epoch, started, ended)
            SELECT 'boot', device, boot, epoch, first_rx, last_rx FROM boots
            ORDER BY first_rx, device, boot, epoch;
        """,
    )
    # The wall time of v1 rows is recoverable where the boot's time mapping is known.
    conn.execute(
        "UPDATE raw_lines SET wall_time = (SELECT b.t0_wall + json_extract(raw_lines.line,"
        " '$.t_ms') / 1000.0 FROM boots b WHERE b.device = raw_lines.device AND"
        " b.boot = raw_lines.boot AND b.epoch = raw_lines.epoch) WHERE json_valid(line)"
    )
    conn.execute(
        "UPDATE alarms SET kind = (SELECT json_extract(r.line, '$.kind') FROM raw_lines r"
        " WHERE r.id = alarms.raw_id AND json_valid(r.line)) WHERE raw_id IS NOT NULL"
    )


def _migrate_audit(conn: sqlite3.Connection) -> None:
    """The audit table (issue 14): every authenticated command the device accepted or refused,
    with the operator (`by`) and the reason, from the live `command` message and the flash
    event log's `command` record (one row for both: same device, boot and uptime)."""
    _script(
        conn,
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
            t_ms INTEGER NOT NULL, wall_time REAL, rx_time REAL NOT NULL,
            cmd TEXT NOT NULL, by_name TEXT NOT NULL, ok INTEGER NOT NULL, reason TEXT NOT NULL,
            confirm INTEGER NOT NULL DEFAULT 0, more INTEGER NOT NULL DEFAULT 0,
            source TEXT NOT NULL,   -- 'live' or 'log' (whichever came first)
            UNIQUE (device, boot, epoch, t_ms, cmd, ok, by_name, reason)
        );
        """,
    )


def _create_v1(conn: sqlite3.Connection) -> None:
    _script(conn, _V1)


def _migrate_mqtt_outbox(conn: sqlite3.Connection) -> None:
    """The MQTT gateway's outbox (docs/mqtt.md): QoS 1 publications not yet acknowledged by
    the broker, in (boot, seq) order; a row is deleted on its PUBACK."""
    _script(
        conn,
        """
        CREATE TABLE mqtt_outbox (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,            -- the device seq (a gap: its first seq)
            topic TEXT NOT NULL,
            payload BLOB NOT NULL,
            created REAL NOT NULL            -- host time the row was written
        );
        CREATE INDEX mqtt_outbox_key ON mqtt_outbox(device, boot, seq);
        """,
    )


def _migrate_station(conn: sqlite3.Connection) -> None:
    """The central station's audit trail (docs/station.md): audio off/on with the named user,
    audio pauses; append-only."""
    _script(
        conn,
        """
        CREATE TABLE station_audit (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,              -- UTC epoch seconds (station clock)
            user TEXT NOT NULL,              -- the named user ('' only for automatic entries)
            action TEXT NOT NULL,            -- audio_off, audio_on, audio_pause, start, stop
            detail TEXT,                     -- reason or context (JSON or text)
            station TEXT                     -- which station process (host:port)
        );
        """,
    )


def _migrate_infusion_sessions(conn: sqlite3.Connection) -> None:
    """Infusion sessions (issue 11): sessions of kind 'infusion' and their tables
    (bedside_host.session_records)."""
    _script(conn, session_records.SCHEMA)


# MIGRATIONS[i] takes a file from user_version i to i + 1.
MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (
    _create_v1,
    _migrate_1_to_2,
    _migrate_mqtt_outbox,
    _migrate_station,
    _migrate_audit,
    _migrate_infusion_sessions,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Upgrade the open file to ``target``, one transaction per step; returns the old version."""
    old = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if old > SCHEMA_VERSION:
        raise StoreError(
            f"record file schema version {old} is newer than this program ({SCHEMA_VERSION})"
        )
    for version in range(old, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return old


# --- values -----------------------------------------------------------------------------------


def _int(x: Any) -> int | None:
    if isinstance(x, bool) or not isinstance(x, int) or not -_INT_MAX < x < _INT_MAX:
        return None
    return x


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _text(x: Any, limit: int = 200) -> str | None:
    if x is None:
        return None
    s = x if isinstance(x, str) else json.dumps(x, sort_keys=True)
    return s[:limit]


def _json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"))


_ENVELOPE = ("v", "seq", "boot", "type", "t_ms")
_LOG_EVENT_TYPES = {"audio_on": "audio_off"}  # flash event-log names -> message type


def _fields(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k not in _ENVELOPE}


def _event_key_summary(etype: str, f: Mapping[str, Any]) -> tuple[str, str]:
    """(key, summary) of an event: the key tells two events of one type at one instant apart."""
    if etype == "button":
        return str(f.get("button")), f"key {f.get('button')} ({f.get('affected')} affected)"
    if etype == "setting":
        by = f.get("by")
        who = f" by {by}" if by else ""
        return (
            f"{f.get('name')}={_json(f.get('value'))}",
            f"setting {f.get('name')}: {_json(f.get('old'))} -> {_json(f.get('value'))}{who}",
        )
    if etype == "audio_off":
        on = f.get("on")
        return str(on), f"AUDIO OFF {'on' if on else 'ended'}" + (
            f" ({f.get('reason')})" if f.get("reason") else ""
        )
    if etype == "fault":
        return str(f.get("where")), f"fault in {f.get('where')}: {f.get('error')}"
    if etype == "selftest":
        return str(f.get("step")), f"self-test {f.get('step')} ({f.get('by')})"
    if etype == "nibp_state":
        extra = f.get("message") or f.get("reason") or ""
        return str(f.get("state")), f"NIBP {f.get('state')}" + (f": {extra}" if extra else "")
    if etype == "hello":
        return "", f"device start: fw {f.get('fw')}, reset {f.get('reset_cause')}"
    if etype == "boot":
        return "", "device boot (flash event log)"
    return _json(f)[:200], f"{etype} {_json(f)[:160]}"


# --- rows returned by queries ----------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    id: int
    kind: str
    device: str
    boot: int
    epoch: int
    started: float
    ended: float
    label: str | None
    messages: int


@dataclass(frozen=True)
class RawLine:
    device: str
    boot: int
    epoch: int
    seq: int | None
    rx_time: float
    wall_time: float | None
    replayed: bool
    line: str


@dataclass
class StoreStats:
    added: int = 0
    stored: int = 0
    duplicates: int = 0
    gaps: int = 0
    commits: int = 0
    derive_errors: int = 0


@dataclass
class _Run:
    """Where a boot-0 device's current run stands (host-numbered epochs)."""

    epoch: int
    last_seq: int
    last_t_ms: int


class Store:
    """The record file. ``add`` items from the link; ``flush``/``close`` commit them."""

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        batch_items: int = BATCH_ITEMS,
        batch_ms: float = BATCH_MS,
        clock: Callable[[], float] = time.monotonic,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"no record file {self.path}")
        self.batch_items = max(1, batch_items)
        self.batch_ms = batch_ms
        self._clock = clock
        self._buf: list[Item] = []
        self._first_buffered = 0.0
        self.stats = StoreStats()
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            migrate(self.conn)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: not a record file ({e})") from None
        self._known_boots: set[tuple[str, int, int]] = set()
        self._known_devices: set[str] = set()
        self._t0: dict[tuple[str, int, int], float | None] = {}
        self._runs: dict[str, _Run] = {}
        self._closed = False

    # --- writing ------------------------------------------------------------------------------
    def add(self, item: Item) -> None:
        """Buffer one item; commits when the batch is full or old enough."""
        if not self._buf:
            self._first_buffered = self._clock()
        self._buf.append(item)
        self.stats.added += 1
        if len(self._buf) >= self.batch_items:
            self.flush()
        else:
            self.maybe_flush()

    def maybe_flush(self) -> bool:
        """Commit if the oldest buffered item waited ``batch_ms``; call this when idle."""
        if self._buf and (self._clock() - self._first_buffered) * 1000.0 >= self.batch_ms:
            self.flush()
            return True
        return False

    @property
    def pending(self) -> int:
        return len(self._buf)

    def flush(self) -> None:
        """Write every buffered item in one transaction. If the file cannot be written (disk
        full, locked by another program for longer than the busy timeout) the items stay
        buffered for the next flush and StoreError says why."""
        if not self._buf:
            return
        try:
            self._flush()
        except sqlite3.Error as e:
            raise StoreError(
                f"cannot write {self.path}: {e}; {len(self._buf)} items kept to retry"
            ) from e

    def _flush(self) -> None:
        items, self._buf = self._buf, []
        runs = {k: _Run(r.epoch, r.last_seq, r.last_t_ms) for k, r in self._runs.items()}
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._buf = items + self._buf
            raise
        try:
            touched: dict[tuple[str, int, int], tuple[float, float, int | None]] = {}
            for item in items:
                if getattr(item, "line", None) is None:
                    self._add_gap(item)  # type: ignore[arg-type]
                else:
                    self._add_received(item, touched)  # type: ignore[arg-type]
            self._touch(touched)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._runs = runs
            self._buf = items + self._buf  # nothing lost: the next flush tries again
            self._known_boots.clear()
            self._known_devices.clear()
            self._t0.clear()
            raise
        self.stats.commits += 1

    def close(self) -> None:
        """Commit what is buffered and close (StoreError if that commit fails)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one item ---------------------------------------------------------------------------
    def _epoch(
        self,
        device: str,
        boot: int,
        seq: int | None,
        t_ms: int | None,
        line: str,
        replayed: bool,
        rx: float,
    ) -> int:
        """The run a message belongs to: always 0 except for boot 0 (see the module doc)."""
        if boot != 0 or seq is None:
            return 0
        run = self._runs.get(device)
        if run is None:
            row = self.conn.execute(
                "SELECT epoch, seq, json_extract(line, '$.t_ms') FROM raw_lines"
                " WHERE device = ? AND boot = 0 AND seq IS NOT NULL"
                " ORDER BY epoch DESC, seq DESC LIMIT 1",
                (device,),
            ).fetchone()
            run = _Run(0, 0, -1) if row is None else _Run(row[0], row[1], _int(row[2]) or 0)
            self._runs[device] = run
        # A duplicate: the same line in the current run (a replay), or the very same delivery
        # (line and receive time) of an older run. Another run's identical line (a hello at
        # the same uptime after a restart) is not one.
        same = self.conn.execute(
            "SELECT epoch FROM raw_lines WHERE device = ? AND boot = 0 AND seq = ? AND line = ?"
            " AND (epoch = ? OR rx_time = ?) LIMIT 1",
            (device, seq, line, run.epoch, rx),
        ).fetchone()
        if same is not None:
            return int(same[0])  # the insert will be ignored
        if seq <= run.last_seq:
            taken = self.conn.execute(
                "SELECT 1 FROM raw_lines WHERE device = ? AND boot = 0 AND epoch = ? AND seq = ?",
                (device, run.epoch, seq),
            ).fetchone()
            if not replayed or taken is not None:
                # a live seq that went back, or a seq taken by another line: a restart
                run.epoch += 1
                run.last_seq, run.last_t_ms = seq, t_ms if t_ms is not None else -1
            return run.epoch  # (else: a replayed line filling a hole of this run)
        if t_ms is not None and 0 <= t_ms < run.last_t_ms and not replayed:
            run.epoch += 1  # uptime went back: the device restarted
        run.last_seq = seq
        if t_ms is not None:
            run.last_t_ms = t_ms
        return run.epoch

    def _add_received(
        self,
        item: ReceivedItem,
        touched: dict[tuple[str, int, int], tuple[float, float, int | None]],
    ) -> None:
        m = item.msg
        device = item.port
        boot = _int(m.get("boot"))
        boot = 0 if boot is None or boot < 0 else boot
        seq = _int(m.get("seq"))
        t_ms = _int(m.get("t_ms"))
        rx = float(item.rx_time)
        wall = _num(item.wall_time)
        replayed = bool(item.replayed)
        epoch = self._epoch(device, boot, seq, t_ms, item.line, replayed, rx)
        if seq is None:
            cur = self.conn.execute(
                "INSERT INTO raw_lines (device, boot, epoch, seq, rx_time, wall_time, replayed,"
                " line) VALUES (?, ?, ?, NULL, ?, ?, ?, ?)"
                " ON CONFLICT (device, rx_time, line) WHERE seq IS NULL DO NOTHING",
                (device, boot, epoch, rx, wall, replayed, item.line),
            )
        else:
            cur = self.conn.execute(
                "INSERT INTO raw_lines (device, boot, epoch, seq, rx_time, wall_time, replayed,"
                " line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (device, boot, epoch, seq) DO NOTHING",
                (device, boot, epoch, seq, rx, wall, replayed, item.line),
            )
        if cur.rowcount != 1:
            self.stats.duplicates += 1
            return
        self.stats.stored += 1
        raw_id = cur.lastrowid
        key = (device, boot, epoch)
        self._ensure_boot(key, rx)
        prev = touched.get(key)
        last_seq = seq if seq is not None and not replayed else None
        if prev is None:
            touched[key] = (rx, rx, last_seq)
        else:
            ps = prev[2]
            if ps is not None and (last_seq is None or ps > last_seq):
                last_seq = ps
            touched[key] = (min(prev[0], rx), max(prev[1], rx), last_seq)
        is_log = m.get("type") == "log"  # its wall time is the record's, not the line's
        if wall is not None and t_ms is not None and not is_log and self._t0.get(key) is None:
            self._t0[key] = wall - t_ms / 1000.0
            self.conn.execute(
                "UPDATE boots SET t0_wall = ? WHERE device = ? AND boot = ? AND epoch = ?"
                " AND t0_wall IS NULL",
                (self._t0[key], *key),
            )
        try:
            self._derive(m, raw_id, key, t_ms, wall, rx, replayed)
        except (TypeError, ValueError, OverflowError, sqlite3.InterfaceError):
            self.stats.derive_errors += 1  # the raw line is kept; the clinic row is not

    def _ensure_boot(self, key: tuple[str, int, int], rx: float) -> None:
        if key in self._known_boots:
            return
        device = key[0]
        if device not in self._known_devices:
            self.conn.execute(
                "INSERT INTO devices (key, first_rx, last_rx) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (device, rx, rx),
            )
            self._known_devices.add(device)
        self.conn.execute(
            "INSERT INTO boots (device, boot, epoch, first_rx, last_rx) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (device, boot, epoch) DO NOTHING",
            (*key, rx, rx),
        )
        self.conn.execute(
            "INSERT INTO sessions (kind, device, boot, epoch, started, ended)"
            " VALUES ('boot', ?, ?, ?, ?, ?) ON CONFLICT (kind, device, boot, epoch) DO NOTHING",
            (*key, rx, rx),
        )
        row = self.conn.execute(
            "SELECT t0_wall FROM boots WHERE device = ? AND boot = ? AND epoch = ?", key
        ).fetchone()
        self._t0[key] = row[0] if row else None
        self._known_boots.add(key)

    def _touch(self, touched: dict[tuple[str, int, int], tuple[float, float, int | None]]) -> None:
        for (device, boot, epoch), (first, last, last_seq) in touched.items():
            self.conn.execute(
                "UPDATE boots SET first_rx = min(first_rx, ?), last_rx = max(last_rx, ?),"
                " last_seq = max(coalesce(last_seq, 0), coalesce(?, 0))"
                " WHERE device = ? AND boot = ? AND epoch = ?",
                (first, last, last_seq, device, boot, epoch),
            )
            self.conn.execute(
                "UPDATE sessions SET started = min(started, ?), ended = max(ended, ?)"
                " WHERE kind = 'boot' AND device = ? AND boot = ? AND epoch = ?",
                (first, last, device, boot, epoch),
            )
            self.conn.execute(
                "UPDATE devices SET first_rx = min(first_rx, ?), last_rx = max(last_rx, ?)"
                " WHERE key = ?",
                (first, last, device),
            )
            session_records.touch_open(self.conn, device, last)

    def _derive(
        self,
        m: Mapping[str, Any],
        raw_id: int | None,
        key: tuple[str, int, int],
        t_ms: int | None,
        wall: float | None,
        rx: float,
        replayed: bool,
    ) -> None:
        mtype = m.get("type")
        ex = self.conn.execute
        if mtype == "oxi":
            flags = m.get("flags")
            flag_text = ",".join(str(f) for f in flags) if isinstance(flags, list) else None
            ex(
                "INSERT INTO vitals (raw_id, device, boot, epoch, t_ms, wall_time, rx_time, spo2,"
                " pr, pi, quality, flags, spo2_age_s, replayed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    raw_id,
                    *key,
                    t_ms,
                    wall,
                    rx,
                    _num(m.get("spo2")),
                    _num(m.get("pr")),
                    _num(m.get("pi")),
                    _text(m.get("quality")),
                    flag_text,
                    _num(m.get("spo2_age_s")),
                    replayed,
                ),
            )
        elif mtype == "nibp":
            ex(
                "INSERT INTO nibp (raw_id, device, boot, epoch, t_ms, wall_time, rx_time, sys,"
                " dia, map, pr, age_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    raw_id,
                    *key,
                    t_ms,
                    wall,
                    rx,
                    _num(m.get("sys")),
                    _num(m.get("dia")),
                    _num(m.get("map")),
                    _num(m.get("pr")),
                    _num(m.get("age_s")),
                ),
            )
        elif mtype == "alarm":
            if t_ms is not None:
                self._alarm(m, raw_id, key, t_ms, wall, rx, "live", None)
        elif mtype == "log":
            self._log_record(m, raw_id, key[0], rx, wall)
        elif mtype == "session":
            session_records.derive(self.conn, m, raw_id, key, t_ms, wall, rx)
        elif mtype in ("button", "setting", "audio_off", "fault", "selftest", "nibp_state"):
            if t_ms is not None:
                self._event(str(mtype), _fields(m), raw_id, key, t_ms, wall, rx, "live", None)
                if mtype == "setting":
                    self._setting(m, raw_id, key, t_ms, wall, rx, "live")
        elif mtype == "command":
            if t_ms is not None:
                self._audit(m, key, t_ms, wall, rx, "live")
        elif mtype == "hello":
            f = _fields(m)
            ex(
                "UPDATE boots SET fw = ?, reset_cause = ?, hello = ?"
                " WHERE device = ? AND boot = ? AND epoch = ?",
                (_text(f.get("fw")), _text(f.get("reset_cause")), _json(f), *key),
            )
            ex("UPDATE devices SET fw = ? WHERE key = ?", (_text(f.get("fw")), key[0]))
            if t_ms is not None and f.get("id") is None:  # a start, not an answer to `hello`
                self._event("hello", f, raw_id, key, t_ms, wall, rx, "live", None)

    def _other_source(
        self,
        table: str,
        match: str,
        args: tuple[Any, ...],
        key: tuple[str, int, int],
        t_ms: int,
        source: str,
    ) -> int | None:
        """The row of the same event from the other source (live line or flash-log record):
        the device stamps both with the same uptime; MERGE_MS allows for a later firmware that
        writes the log a tick after the message."""
        row = self.conn.execute(
            f"SELECT id FROM {table} WHERE device = ? AND boot = ? AND epoch = ?"
            f" AND t_ms BETWEEN ? AND ? AND {match} AND source != ? ORDER BY abs(t_ms - ?)"
            " LIMIT 1",
            (*key, t_ms - MERGE_MS, t_ms + MERGE_MS, *args, source, t_ms),
        ).fetchone()
        return None if row is None else int(row[0])

    def _alarm(
        self,
        f: Mapping[str, Any],
        raw_id: int | None,
        key: tuple[str, int, int],
        t_ms: int,
        wall: float | None,
        rx: float,
        source: str,
        log_n: int | None,
    ) -> None:
        cond, event = f.get("condition"), f.get("event")
        if not isinstance(cond, str) or not isinstance(event, str):
            return
        same = self._other_source(
            "alarms", "condition = ? AND event = ?", (cond[:64], event[:32]), key, t_ms, source
        )
        if same is not None:
            self.conn.execute(
                "UPDATE alarms SET source = 'live+log', raw_id = coalesce(raw_id, ?),"
                " wall_time = coalesce(wall_time, ?), log_n = coalesce(log_n, ?),"
                " kind = coalesce(kind, ?), pause_s = coalesce(pause_s, ?) WHERE id = ?",
                (raw_id, wall, log_n, _text(f.get("kind")), _num(f.get("pause_s")), same),
            )
            return
        self.conn.execute(
            "INSERT INTO alarms (raw_id, device, boot, epoch, t_ms, wall_time, rx_time, condition,"
            " priority, state, event, value, limit_value, source, log_n, kind, pause_s)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device, boot, epoch, t_ms, condition, event) DO UPDATE SET"
            " source = CASE WHEN source = excluded.source THEN source ELSE 'live+log' END,"
            " raw_id = coalesce(raw_id, excluded.raw_id),"
            " wall_time = coalesce(wall_time, excluded.wall_time),"
            " log_n = coalesce(log_n, excluded.log_n), kind = coalesce(kind, excluded.kind),"
            " pause_s = coalesce(pause_s, excluded.pause_s)",
            (
                raw_id,
                *key,
                t_ms,
                wall,
                rx,
                cond[:64],
                _text(f.get("priority")),
                _text(f.get("state")),
                event[:32],
                _num(f.get("value")),
                _num(f.get("limit")),
                source,
                log_n,
                _text(f.get("kind")),
                _num(f.get("pause_s")),
            ),
        )

    def _event(
        self,
        etype: str,
        f: Mapping[str, Any],
        raw_id: int | None,
        key: tuple[str, int, int],
        t_ms: int,
        wall: float | None,
        rx: float,
        source: str,
        log: tuple[str, int] | None,
    ) -> None:
        ekey, summary = _event_key_summary(etype, f)
        same = self._other_source(
            "events", "type = ? AND key = ?", (etype[:32], ekey[:200]), key, t_ms, source
        )
        if same is not None:
            self.conn.execute(
                "UPDATE events SET source = 'live+log', raw_id = coalesce(raw_id, ?),"
                " wall_time = coalesce(wall_time, ?), by = coalesce(by, ?),"
                " log_name = coalesce(log_name, ?), log_n = coalesce(log_n, ?) WHERE id = ?",
                (
                    raw_id,
                    wall,
                    _text(f.get("by"), 64),
                    log[0] if log else None,
                    log[1] if log else None,
                    same,
                ),
            )
            return
        self.conn.execute(
            "INSERT INTO events (raw_id, device, boot, epoch, t_ms, wall_time, rx_time, type,"
            " key, by, summary, fields, source, log_name, log_n)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device, boot, epoch, t_ms, type, key) DO UPDATE SET"
            " source = CASE WHEN source = excluded.source THEN source ELSE 'live+log' END,"
            " raw_id = coalesce(raw_id, excluded.raw_id), by = coalesce(by, excluded.by),"
            " wall_time = coalesce(wall_time, excluded.wall_time),"
            " log_name = coalesce(log_name, excluded.log_name),"
            " log_n = coalesce(log_n, excluded.log_n)",
            (
                raw_id,
                *key,
                t_ms,
                wall,
                rx,
                etype[:32],
                ekey[:200],
                _text(f.get("by"), 64),
                summary[:300],
                _json(f),
                source,
                log[0] if log else None,
                log[1] if log else None,
            ),
        )

    def _setting(
        self,
        f: Mapping[str, Any],
        raw_id: int | None,
        key: tuple[str, int, int],
        t_ms: int,
        wall: float | None,
        rx: float,
        source: str,
    ) -> None:
        name = f.get("name")
        if not isinstance(name, str):
            return
        value = _json(f.get("value"))
        same = self._other_source(
            "settings_changes", "name = ? AND value = ?", (name[:64], value), key, t_ms, source
        )
        if same is not None:
            self.conn.execute(
                "UPDATE settings_changes SET source = 'live+log', raw_id = coalesce(raw_id, ?),"
                " wall_time = coalesce(wall_time, ?), by = coalesce(by, ?) WHERE id = ?",
                (raw_id, wall, _text(f.get("by"), 64), same),
            )
            return
        self.conn.execute(
            "INSERT INTO settings_changes (raw_id, device, boot, epoch, t_ms, wall_time, rx_time,"
            " name, old, value, by, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device, boot, epoch, t_ms, name, value) DO UPDATE SET"
            " source = CASE WHEN source = excluded.source THEN source ELSE 'live+log' END,"
            " raw_id = coalesce(raw_id, excluded.raw_id), by = coalesce(by, excluded.by),"
            " wall_time = coalesce(wall_time, excluded.wall_time)",
            (
                raw_id,
                *key,
                t_ms,
                wall,
                rx,
                name[:64],
                _json(f.get("old")),
                value,
                _text(f.get("by"), 64),
                source,
            ),
        )

    def _log_record(
        self, m: Mapping[str, Any], raw_id: int | None, device: str, rx: float, wall: float | None
    ) -> None:
        """A flash-log record: attributed to the boot it was written in, merged with live rows."""
        rec = m.get("rec")
        log_name = m.get("log")
        if not isinstance(rec, dict) or log_name not in ("alarm", "event"):
            return
        n, b, u = _int(rec.get("n")), _int(rec.get("b")), _int(rec.get("u"))
        if n is None or b is None or u is None or b < 0 or u < 0:
            return
        key = (device, b, 0)
        self._ensure_boot(key, rx)
        t0 = self._t0.get(key)
        if wall is None and t0 is not None:
            wall = t0 + u / 1000.0
        fields = {k: v for k, v in rec.items() if k not in ("n", "b", "u")}
        if log_name == "alarm" and "condition" in rec:
            self._alarm(rec, raw_id, key, u, wall, rx, "log", n)
            return
        etype = rec.get("event")
        etype = _LOG_EVENT_TYPES.get(str(etype), str(etype))
        if rec.get("event") == "audio_on":
            fields["on"] = False
        elif rec.get("event") == "audio_off":
            fields["on"] = True
        self._event(etype, fields, raw_id, key, u, wall, rx, "log", (str(log_name), n))
        if etype == "command":
            self._audit(rec, key, u, wall, rx, "log")
        if etype == "setting":
            self._setting(rec, raw_id, key, u, wall, rx, "log")

    def _audit(
        self,
        m: Mapping[str, Any],
        key: tuple[str, int, int],
        t_ms: int,
        wall: float | None,
        rx: float,
        source: str,
    ) -> None:
        """One authenticated command, accepted or refused; the second source adds nothing."""
        more = _int(m.get("more"))
        self.conn.execute(
            "INSERT INTO audit (device, boot, epoch, t_ms, wall_time, rx_time, cmd, by_name, ok,"
            " reason, confirm, more, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (
                *key,
                t_ms,
                wall,
                rx,
                str(m.get("cmd"))[:32],
                _text(m.get("by")) or "",
                m.get("ok") is True,
                _text(m.get("reason")) or "",
                m.get("confirm") is True,
                more if more is not None else 0,
                source,
            ),
        )

    def _add_gap(self, g: GapItem) -> None:
        """Store the part of the gap the file does not already hold: a recorder restarted on
        this file reports as lost what it could not fetch, though an earlier run stored it;
        seqs already stored or already in a recorded gap are left out (no stretch is both
        stored and a gap, and no seq lies in two gaps)."""
        boot = int(g.boot)
        epoch = 0
        if boot == 0:
            run = self._runs.get(g.port)
            epoch = run.epoch if run is not None else 0
        self._ensure_boot((g.port, boot, epoch), float(g.rx_time))
        for first, last in self._missing(g.port, boot, epoch, int(g.first_seq), int(g.last_seq)):
            cur = self.conn.execute(
                "INSERT INTO link_gaps (device, boot, epoch, first_seq, last_seq, reason,"
                " rx_time) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (g.port, boot, epoch, first, last, str(g.reason), g.rx_time),
            )
            self.stats.gaps += cur.rowcount

    def _missing(
        self, device: str, boot: int, epoch: int, first: int, last: int
    ) -> list[tuple[int, int]]:
        """The stretches of seqs first..last (last -1: to the boot's unknown end) that are
        neither stored lines nor inside a recorded gap, as (first, last) with -1 kept."""
        hi = _INT_MAX if last < 0 else last
        held: list[tuple[int, int]] = [
            (f, _INT_MAX if e < 0 else e)
            for f, e in self.conn.execute(
                "SELECT first_seq, last_seq FROM link_gaps WHERE device = ? AND boot = ?"
                " AND epoch = ? AND first_seq <= ? AND (last_seq < 0 OR last_seq >= ?)",
                (device, boot, epoch, hi, first),
            )
        ]
        held += [
            (q, q)
            for (q,) in self.conn.execute(
                "SELECT seq FROM raw_lines WHERE device = ? AND boot = ? AND epoch = ?"
                " AND seq BETWEEN ? AND ?",
                (device, boot, epoch, first, hi),
            )
        ]
        out: list[tuple[int, int]] = []
        at = first
        for f, e in sorted(held):
            if f > at:
                out.append((at, f - 1))
            at = max(at, e + 1)
            if at > hi:
                break
        if at <= hi:
            out.append((at, last))
        return [(a, -1 if b >= _INT_MAX else b) for a, b in out]

    # --- queries (export, report) -------------------------------------------------------------
    def sessions(self) -> list[Session]:
        rows = self.conn.execute(
            "SELECT s.id, s.kind, s.device, s.boot, s.epoch, s.started, s.ended, s.label,"
            " CASE WHEN s.kind = 'infusion' THEN (SELECT count(*) FROM raw_lines r"
            "  WHERE r.device = s.device AND r.rx_time BETWEEN s.started AND s.ended)"
            " ELSE (SELECT count(*) FROM raw_lines r WHERE r.device = s.device"
            "  AND r.boot = s.boot AND r.epoch = s.epoch) END FROM sessions s ORDER BY s.id"
        ).fetchall()
        return [Session(*r) for r in rows]

    def session(self, sid: int) -> Session:
        for s in self.sessions():
            if s.id == sid:
                return s
        raise UnknownSession(f"no session {sid} in {self.path}")

    def _where(self, s: Session | None, alias: str = "") -> tuple[str, tuple[Any, ...]]:
        if s is None:
            return "1", ()
        p = f"{alias}." if alias else ""
        if s.kind == "infusion":  # every line of the device from open to close (any boot)
            return f"{p}device = ? AND {p}rx_time BETWEEN ? AND ?", (s.device, s.started, s.ended)
        return f"{p}device = ? AND {p}boot = ? AND {p}epoch = ?", (s.device, s.boot, s.epoch)

    def raw_lines(self, session: Session | None = None) -> Iterator[RawLine]:
        """Every stored line (of one session), by device, boot, run and seq."""
        where, args = self._where(session)
        for r in self.conn.execute(
            "SELECT device, boot, epoch, seq, rx_time, wall_time, replayed, line FROM raw_lines"
            f" WHERE {where} ORDER BY device, boot, epoch, seq IS NULL, seq, rx_time",
            args,
        ):
            yield RawLine(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7])

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def _table(self, table: str, cols: str, session: Session | None) -> list[dict[str, Any]]:
        where, args = self._where(session, "x")
        return self._rows(
            f"SELECT x.device, x.boot, x.epoch, x.t_ms,"
            f" coalesce(x.wall_time, b.t0_wall + x.t_ms / 1000.0) AS wall_time, x.rx_time, {cols}"
            f" FROM {table} x LEFT JOIN boots b ON b.device = x.device AND b.boot = x.boot"
            f" AND b.epoch = x.epoch WHERE {where} ORDER BY x.device, x.boot, x.epoch, x.t_ms,"
            " x.rx_time",
            args,
        )

    def vitals(self, session: Session | None = None) -> list[dict[str, Any]]:
        return self._table(
            "vitals", "x.spo2, x.pr, x.pi, x.spo2_age_s, x.quality, x.flags, x.replayed", session
        )

    def nibp(self, session: Session | None = None) -> list[dict[str, Any]]:
        return self._table("nibp", "x.sys, x.dia, x.map, x.pr, x.age_s", session)

    def alarms(self, session: Session | None = None) -> list[dict[str, Any]]:
        return self._table(
            "alarms",
            "x.condition, x.priority, x.state, x.event, x.kind, x.value,"
            ' x.limit_value AS "limit", x.pause_s, x.source, x.log_n',
            session,
        )

    def events(self, session: Session | None = None) -> list[dict[str, Any]]:
        return self._table(
            "events",
            "x.type, x.by, x.summary, x.fields, x.source, x.log_name, x.log_n",
            session,
        )

    def settings_changes(self, session: Session | None = None) -> list[dict[str, Any]]:
        return self._table("settings_changes", "x.name, x.old, x.value, x.by, x.source", session)

    def gaps(self, session: Session | None = None) -> list[dict[str, Any]]:
        where, args = self._where(session)
        return self._rows(
            "SELECT device, boot, epoch, first_seq, last_seq, reason, rx_time FROM link_gaps"
            f" WHERE {where} ORDER BY device, boot, epoch, first_seq",
            args,
        )

    def boot_info(self, session: Session) -> dict[str, Any]:
        if session.kind == "infusion":  # the boot the session was opened in
            rows = self._rows(
                "SELECT device, boot, epoch, first_rx, last_rx, last_seq, t0_wall, fw,"
                " reset_cause, hello FROM boots WHERE device = ? AND boot = ?"
                " ORDER BY epoch DESC LIMIT 1",
                (session.device, session.boot),
            )
            return rows[0] if rows else {}
        rows = self._rows(
            "SELECT device, boot, epoch, first_rx, last_rx, last_seq, t0_wall, fw, reset_cause,"
            " hello FROM boots WHERE device = ? AND boot = ? AND epoch = ?",
            (session.device, session.boot, session.epoch),
        )
        return rows[0] if rows else {}

    def counts(self) -> dict[str, int]:
        """Rows per table (for tests and status lines)."""
        out = {}
        for t in (
            "devices",
            "boots",
            "sessions",
            "raw_lines",
            "vitals",
            "nibp",
            "alarms",
            "events",
            "settings_changes",
            "link_gaps",
            *session_records.TABLES,
        ):
            out[t] = int(self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        return out
