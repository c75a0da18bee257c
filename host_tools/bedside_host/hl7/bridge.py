"""The HL7 bridge: chair messages in (the station feed's ``on_message``), IHE PCD messages out.

* PCD-01 ORU^R01 every ``period_s`` (60 s) per chair with its current SpO2 and pulse rate, and
  at once on each NIBP result (with the reading);
* PCD-04 ORU^R40 on each alarm state change (every device ``alarm`` event: raise, end, ack,
  pause end, reset, escalate), with the occurrence id kept from its start to its end.

``on_message(chair_id, msg, rx_wall)`` has the station's signature and never blocks (it
queues); one worker thread builds and sends over MLLP in order (:class:`mllp.Sender`:
ACK handling, retry with backoff, dead-letter file). A full queue dead-letters the oldest
periodic report first, never silently. The station calls :func:`start_bridge`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedside_host.hl7 import messages
from bedside_host.hl7.mllp import Sender

PERIOD_S = 60.0
QUEUE_MAX = 10_000


@dataclass
class Outgoing:
    kind: str  # "pcd01" or "pcd04"
    text: str


class Hl7Bridge:
    def __init__(
        self,
        sender: Sender,
        *,
        period_s: float = PERIOD_S,
        wall: Callable[[], float] = time.time,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.sender = sender
        self.period_s = period_s
        self.queue_max = queue_max
        self._wall = wall
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[Outgoing] = deque()
        self._chairs: dict[str, messages.Chair] = {}
        self._next_periodic: dict[str, float] = {}
        self._alerts: dict[tuple[str, str], str] = {}  # (chair, condition) -> occurrence id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = {"pcd01": 0, "pcd04": 0}
        self.build_errors = 0
        self.last_build_error = ""

    # --- input (any thread) ---------------------------------------------------------------
    def on_message(self, chair_id: str, msg: dict[str, Any], rx_wall: float) -> None:
        """The station feed's callback: never blocks on the network. History (a message
        marked ``replayed``: replay, flash log) is not a current observation or alarm state
        change and is skipped."""
        if msg.get("replayed"):
            return
        mtype = msg.get("type")
        with self._lock:
            chair = self._chairs.get(chair_id)
            if chair is None:
                chair = self._chairs[chair_id] = messages.Chair(chair_id)
                self._next_periodic[chair_id] = rx_wall + self.period_s
            if mtype == "oxi":
                chair.oxi, chair.oxi_rx = msg, rx_wall
            elif mtype == "session":
                st = msg.get("session")
                if isinstance(st, dict) and isinstance(st.get("patient"), str):
                    chair.patient = st["patient"]
            elif mtype == "nibp":
                chair.nibp, chair.nibp_rx = msg, rx_wall
                self._build(lambda: messages.pcd01(chair, rx_wall, with_nibp=True), "pcd01")
            elif mtype == "alarm":
                self._alarm(chair, msg, rx_wall)
            self._wake.notify()

    def _alarm(self, chair: messages.Chair, msg: dict[str, Any], rx: float) -> None:
        cond = str(msg.get("condition"))
        key = (chair.chair_id, cond)
        alert = self._alerts.get(key)
        if alert is None or msg.get("event") == "raise":
            alert = f"{cond}-{msg.get('boot')}-{msg.get('t_ms')}"
            self._alerts[key] = alert
        if msg.get("state") == "inactive" or msg.get("event") in ("end", "reset"):
            self._alerts.pop(key, None)
        self._build(lambda: messages.pcd04(chair, msg, self._wall(), rx, alert), "pcd04")

    def _build(self, make: Callable[[], str | None], kind: str) -> None:
        try:
            text = make()
        except Exception as e:  # (hl7apy's own errors too): counted, shown, never raised
            self.build_errors += 1
            self.last_build_error = f"{type(e).__name__}: {e}"[:300]
            return
        if text is None:
            return
        if len(self._queue) >= self.queue_max:
            drop = next((o for o in self._queue if o.kind == "pcd01"), self._queue[0])
            self._queue.remove(drop)
            self.sender.dead.add(drop.text, "HL7 queue full", 0, self._wall())
        self._queue.append(Outgoing(kind, text))

    def tick(self, now: float | None = None) -> None:
        """Queue the periodic PCD-01 of every chair that is due (the worker calls this)."""
        now = self._wall() if now is None else now
        with self._lock:
            for cid, chair in self._chairs.items():
                if now >= self._next_periodic.get(cid, 0.0):
                    self._next_periodic[cid] = now + self.period_s
                    self._build(_periodic(chair, now), "pcd01")

    # --- the worker -----------------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def step(self) -> bool:
        """Send one queued message (False: nothing queued)."""
        with self._lock:
            if not self._queue:
                return False
            out = self._queue[0]
        result = self.sender.send(out.text)
        with self._lock:
            if self._queue and self._queue[0] is out:
                self._queue.popleft()
        if result.delivered:
            self.sent[out.kind] += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            if not self.step():
                with self._lock:
                    self._wake.wait(0.5)

    def start(self) -> Hl7Bridge:
        self._thread = threading.Thread(target=self._run, name="bedside-hl7", daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_s: float = 5.0) -> None:
        """Send what is queued for up to ``drain_s``; what is left goes to the dead letters."""
        end = time.monotonic() + drain_s
        while self.pending() and time.monotonic() < end and self.sender.last_error == "":
            time.sleep(0.05)
        self._stop.set()
        self.sender.stop()
        if self._thread is not None:
            self._thread.join(10.0)
        with self._lock:
            left, self._queue = list(self._queue), deque()
        for o in left:
            self.sender.dead.add(o.text, "not sent before the bridge stopped", 0, self._wall())
        self.sender.close()


def _periodic(chair: messages.Chair, now: float) -> Callable[[], str | None]:
    return lambda: messages.pcd01(chair, now, with_nibp=False)


def start_bridge(
    hl7_url: str,
    dead_letters: str | Path,
    *,
    period_s: float = PERIOD_S,
    max_attempts: int = 5,
) -> Hl7Bridge:
    """THE STATION'S HL7 HOOK (``bedside station --hl7 mllp://HOST:PORT``): start a bridge
    and feed it with ``bridge.on_message(chair_id, msg, rx_wall)`` alongside the station
    model; ``bridge.stop()`` at shutdown. Raises mllp.MllpUrlError for a bad URL."""
    sender = Sender(hl7_url, Path(dead_letters), max_attempts=max_attempts)
    return Hl7Bridge(sender, period_s=period_s).start()
