"""Subscribe to the chairs of a site (or of every site): what the station, the recorder and the
HL7 sender are fed from. docs/mqtt.md "Subscribing".

The station's model takes ``on_message(chair_id, msg, rx_wall)``; :func:`start_feed` calls it
for every chair message, once (deduplicated by chair, boot, seq and line), with
``chair_id = "<site>/<chair>"``, ``msg`` the device message (the parsed line, as the link
client delivers it; a line the gateway published as history carries ``"replayed": true``)
and ``rx_wall`` this PC's receive time (UTC epoch seconds). Besides the device messages
it hands out two messages of its own:

* ``{"type": "gateway", "online": bool, "gw": str|None, "link": str|None}`` (offline: with a
  readable ``reason``) when the chair's
  retained ``status`` (the gateway's last will) or ``state`` changes: ``online`` false means
  the gateway (the chair's PC) is gone, or this subscriber lost the broker (then every chair
  is offline until the broker is back); ``link`` is the gateway's device link state
  (``live``, ``stale``, ``disconnected`` ...);
* ``{"type": "gap", "boot", "first_seq", "last_seq", "reason"}``: device lines that nothing
  could recover (the link client's Gap).

A retained ``state`` (sent by the broker when a subscriber connects) is unpacked into the
messages it holds (hello, heartbeat with the active alarms, oxi, nibp, session), so a station
that starts late shows every chair at once. With an asyncio loop (the station is one asyncio
process) the callback runs in the loop's thread (``call_soon_threadsafe``); otherwise in
paho's network thread.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from bedside_host.mqtt import topics
from bedside_host.mqtt.connection import Connection

OnMessage = Callable[[str, dict[str, Any], float], None]
DEDUP_KEEP = 65536  # message keys remembered for deduplication
STEP_S = 0.05
_STATE_ORDER = ("hello", "session", "nibp", "heartbeat", "oxi")
_ids = itertools.count(1)
_RX_KEY = "__rx"  # (internal) the receive time of a message unpacked from a retained state


def _with_rx(msg: dict[str, Any], rx: float) -> dict[str, Any]:
    out = dict(msg)
    out[_RX_KEY] = rx
    return out


@dataclass(frozen=True)
class Delivery:
    """One Bedside publication as received: the data a recorder needs."""

    site: str
    chair: str
    leaf: str
    payload: dict[str, Any]  # decoded (device lines: with ``msg``)
    rx_local: float  # this PC's receive time
    retained: bool

    @property
    def chair_id(self) -> str:
        return topics.chair_id(self.site, self.chair)


class Subscriber:
    """A supervised subscription (a new paho client per reconnect) in a background thread.

    ``on_delivery`` receives every valid publication (no deduplication: the record store
    deduplicates); :func:`start_feed` builds the station's deduplicated message feed on it.
    ``persistent=True`` (the recorder) uses a fixed client id and a persistent session, so
    QoS 1 messages published while it is away are kept by the broker for it.
    """

    def __init__(
        self,
        url: str,
        on_delivery: Callable[[Delivery], None],
        *,
        site: str | None = None,
        on_connection: Callable[[bool], None] | None = None,
        client_id: str | None = None,
        persistent: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.broker = topics.parse_url(url)
        if site is not None:
            topics.check_name("site", site)
        self.site = site
        self.on_delivery = on_delivery
        self.on_connection = on_connection
        self.bad_payloads = 0
        self.received = 0
        self._wall = wall
        cid = client_id or (
            f"bedside-sub-{socket.gethostname()}-{os.getpid()}-{next(_ids)}"
            if not persistent
            else f"bedside-rec-{socket.gethostname()}-{site or 'all'}"
        )
        self.conn = Connection(
            self.broker,
            cid[:64],
            clean_session=not persistent,
            subscriptions=((topics.subscription(site), 1),),
            on_message=self._on_message,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        return self.conn.connected

    def _on_message(self, m: mqtt.MQTTMessage) -> None:
        where = topics.split(m.topic)
        if where is None:
            return
        site, chair, leaf = where
        rx = self._wall()
        if leaf == topics.STATUS:
            text = m.payload.decode("utf-8", "replace").strip()
            payload: dict[str, Any] = {"status": text}
        else:
            try:
                payload = topics.decode(bytes(m.payload))
            except topics.PayloadError:
                self.bad_payloads += 1
                return
        self.received += 1
        self.on_delivery(Delivery(site, chair, leaf, payload, rx, bool(m.retain)))

    def start(self) -> Subscriber:
        self._thread = threading.Thread(target=self._run, name="bedside-mqtt-sub", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        was = False
        while not self._stop.is_set():
            self.conn.step()
            now = self.conn.connected
            if now != was and self.on_connection is not None:
                self.on_connection(now)
            was = now
            self._stop.wait(STEP_S)

    def wait_connected(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.conn.connected:
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.conn.close()


class Deduplicator:
    """Turns deliveries into station messages, each device message once (bounded memory)."""

    def __init__(self, keep: int = DEDUP_KEEP) -> None:
        self.keep = keep
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._online: dict[str, bool] = {}
        self._gw: dict[str, dict[str, Any]] = {}

    def _first(self, key: tuple[Any, ...]) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.keep:
            self._seen.popitem(last=False)
        return True

    def messages(self, d: Delivery) -> list[dict[str, Any]]:
        cid = d.chair_id
        p = d.payload
        if d.leaf == topics.STATUS:
            online = p.get("status") == "online"
            if self._online.get(cid) == online:
                return []
            self._online[cid] = online
            last = self._gw.get(cid, {})
            gw = {
                "type": "gateway",
                "online": online,
                "gw": last.get("gw"),
                "link": last.get("link") if online else None,
            }
            self._gw[cid] = gw
            if online:
                return [gw]
            return [{**gw, "reason": f"gateway {gw['gw'] or ''} offline (stopped or last will)"}]
        if d.leaf == topics.STATE:
            out: list[dict[str, Any]] = []
            gw = {
                "type": "gateway",
                "online": self._online.get(cid, True),  # status is the truth (last will)
                "gw": p.get("gw"),
                "link": p.get("link"),
            }
            if self._gw.get(cid) != gw:
                self._gw[cid] = gw
                out.append(gw)
            got_rx = p.get("rx_of")
            rx_of: dict[str, Any] = got_rx if isinstance(got_rx, dict) else {}
            for name in _STATE_ORDER:
                msg = p.get(name)
                if isinstance(msg, dict) and self._first(self._key(cid, msg)):
                    rx = rx_of.get(name)
                    # received by the gateway then, not now: an old snapshot never looks fresh
                    at = min(float(rx), d.rx_local) if isinstance(rx, int | float) else 0.0
                    out.append(_with_rx(msg, at))
            return out
        if "gap" in p:
            g = p["gap"]
            if not self._first((cid, "gap", g["boot"], g["first_seq"], g["last_seq"])):
                return []
            return [{"type": "gap", **g}]
        msg = p.get("msg")
        if not isinstance(msg, dict) or not self._first(self._key(cid, msg)):
            return []
        if p.get("replayed") is True and not msg.get("replayed"):
            # history (replay, flash log): marked as the link client marks it, so that the
            # station shows nothing of it as live and the HL7 sender skips it
            return [{**msg, "replayed": True}]
        return [msg]

    def broker_lost(self) -> list[tuple[str, dict[str, Any]]]:
        """This subscriber lost the broker: every chair is shown offline (nothing can be known
        of them) until the broker's retained status says otherwise after the reconnect."""
        out = []
        for cid, online in sorted(self._online.items()):
            if not online:
                continue
            self._online[cid] = False
            last = self._gw.get(cid, {})
            gw = {"type": "gateway", "online": False, "gw": last.get("gw"), "link": None}
            self._gw[cid] = gw
            out.append((cid, {**gw, "reason": "this station lost the broker"}))
        return out

    @staticmethod
    def rx_of(msg: dict[str, Any], default: float) -> tuple[dict[str, Any], float]:
        """(the message, its receive time): a snapshot message carries its own."""
        at = msg.pop(_RX_KEY, None)
        return msg, (default if at is None else float(at))

    @staticmethod
    def _key(cid: str, msg: dict[str, Any]) -> tuple[Any, ...]:
        return (cid, msg.get("boot"), msg.get("seq"), msg.get("t_ms"), msg.get("type"))


