"""The station's device side: one thread per DeviceLink, one thread for the record store.

DeviceLink is poll-based (``poll(timeout)`` waits for input): each link runs in its own thread
so a slow port never stalls the event loop or another chair. Every item goes to the store
thread (the same Store and the same items as ``bedside record``: every line once, gaps
explicit) and every live message to the model, handed to the event loop with
``call_soon_threadsafe`` in one call per poll.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from bedside_host.store import Item, Store, StoreError

POLL_S = 0.05


class LinkLike(Protocol):
    """What the station needs of a DeviceLink."""

    @property
    def state(self) -> str: ...
    @property
    def last_error(self) -> str: ...
    def poll(self, timeout: float = 0.0) -> Sequence[Any]: ...
    def close(self) -> None: ...


# (chair id, [(message, rx wall time)], link state or None when unchanged, detail)
Deliver = Callable[[str, list[tuple[dict[str, Any], float]], str | None, str], None]


class StoreThread(threading.Thread):
    """Owns the Store (SQLite connections stay in one thread); batches as the store does."""

    def __init__(self, db: Path) -> None:
        super().__init__(name="station-store", daemon=True)
        self.db = db
        self.store: Store | None = None
        self.q: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.error = ""
        self.close_error = ""
        self.ready = threading.Event()

    def put(self, item: Item) -> None:
        self.q.put(item)

    def run(self) -> None:
        try:
            store = self.store = Store(self.db)  # a connection belongs to its thread
        except StoreError as e:
            self.close_error = str(e)
            return
        finally:
            self.ready.set()
        while True:
            try:
                item = self.q.get(timeout=0.1)
            except queue.Empty:
                item = None
                stop = False
            else:
                stop = item is None
            try:
                if item is not None:
                    store.add(item)
                store.maybe_flush()
                self.error = ""
            except StoreError as e:
                self.error = str(e)  # the items stay buffered in the store and are retried
            if stop:
                break
        try:
            store.close()
        except StoreError as e:
            self.close_error = str(e)

    def stop(self) -> None:
        self.q.put(None)
        self.join(timeout=10)


class LinkThread(threading.Thread):
    """Polls one link until stopped; closes it at the end."""

    def __init__(
        self,
        chair: str,
        link: LinkLike,
        loop: asyncio.AbstractEventLoop,
        deliver: Deliver,
        store: StoreThread | None,
    ) -> None:
        super().__init__(name=f"station-link-{chair}", daemon=True)
        self.chair = chair
        self.link = link
        self.loop = loop
        self.deliver = deliver
        self.store = store
        self.stopping = threading.Event()
        self.items = 0

    def run(self) -> None:
        last_state = ""
        try:
            while not self.stopping.is_set():
                got = self.link.poll(POLL_S)
                msgs: list[tuple[dict[str, Any], float]] = []
                for item in got:
                    if self.store is not None:
                        self.store.put(item)
                    msg = getattr(item, "msg", None)
                    if isinstance(msg, dict) and not getattr(item, "replayed", False):
                        msgs.append((msg, float(item.rx_time)))
                self.items += len(got)
                state = self.link.state
                changed = state if state != last_state else None
                last_state = state
                if msgs or changed is not None:
                    detail = self.link.last_error if state != "live" else ""
                    try:
                        self.loop.call_soon_threadsafe(
                            self.deliver, self.chair, msgs, changed, detail
                        )
                    except RuntimeError:  # the loop has closed: the station is stopping
                        break
        finally:
            try:
                self.link.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.stopping.set()
