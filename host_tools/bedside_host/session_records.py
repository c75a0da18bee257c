"""Infusion-session records in the record file (store layer): schema, derivation from device
``session`` messages, the host's step rows, and the queries the report and services read.

An infusion session is a row of ``sessions`` with ``kind = 'infusion'`` (so ``bedside report
--session ID`` and the export list it beside the boot sessions); for that kind ``boot`` is the
device boot at open and ``epoch`` the host's infusion number (unique per file), and the
session's messages are the device's lines received from ``started`` to ``ended``. The details
live in ``infusions`` (one row per session: the device's session number, patient, course, phase,
baseline, last device state). Every host step (done, refused by the device, refused by the host
rules) is a ``session_steps`` row with who and when; the typed tables (screenings and their
answers, dose changes, O2, checks, discharge assessments, escorts) hold what the nurse entered.
Device ``session`` messages become ``session_events``. Nothing here is ever deleted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE infusions (
    session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
    device TEXT NOT NULL,
    dev_session INTEGER NOT NULL,    -- the device's session number (its flash counter)
    patient TEXT, course_day INTEGER, course_total INTEGER,
    phase TEXT NOT NULL,
    opened REAL NOT NULL, opened_by TEXT,
    closed REAL, closed_by TEXT,     -- NULL while open
    baseline TEXT,                   -- JSON {sys, dia, map, pr, spo2} as the device fixed it
    state TEXT,                      -- the device's last state object (JSON)
    state_rx REAL
);
CREATE INDEX infusions_device ON infusions(device, dev_session, closed);
CREATE TABLE session_events (
    raw_id INTEGER PRIMARY KEY REFERENCES raw_lines(id),
    session_id INTEGER REFERENCES sessions(id),
    device TEXT NOT NULL, boot INTEGER NOT NULL, epoch INTEGER NOT NULL,
    t_ms INTEGER, wall_time REAL, rx_time REAL NOT NULL,
    event TEXT NOT NULL, by TEXT, phase TEXT, state TEXT NOT NULL
);
CREATE INDEX session_events_session ON session_events(session_id, rx_time);
CREATE TABLE session_steps (
    id INTEGER PRIMARY KEY,
    session_id INTEGER REFERENCES sessions(id),  -- NULL: a refused open
    device TEXT NOT NULL,
    t REAL NOT NULL, by TEXT NOT NULL,
    op TEXT NOT NULL, args TEXT NOT NULL,        -- what was entered (JSON)
    outcome TEXT NOT NULL,                       -- done, refused, host_refused, no_answer
    error TEXT, phase_before TEXT, phase_after TEXT, note TEXT
);
CREATE INDEX session_steps_session ON session_steps(session_id, t);
CREATE TABLE screenings (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    step_id INTEGER REFERENCES session_steps(id),
    t REAL NOT NULL, by TEXT NOT NULL,
    bp_sys INTEGER, bp_dia INTEGER, note TEXT,
    findings TEXT NOT NULL,                      -- JSON list
    override_by TEXT, override_reason TEXT,
    passed INTEGER NOT NULL
);
CREATE TABLE screening_answers (
    screening_id INTEGER NOT NULL REFERENCES screenings(id),
    item TEXT NOT NULL, question TEXT NOT NULL, answer INTEGER NOT NULL,
    PRIMARY KEY (screening_id, item)
);
CREATE TABLE dose_changes (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    step_id INTEGER REFERENCES session_steps(id),
    t REAL NOT NULL, by TEXT NOT NULL,
    rate REAL NOT NULL, units TEXT NOT NULL, reason TEXT NOT NULL, note TEXT
);
CREATE TABLE o2_changes (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    step_id INTEGER REFERENCES session_steps(id),
    t REAL NOT NULL, by TEXT NOT NULL,
    on_o2 INTEGER NOT NULL, flow REAL
);
CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    step_id INTEGER REFERENCES session_steps(id),
    t REAL NOT NULL, by TEXT NOT NULL,
    scale TEXT NOT NULL, variant TEXT, score INTEGER,  -- score NULL: check done, no score
    rass INTEGER, dissociation TEXT, nausea TEXT, pain INTEGER, note TEXT
);
CREATE TABLE discharge_assessments (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    step_id INTEGER REFERENCES session_steps(id),
    t REAL NOT NULL, by TEXT NOT NULL,
    aldrete TEXT NOT NULL, aldrete_total INTEGER NOT NULL, aldrete_pass INTEGER NOT NULL,
    padss TEXT NOT NULL, padss_total INTEGER NOT NULL, padss_pass INTEGER NOT NULL,
    criteria TEXT NOT NULL,          -- JSON list of {name, ok, value, need, source}
    ready INTEGER NOT NULL           -- the device accepted: discharge ready
);
CREATE TABLE escorts (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    step_id INTEGER REFERENCES session_steps(id),
    t REAL NOT NULL, by TEXT NOT NULL,
    name TEXT NOT NULL, relationship TEXT NOT NULL,
    advice INTEGER NOT NULL, no_driving_h INTEGER NOT NULL
);
"""