def start_feed(
    url: str,
    on_message: OnMessage,
    *,
    site: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    client_id: str | None = None,
    on_link_state: Callable[[str, str, str], None] | None = None,
    gaps: bool = False,
    on_delivery: Callable[[Delivery], None] | None = None,
) -> Subscriber:
    """THE STATION'S ENTRY POINT (``bedside station --mqtt URL [--site S]``): subscribe and
    call ``on_message(chair_id, msg, rx_wall)`` for every chair message, once. With ``loop``
    the calls are made in that event loop's thread. With ``client_id`` (one fixed name per
    station) the session is persistent: the broker keeps the QoS 1 messages (alarms, NIBP,
    session) published while this station is away, and hands them over when it is back;
    without, a restarted broker or station starts from the retained state of each chair.
    With ``on_link_state(chair_id, state, detail)`` (the station model's method) the
    ``gateway`` messages go there instead: state ``offline`` (the gateway's last will, or this
    station lost the broker) or the gateway's device link state (``live``, ``stale``,
    ``disconnected`` ...). ``gaps``: also hand out ``gap`` messages (off: the recorder keeps
    them; their ``boot`` is the boot of the lost lines, not the current one).
    ``on_delivery(Delivery)``: every publication as received, before deduplication, in
    paho's network thread (the station records them with ``recorder.item_of`` into its
    record store, which keeps each line once, as ``bedside record --mqtt`` does).
    Returns the running Subscriber; call ``.stop()`` at shutdown. Raises topics.ConfigError
    for a bad URL or site."""
    dedup = Deduplicator()
    lock = threading.Lock()

    def call(fn: Callable[..., None], *args: Any) -> None:
        if loop is None:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def hand_out(cid: str, msg: dict[str, Any], rx: float) -> None:
        mtype = msg.get("type")
        if mtype == "gap" and not gaps:
            return
        if mtype == "gateway" and on_link_state is not None:
            if not msg["online"]:
                call(on_link_state, cid, "offline", str(msg.get("reason") or "offline"))
            else:
                call(on_link_state, cid, str(msg.get("link") or "live"), f"via {msg.get('gw')}")
            return
        call(on_message, cid, msg, rx)

    def deliver(d: Delivery) -> None:
        if on_delivery is not None:
            on_delivery(d)
        with lock:
            msgs = dedup.messages(d)
        for m in msgs:
            msg, rx = Deduplicator.rx_of(m, d.rx_local)
            hand_out(d.chair_id, msg, rx)

    def connection(up: bool) -> None:
        if up:
            return
        with lock:
            lost = dedup.broker_lost()
        for cid, msg in lost:
            hand_out(cid, msg, time.time())

    return Subscriber(
        url,
        deliver,
        site=site,
        on_connection=connection,
        client_id=client_id,
        persistent=client_id is not None,
    ).start()


def messages(
    url: str, *, site: str | None = None, stop: threading.Event | None = None
) -> Iterator[tuple[str, dict[str, Any], float]]:
    """The same feed as an iterator of ``(chair_id, msg, rx_wall)`` (blocking; ends when
    ``stop`` is set)."""
    q: queue.SimpleQueue[tuple[str, dict[str, Any], float]] = queue.SimpleQueue()
    sub = start_feed(url, lambda c, m, r: q.put((c, m, r)), site=site)
    try:
        while stop is None or not stop.is_set():
            try:
                yield q.get(timeout=0.1)
            except queue.Empty:
                continue
    finally:
        sub.stop()
