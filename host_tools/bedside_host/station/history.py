"""Trends and alarm history of one chair, and the station audit trail, from the record file.

Reads with its own short-lived SQLite connection (WAL: the recorder keeps writing meanwhile);
audit rows are appended the same way. Run these in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from bedside_host.store import migrate

MAX_POINTS = 1800  # per trend series (one screen width): longer windows are averaged down
BUSY_MS = 5000


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=BUSY_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    return conn


def ensure_schema(db: Path) -> None:
    """Create or upgrade the record file (the same migrations as the store)."""
    conn = _connect(db)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
    finally:
        conn.close()


def chair_history(
    db: Path, device: str, minutes: float, now: float | None = None
) -> dict[str, Any]:
    """SpO2/pulse trend (averaged into at most MAX_POINTS buckets), NIBP points and alarm
    events of `device` over the last `minutes`, oldest first. Times are UTC epoch seconds
    (the device's mapped wall time where known, else the host receive time)."""
    t1 = time.time() if now is None else now
    t0 = t1 - minutes * 60.0
    bucket = max(1.0, (t1 - t0) / MAX_POINTS)
    conn = _connect(db)
    try:
        vit = conn.execute(
            "SELECT min(t), avg(spo2), avg(pr) FROM (SELECT coalesce(wall_time, rx_time) AS t,"
            " spo2, pr FROM vitals WHERE device = ? AND rx_time >= ? AND replayed = 0)"
            " GROUP BY CAST((t - ?) / ? AS INTEGER) ORDER BY 1",
            (device, t0 - 60.0, t0, bucket),
        ).fetchall()
        nibp = conn.execute(
            "SELECT coalesce(wall_time, rx_time) - coalesce(age_s, 0), sys, dia, map, pr"
            " FROM nibp WHERE device = ? AND rx_time >= ? ORDER BY 1",
            (device, t0 - 60.0),
        ).fetchall()
        alarms = conn.execute(
            "SELECT coalesce(wall_time, rx_time), condition, priority, state, event, kind,"
            " value, limit_value FROM alarms WHERE device = ? AND rx_time >= ?"
            " ORDER BY 1 DESC LIMIT 500",
            (device, t0 - 60.0),
        ).fetchall()
    finally:
        conn.close()

    def r(x: Any) -> Any:
        return None if x is None else round(float(x), 1)

    return {
        "device": device,
        "from": t0,
        "to": t1,
        "bucket_s": bucket,
        "vitals": [{"t": v[0], "spo2": r(v[1]), "pr": r(v[2])} for v in vit if v[0] >= t0],
        "nibp": [
            {"t": n[0], "sys": n[1], "dia": n[2], "map": n[3], "pr": n[4]}
            for n in nibp
            if n[0] is not None and n[0] >= t0
        ],
        "alarms": [
            {
                "t": a[0],
                "condition": a[1],
                "priority": a[2],
                "state": a[3],
                "event": a[4],
                "kind": a[5],
                "value": a[6],
                "limit": a[7],
            }
            for a in alarms
        ],
    }


def audit(db: Path, user: str, action: str, detail: Any = None, station: str = "") -> int:
    """Append one audit row; returns its id."""
    text = None if detail is None else detail if isinstance(detail, str) else json.dumps(detail)
    conn = _connect(db)
    try:
        cur = conn.execute(
            "INSERT INTO station_audit (time, user, action, detail, station)"
            " VALUES (?, ?, ?, ?, ?)",
            (time.time(), user, action, text, station),
        )
        return int(cur.lastrowid or 0)
    finally:
        conn.close()


def audit_rows(db: Path, limit: int = 100) -> list[dict[str, Any]]:
    conn = _connect(db)
    try:
        rows = conn.execute(
            "SELECT id, time, user, action, detail, station FROM station_audit"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    finally:
        conn.close()
    keys = ("id", "time", "user", "action", "detail", "station")
    return [dict(zip(keys, row)) for row in rows]
