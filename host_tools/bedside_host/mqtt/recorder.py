"""The recorder subscriber (``bedside record --mqtt URL [--site S] --db FILE``).

Every device line and gap of every chair goes into the record store as the gateway received
it (its receive time and wall time, the line verbatim), with the chair id ``<site>/<chair>``
as the device key; the store keeps each message once (``UNIQUE(device, boot, epoch, seq)``),
so the duplicates MQTT QoS 1 and the gateway's republishing produce are dropped there. A
persistent session (fixed client id, clean session off) has the broker keep QoS 1 messages
for the recorder while it is away.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

from bedside_host.link.messages import Gap, Received
from bedside_host.mqtt import topics
from bedside_host.mqtt.subscriber import Delivery, Subscriber
from bedside_host.store import Store, StoreError


def item_of(d: Delivery) -> Received | Gap | None:
    """The link-client item a delivery carries (None: status, state, or not a record)."""
    p = d.payload
    if d.leaf in (topics.STATUS, topics.STATE):
        return None
    if "gap" in p:
        g = p["gap"]
        return Gap(
            d.chair_id,
            int(g["boot"]),
            int(g["first_seq"]),
            int(g["last_seq"]),
            str(g.get("reason", "")),
            float(p.get("rx", d.rx_local)),
        )
    msg = p.get("msg")
    if not isinstance(msg, dict):
        return None
    wall = p.get("wall")
    return Received(
        d.chair_id,
        str(p["line"]),
        msg,
        float(p["rx"]),
        float(wall) if isinstance(wall, int | float) else None,
        bool(p.get("replayed", False)),
    )


class MqttRecorder:
    def __init__(
        self,
        store: Store,
        url: str,
        *,
        site: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.store = store
        self.queue: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self.sub = Subscriber(url, self.queue.put, site=site, client_id=client_id, persistent=True)
        self.stopping = False
        self.items = 0
        self.store_error = ""
        self.chairs: dict[str, str] = {}  # chair id -> last status

    def start(self) -> MqttRecorder:
        self.sub.start()
        return self

    def step(self, timeout: float = 0.05) -> int:
        n = 0
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            try:
                d = self.queue.get(timeout=max(0.0, left)) if n == 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if d.leaf == topics.STATUS:
                self.chairs[d.chair_id] = str(d.payload.get("status"))
            item = item_of(d)
            if item is not None:
                try:
                    self.store.add(item)
                except StoreError as e:
                    self.store_error = str(e)
                n += 1
        self.items += n
        try:
            self.store.maybe_flush()
        except StoreError as e:
            self.store_error = str(e)
        return n

    def run(self, duration: float = 0.0, status: Callable[[str], None] | None = None) -> None:
        start = time.monotonic()
        next_status = start + 10.0
        while not self.stopping:
            self.step()
            now = time.monotonic()
            if duration and now - start >= duration:
                break
            if status is not None and now >= next_status:
                next_status = now + 10.0
                status(self.status())

    def status(self) -> str:
        st = self.store.stats
        broker = (
            "connected" if self.sub.connected else f"NOT CONNECTED ({self.sub.conn.last_error})"
        )
        chairs = ", ".join(f"{c} {s}" for c, s in sorted(self.chairs.items())) or "no chair yet"
        problem = f"; NOT WRITTEN YET: {self.store_error}" if self.store_error else ""
        return (
            f"broker {broker}; recorded {st.stored} messages, {st.duplicates} duplicates"
            f" dropped, {st.gaps} gaps; {chairs}{problem}"
        )

    def close(self) -> None:
        try:
            self.sub.stop()
            self.step(0.0)
        finally:
            self.store.close()