TABLES = (
    "infusions",
    "session_events",
    "session_steps",
    "screenings",
    "screening_answers",
    "dose_changes",
    "o2_changes",
    "checks",
    "discharge_assessments",
    "escorts",
)


def _json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"))


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _str(x: Any, limit: int = 64) -> str | None:
    return x[:limit] if isinstance(x, str) else None


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection (the store's)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def note_state(
    conn: sqlite3.Connection,
    device: str,
    boot: int,
    state: Mapping[str, Any],
    event: str | None,
    by: str | None,
    rx: float,
) -> int | None:
    """Bring the session row of a device state object up to date (creating it at open);
    returns its ``sessions.id`` (None: the state is no session, e.g. idle). Idempotent: the
    reply and the ``session`` message of one op both come here."""
    dev_id = _int(state.get("id"))
    phase = _str(state.get("phase"), 32)
    if dev_id is None or phase is None:
        return None
    row = conn.execute(
        "SELECT session_id, patient FROM infusions WHERE device = ? AND dev_session = ?"
        " AND closed IS NULL ORDER BY opened DESC LIMIT 1",
        (device, dev_id),
    ).fetchone()
    patient = _str(state.get("patient"), 32)
    if row is not None and event == "open" and row[1] != patient:
        # the device's counter came round again (a wiped flash): the old row was abandoned
        conn.execute(
            "UPDATE infusions SET closed = ?, closed_by = '(superseded by a new open)'"
            " WHERE session_id = ?",
            (rx, row[0]),
        )
        row = None
    if row is None and event != "open":
        done = conn.execute(
            "SELECT session_id FROM infusions WHERE device = ? AND dev_session = ?"
            " AND closed IS NOT NULL AND patient IS ? ORDER BY opened DESC LIMIT 1",
            (device, dev_id, patient),
        ).fetchone()
        if done is not None:
            # a late line of a session already closed here (the reply of the close came
            # first): it belongs to that session and reopens nothing
            return int(done[0])
    if row is None:
        if phase in ("idle", "closed") and event != "open":
            return None  # a closed session the host never saw open: nothing to attach to
        epoch = conn.execute(
            "SELECT coalesce(max(epoch), 0) + 1 FROM sessions WHERE kind = 'infusion'"
        ).fetchone()[0]
        day, total = _int(state.get("course_day")), _int(state.get("course_total"))
        label = f"infusion {patient or '?'} day {day}/{total} (device session {dev_id})"
        cur = conn.execute(
            "INSERT INTO sessions (kind, device, boot, epoch, started, ended, label)"
            " VALUES ('infusion', ?, ?, ?, ?, ?, ?)",
            (device, boot, epoch, rx, rx, label),
        )
        sid = int(cur.lastrowid or 0)
        conn.execute(
            "INSERT INTO infusions (session_id, device, dev_session, patient, course_day,"
            " course_total, phase, opened, opened_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, device, dev_id, patient, day, total, phase, rx, by if event == "open" else None),
        )
    else:
        sid = int(row[0])
    baseline = state.get("baseline")
    conn.execute(
        "UPDATE infusions SET phase = ?, state = ?, state_rx = ?,"
        " baseline = coalesce(?, baseline) WHERE session_id = ? AND (state_rx IS NULL"
        " OR state_rx <= ?)",
        (
            phase,
            _json(dict(state)),
            rx,
            _json(baseline) if isinstance(baseline, dict) else None,
            sid,
            rx,
        ),
    )
    if phase == "closed":
        conn.execute(
            "UPDATE infusions SET closed = ?, closed_by = ? WHERE session_id = ?"
            " AND closed IS NULL",
            (rx, by, sid),
        )
    conn.execute("UPDATE sessions SET ended = max(ended, ?) WHERE id = ?", (rx, sid))
    return sid


