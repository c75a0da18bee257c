"""The gateway's outbox: QoS 1 publications kept in SQLite until the broker acknowledges them.

The table ``mqtt_outbox`` is a migration of the record file (``store._migrate_mqtt_outbox``),
so with ``--db`` it lives in the gateway's own record file and survives a gateway restart;
without ``--db`` it is an in-memory database (it still survives any broker restart). A row
is written (committed) before it is published, and deleted on its PUBACK; after a reconnect
every row left is published again, in the order received.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bedside_host.store import BUSY_TIMEOUT_MS, StoreError, migrate


@dataclass(frozen=True)
class Row:
    id: int
    device: str
    boot: int
    seq: int
    topic: str
    payload: bytes


class Outbox:
    def __init__(
        self,
        path: str | Path | None,
        *,
        wall: Callable[[], float] = time.time,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self._wall = wall
        try:
            self.conn = sqlite3.connect(
                ":memory:" if path is None else str(path), isolation_level=None, timeout=0
            )
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if path is not None:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
            migrate(self.conn)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path}: not a record file ({e})") from None
        self._pending: list[tuple[str, int, int, str, bytes]] = []
        self._deleted: list[int] = []
        self._count = int(self.conn.execute("SELECT count(*) FROM mqtt_outbox").fetchone()[0])

    def add(self, device: str, boot: int, seq: int, topic: str, payload: bytes) -> None:
        """Buffered until :meth:`commit` (the caller commits before publishing)."""
        self._pending.append((device, boot, seq, topic, payload))

    def commit(self) -> list[Row]:
        """Write the buffered rows and apply the acknowledged deletions in one transaction;
        returns the new rows (with their ids) in order."""
        if not self._pending and not self._deleted:
            return []
        now = self._wall()
        pending, self._pending = self._pending, []
        deleted, self._deleted = self._deleted, []
        out = []
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")  # (a locked file: nothing is lost, see below)
            for device, boot, seq, topic, payload in pending:
                cur = c.execute(
                    "INSERT INTO mqtt_outbox (device, boot, seq, topic, payload, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (device, boot, seq, topic, payload, now),
                )
                assert cur.lastrowid is not None
                out.append(Row(cur.lastrowid, device, boot, seq, topic, payload))
            gone = 0
            for i in deleted:
                gone += c.execute("DELETE FROM mqtt_outbox WHERE id = ?", (i,)).rowcount
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            self._pending = pending + self._pending
            self._deleted = deleted + self._deleted
            raise
        self._count += len(out) - gone
        return out

    @property
    def pending(self) -> int:
        """Rows written by add() and not yet committed."""
        return len(self._pending)

    def acked(self, row_id: int) -> None:
        self._deleted.append(row_id)

    def rows(self) -> list[Row]:
        """Every row not yet acknowledged, in the order they were received (for one boot that
        is seq order; a device without a flash store starts its seq at 1 again)."""
        return [
            Row(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], bytes(r[5]))
            for r in self.conn.execute(
                "SELECT id, device, boot, seq, topic, payload FROM mqtt_outbox ORDER BY id"
            )
        ]

    def __len__(self) -> int:
        """Rows not yet acknowledged (readable from any thread: no SQL)."""
        return self._count + len(self._pending)

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.conn.close()
