"""The MQTT gateway at a chair's PC: one device link, its raw record, and the broker.

Every item of the link client goes first to the record store (as ``bedside record`` does),
then to the broker on ``bedside/v1/<site>/<chair>/<leaf>`` (docs/mqtt.md). QoS 1 messages
(alarm, NIBP, session, events, gaps) are written to the outbox and committed before they
are published, and deleted on their PUBACK; after a reconnect (a new paho client) everything
left in the outbox is published again, followed by nothing older. Because a broker can
acknowledge a message and die before forwarding it, the QoS 1 messages acknowledged in the
last ``REPUBLISH_WINDOW_S`` before a lost connection go back into the outbox too: subscribers
deduplicate by (chair, boot, seq), so the result is every event exactly once downstream.

Retained per chair: ``status`` ("online"; the last will and a clean stop leave "offline") and
``state`` (link state, last hello, vitals, heartbeat with the active alarms, NIBP and
session), republished on change at most once a second and on every reconnect. The bedside
stays the primary alarm: this is a distributed alarm system without confirmed delivery.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bedside_host.mqtt import topics
from bedside_host.mqtt.connection import Connection, Will
from bedside_host.mqtt.outbox import Outbox, Row
from bedside_host.store import Item, Store, StoreError

POLL_S = 0.05
STATE_EVERY_S = 1.0  # the retained state at most this often
REPUBLISH_WINDOW_S = 30.0  # acknowledged QoS 1 messages published again after a reconnect
_STATE_TYPES = ("hello", "oxi", "heartbeat", "nibp", "session")


class LinkLike(Protocol):
    def poll(self, timeout: float = 0.0) -> Sequence[Item]: ...
    def close(self) -> None: ...


def default_gateway_id(site: str, chair: str) -> str:
    return f"{socket.gethostname()}-{site}-{chair}"[:64]


class Gateway:
    """Poll :meth:`step` (or :meth:`run`); :meth:`close` publishes "offline" and commits."""

    def __init__(
        self,
        link: LinkLike,
        connection_factory: Callable[[Will], Connection],
        *,
        site: str,
        chair: str,
        port: str,
        store: Store | None,
        outbox: Outbox,
        gw_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.site = topics.check_name("site", site)
        self.chair = topics.check_name("chair", chair)
        self.port = port
        self.link = link
        self.store = store
        self.outbox = outbox
        self.gw_id = gw_id or default_gateway_id(site, chair)
        self.status_topic = topics.topic(site, chair, topics.STATUS)
        self.state_topic = topics.topic(site, chair, topics.STATE)
        self.conn = connection_factory(Will(self.status_topic, b"offline", 1, True))
        self.stopping = False
        self.store_error = ""
        self.outbox_error = ""
        self.published = 0
        self.acked = 0
        self._clock = clock
        self._wall = wall
        self._gen = 0
        self._inflight: dict[tuple[int, int], Row] = {}
        self._recent: deque[tuple[float, Row]] = deque()
        self._down_since: float | None = None
        self._state: dict[str, Any] = {"gw": self.gw_id, "port": port, "online": True}
        self._state_dirty = True
        self._state_at = -1e9
        self._link_state = ""

    # --- one item -------------------------------------------------------------------------
    def _take(self, item: Item, qos0: list[tuple[str, bytes]]) -> None:
        if self.store is not None:
            try:
                self.store.add(item)
            except StoreError as e:
                self.store_error = str(e)
        line = getattr(item, "line", None)
        if line is None:  # a Gap
            g: Any = item
            payload = topics.gap_payload(
                self.gw_id, self.port, g.boot, g.first_seq, g.last_seq, g.reason, g.rx_time
            )
            t = topics.topic(self.site, self.chair, topics.GAP)
            self.outbox.add(self.port, int(g.boot), int(g.first_seq), t, payload)
            return
        r: Any = item
        msg = r.msg
        leaf = topics.leaf_of(msg)
        if leaf is None:
            return
        payload = topics.device_payload(
            self.gw_id, line, r.rx_time, r.wall_time, bool(r.replayed), self.port
        )
        t = topics.topic(self.site, self.chair, leaf)
        if topics.QOS[leaf] == 1:
            boot, seq = msg.get("boot"), msg.get("seq")
            self.outbox.add(
                self.port,
                boot if isinstance(boot, int) else 0,
                seq if isinstance(seq, int) else -1,
                t,
                payload,
            )
        else:
            qos0.append((t, payload))
        mtype = msg.get("type")
        if mtype in _STATE_TYPES and not r.replayed:
            self._state[str(mtype)] = msg
            self._state.setdefault("rx_of", {})[str(mtype)] = r.rx_time
            self._state["rx"] = r.rx_time
            self._state_dirty = True

    # --- the loop -------------------------------------------------------------------------
    def step(self, timeout: float = POLL_S) -> int:
        items = self.link.poll(timeout)
        qos0: list[tuple[str, bytes]] = []
        for item in items:
            self._take(item, qos0)
        self._drain_acks()
        new_rows = self._commit_outbox()  # durable before it is published
        if self.store is not None:
            try:
                self.store.maybe_flush()
            except StoreError as e:
                self.store_error = str(e)
        link_state = str(getattr(self.link, "state", ""))
        if link_state != self._link_state:
            self._link_state = link_state
            self._state["link"] = link_state
            self._state_dirty = True
        self.conn.step()
        now = self._clock()
        if not self.conn.connected:
            if self._down_since is None and self._gen:
                self._down_since = now
            return len(items)
        if self.conn.generation != self._gen:
            self._reconnected(now)  # publishes the whole outbox, new rows included
        else:
            for row in new_rows:
                self._publish_row(row)
        for t, p in qos0:
            if self.conn.publish(t, p, 0) is not None:
                self.published += 1
        if self._state_dirty and now - self._state_at >= STATE_EVERY_S:
            self._publish_state(now)
        return len(items)

    def _commit_outbox(self) -> list[Row]:
        """Commit the outbox; if the file cannot be written the rows stay buffered (and
        unpublished) for the next step, and the problem shows in the status line."""
        try:
            rows = self.outbox.commit()
        except sqlite3.Error as e:
            self.outbox_error = f"outbox: {e}; {self.outbox.pending} messages kept to retry"
            return []
        self.outbox_error = ""
        return rows

    def _publish_row(self, row: Row) -> None:
        mid = self.conn.publish(row.topic, row.payload, 1)
        if mid is not None:
            self._inflight[(self.conn.generation, mid)] = row
            self.published += 1

    def _reconnected(self, now: float) -> None:
        first = self._gen == 0
        self._gen = self.conn.generation
        self._inflight.clear()  # the old client's messages are never acknowledged now
        if not first:  # (a drop and reconnect between two steps: down since now)
            since = (now if self._down_since is None else self._down_since) - REPUBLISH_WINDOW_S
            for at, r in self._recent:
                if at >= since:
                    self.outbox.add(r.device, r.boot, r.seq, r.topic, r.payload)
        self._commit_outbox()  # (also deletes the rows acknowledged before the drop)
        self._recent.clear()
        self._down_since = None
        self.conn.publish(self.status_topic, b"online", 1, retain=True)
        self._publish_state(now)
        for row in self.outbox.rows():
            self._publish_row(row)

    def _drain_acks(self) -> None:
        now = self._clock()
        while True:
            try:
                key = self.conn.acks.get_nowait()
            except Exception:
                break
            row = self._inflight.pop(key, None)
            if row is None:
                continue  # a retained state or status message, or an old client's
            self.outbox.acked(row.id)
            self.acked += 1
            self._recent.append((now, row))
        while self._recent and now - self._recent[0][0] > REPUBLISH_WINDOW_S:
            self._recent.popleft()

    def _publish_state(self, now: float) -> None:
        st = dict(self._state)
        st["published"] = self._wall()
        if self.conn.publish(self.state_topic, topics.state_payload(st), 1, retain=True):
            self._state_dirty = False
            self._state_at = now

    def run(self, duration: float = 0.0) -> None:
        start = self._clock()
        while not self.stopping:
            self.step()
            if duration and self._clock() - start >= duration:
                break

    def close(self) -> None:
        """Close the link, publish "offline" (retained) and commit the record and outbox."""
        try:
            try:
                self.link.close()
            except OSError:
                pass
            self._drain_acks()
            self.conn.close((self.status_topic, b"offline", 1, True))
        finally:
            try:
                self.outbox.close()
            finally:
                if self.store is not None:
                    self.store.close()

    def status(self) -> str:
        state = "connected" if self.conn.connected else f"NOT CONNECTED ({self.conn.last_error})"
        errors = "; ".join(e for e in (self.store_error, self.outbox_error) if e)
        problem = f"; NOT WRITTEN YET: {errors}" if errors else ""
        return (
            f"{topics.chair_id(self.site, self.chair)}: broker {state}, link"
            f" {self._link_state or '?'}, {self.published} published, {self.acked} acknowledged,"
            f" {len(self.outbox)} waiting in the outbox{problem}"
        )