def derive(
    conn: sqlite3.Connection,
    m: Mapping[str, Any],
    raw_id: int | None,
    key: tuple[str, int, int],
    t_ms: int | None,
    wall: float | None,
    rx: float,
) -> None:
    """A device ``session`` message (called by the store inside its write transaction)."""
    state = m.get("session")
    event = m.get("event")
    if not isinstance(state, dict) or not isinstance(event, str):
        return
    by = _str(m.get("by"))
    sid = note_state(conn, key[0], key[1], state, event, by, rx)
    conn.execute(
        "INSERT INTO session_events (raw_id, session_id, device, boot, epoch, t_ms, wall_time,"
        " rx_time, event, by, phase, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (raw_id, sid, *key, t_ms, wall, rx, event[:32], by, _str(state.get("phase"), 32),
         _json(state)),
    )  # fmt: skip


def touch_open(conn: sqlite3.Connection, device: str, last_rx: float) -> None:
    """An open infusion session of `device` lasts at least until its latest message."""
    conn.execute(
        "UPDATE sessions SET ended = max(ended, ?) WHERE kind = 'infusion' AND id IN"
        " (SELECT session_id FROM infusions WHERE device = ? AND closed IS NULL)",
        (last_rx, device),
    )


# --- host steps ------------------------------------------------------------------------------
def add_step(
    conn: sqlite3.Connection,
    *,
    session_id: int | None,
    device: str,
    t: float,
    by: str,
    op: str,
    args: Mapping[str, Any],
    outcome: str,
    error: str | None = None,
    phase_before: str | None = None,
    phase_after: str | None = None,
    note: str | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO session_steps (session_id, device, t, by, op, args, outcome, error,"
        " phase_before, phase_after, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, device, t, by, op, _json(dict(args)), outcome, error, phase_before,
         phase_after, note),
    )  # fmt: skip
    return int(cur.lastrowid or 0)


def add_row(conn: sqlite3.Connection, table: str, values: Mapping[str, Any]) -> int:
    """One row of a typed table (``table`` from TABLES; JSON for dict and list values)."""
    if table not in TABLES:
        raise ValueError(f"not a session table: {table}")
    cols = list(values)
    vals = [_json(v) if isinstance(v, dict | list) else v for v in values.values()]
    cur = conn.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals
    )
    return int(cur.lastrowid or 0)


# --- queries ---------------------------------------------------------------------------------
def rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def infusion(conn: sqlite3.Connection, sid: int) -> dict[str, Any] | None:
    got = rows(
        conn,
        "SELECT i.*, s.started, s.ended, s.label FROM infusions i JOIN sessions s"
        " ON s.id = i.session_id WHERE i.session_id = ?",
        (sid,),
    )
    return got[0] if got else None


def open_infusion(conn: sqlite3.Connection, device: str, dev_id: int) -> int | None:
    row = conn.execute(
        "SELECT session_id FROM infusions WHERE device = ? AND dev_session = ?"
        " AND closed IS NULL ORDER BY opened DESC LIMIT 1",
        (device, dev_id),
    ).fetchone()
    return None if row is None else int(row[0])


def last_infusion(conn: sqlite3.Connection, device: str) -> dict[str, Any] | None:
    got = rows(
        conn,
        "SELECT * FROM infusions WHERE device = ? ORDER BY opened DESC LIMIT 1",
        (device,),
    )
    return got[0] if got else None


def table(conn: sqlite3.Connection, name: str, sid: int) -> list[dict[str, Any]]:
    """The rows of one session table for session `sid`, oldest first."""
    if name not in TABLES or name in ("infusions", "screening_answers"):
        raise ValueError(f"not a per-session table: {name}")
    order = "rx_time" if name == "session_events" else "t"
    return rows(conn, f"SELECT * FROM {name} WHERE session_id = ? ORDER BY {order}, rowid", (sid,))


def screening_answers(conn: sqlite3.Connection, screening_id: int) -> list[dict[str, Any]]:
    return rows(
        conn,
        "SELECT item, question, answer FROM screening_answers WHERE screening_id = ?"
        " ORDER BY rowid",
        (screening_id,),
    )
