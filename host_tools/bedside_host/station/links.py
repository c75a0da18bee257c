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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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
    def request(self, cmd: str, timeout: float = 3.0, **fields: Any) -> dict[str, Any]: ...
    def close(self) -> None: ...


# (chair id, [(message, rx wall time)], link state or None when unchanged, detail)
Deliver = Callable[[str, list[tuple[dict[str, Any], float]], str | None, str], None]


class _Call:
    """A job for the store thread: ``fn(store)`` run there, its result in ``fut``."""

    def __init__(self, fn: Callable[[Store], Any]) -> None:
        self.fn = fn
        self.fut: Future[Any] = Future()


class StoreThread(threading.Thread):
    """Owns the Store (SQLite connections stay in one thread); batches as the store does.
    Work that needs the Store (the infusion-session steps) runs here too (:meth:`call`)."""

    def __init__(self, db: Path) -> None:
        super().__init__(name="station-store", daemon=True)
        self.db = db
        self.store: Store | None = None
        self.q: queue.SimpleQueue[Item | _Call | None] = queue.SimpleQueue()
        self._later: deque[_Call | None] = deque()  # met while draining for a job
        self.error = ""
        self.close_error = ""
        self.ready = threading.Event()

    def put(self, item: Item) -> None:
        self.q.put(item)

    def call(self, fn: Callable[[Store], Any]) -> Future[Any]:
        """Run ``fn(store)`` in the store thread, after the items queued before it; the
        future gets its result or exception (ConnectionError once the thread has stopped)."""
        job = _Call(fn)
        if not self.is_alive():
            job.fut.set_exception(ConnectionError("the station's record store is not running"))
        else:
            self.q.put(job)
        return job.fut

    def take_items(self) -> list[Item]:
        """(In the store thread, for a job:) the items queued now, in order; a stop or another
        job met on the way is kept for the main loop."""
        out: list[Item] = []
        while not self._later:
            try:
                x = self.q.get_nowait()
            except queue.Empty:
                break
            if x is None or isinstance(x, _Call):
                self._later.append(x)
            else:
                out.append(x)
        return out

    def _next(self) -> tuple[Item | _Call | None, bool]:
        if self._later:
            kept = self._later.popleft()
            return kept, kept is None
        try:
            x = self.q.get(timeout=0.1)
        except queue.Empty:
            return None, False
        return x, x is None

    def run(self) -> None:
        try:
            store = self.store = Store(self.db)  # a connection belongs to its thread
        except StoreError as e:
            self.close_error = str(e)
            return
        finally:
            self.ready.set()
        while True:
            item, stop = self._next()
            if isinstance(item, _Call):
                if item.fut.set_running_or_notify_cancel():
                    try:
                        item.fut.set_result(item.fn(store))
                    except BaseException as e:  # the caller reports it; the store goes on
                        item.fut.set_exception(e)
                item = None
            try:
                if item is not None:
                    store.add(item)
                store.maybe_flush()
                self.error = ""
            except StoreError as e:
                self.error = str(e)  # the items stay buffered in the store and are retried
            if stop:
                break
        self._fail_jobs()
        try:
            store.close()
        except StoreError as e:
            self.close_error = str(e)

    def _fail_jobs(self) -> None:
        while True:
            try:
                x = self._later.popleft() if self._later else self.q.get_nowait()
            except queue.Empty:
                return
            if isinstance(x, _Call) and x.fut.set_running_or_notify_cancel():
                x.fut.set_exception(ConnectionError("the station is stopping"))
            elif x is not None and not isinstance(x, _Call) and self.store is not None:
                try:
                    self.store.add(x)  # items queued behind the stop are still recorded
                except StoreError as e:
                    self.error = str(e)

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
        self.jobs: queue.SimpleQueue[tuple[str, dict[str, Any], float, Future[dict[str, Any]]]]
        self.jobs = queue.SimpleQueue()

    def submit(
        self, cmd: str, fields: dict[str, Any], timeout: float = 3.0
    ) -> Future[dict[str, Any]]:
        """Send a command to this chair's device from any thread: it runs in the link's own
        thread (DeviceLink.request, between polls); the future gets the reply or the
        LinkProblem. Which commands the station may send is the caller's rule (Hub.command)."""
        fut: Future[dict[str, Any]] = Future()
        self.jobs.put((cmd, dict(fields), timeout, fut))
        return fut

    def _run_jobs(self) -> None:
        while True:
            try:
                cmd, fields, timeout, fut = self.jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(self.link.request(cmd, timeout, **fields))
            except Exception as e:  # LinkDown, LinkTimeout, LinkError: the caller reports it
                fut.set_exception(e)

    def run(self) -> None:
        last_state = ""
        try:
            while not self.stopping.is_set():
                self._run_jobs()
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
            while True:  # commands still waiting get an answer, never a hang
                try:
                    *_, fut = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(ConnectionError("the station is stopping"))

    def stop(self) -> None:
        self.stopping.set()
