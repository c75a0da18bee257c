"""One broker connection that survives broker restarts: a NEW paho client per (re)connect.

paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``). The owner calls :meth:`Connection.step`
often; it starts a client (``connect_async`` + ``loop_start``: paho's network thread), notices
a lost or failed connection, stops that client and, after a bounded exponential backoff,
starts a new one (reusing a client after a failed connect is the top reconnection complaint
of the asyncio wrapper, so nothing is reused). ``generation`` rises by one per successful
connect: publications of an older generation are never acknowledged, so the owner republishes
what it still holds (the gateway's outbox). PUBACKs arrive on :attr:`acks` as
``(generation, mid)``; messages go to the ``on_message`` callback in paho's thread.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bedside_host.mqtt.topics import BrokerUrl

KEEPALIVE_S = 10  # the broker publishes the last will after 1.5 x this without traffic
CONNECT_TIMEOUT_S = 5.0  # a connect that has not succeeded by then is given up and retried
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 8.0
MAX_INFLIGHT = 1000  # QoS 1 messages in flight per connection (paho's default is 20)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Connection:
    """A supervised broker connection (one paho client per attempt)."""

    def __init__(
        self,
        url: BrokerUrl,
        client_id: str,
        *,
        clean_session: bool = True,
        will: Will | None = None,
        subscriptions: tuple[tuple[str, int], ...] = (),
        on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
        keepalive: int = KEEPALIVE_S,
        ca_file: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.clean_session = clean_session
        self.will = will
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.keepalive = keepalive
        self.ca_file = ca_file
        self.acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self.generation = 0
        self.connects = 0
        self.last_error = ""
        self.callback_errors = 0  # exceptions raised by the on_message callback (caught)
        self.last_callback_error = ""
        self._clock = clock
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self._up = False
        self._down = False
        self._started = 0.0
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_S
        self._closed = False

    # --- state ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._client is not None and self._up and not self._down

    def step(self) -> None:
        """Start, supervise and replace the client; cheap when nothing changes."""
        if self._closed:
            return
        now = self._clock()
        c = self._client
        if c is not None:
            failed = self._down or (not self._up and now - self._started > CONNECT_TIMEOUT_S)
            if not failed:
                return
            self._drop(now)
            return
        if now >= self._retry_at:
            self._start(now)

    def _start(self, now: float) -> None:
        gen = self.generation + 1
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self.clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        c.max_inflight_messages_set(MAX_INFLIGHT)
        c.max_queued_messages_set(0)
        if self.url.username is not None:
            c.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            c.tls_set_context(ctx)
        if self.will is not None:
            w = self.will
            c.will_set(w.topic, w.payload, w.qos, w.retain)

        def on_connect(client: mqtt.Client, ud: Any, flags: Any, rc: Any, props: Any) -> None:
            if rc.is_failure:
                self.last_error = f"broker refused the connection: {rc}"
                self._down = True
                return
            sock = client.socket()
            if isinstance(sock, socket.socket):  # small messages leave at once (no Nagle)
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            for t, q in self.subscriptions:
                client.subscribe(t, q)
            with self._lock:
                self.generation = gen
                self.connects += 1
                self._up = True
                self._backoff = BACKOFF_MIN_S

        def on_disconnect(client: mqtt.Client, ud: Any, flags: Any, rc: Any, props: Any) -> None:
            if not self._closed:
                self.last_error = f"disconnected: {rc}"
            self._down = True

        def on_connect_fail(client: mqtt.Client, ud: Any) -> None:
            self.last_error = f"cannot connect to {self.url}"
            self._down = True

        def on_publish(client: mqtt.Client, ud: Any, mid: int, rc: Any, props: Any) -> None:
            self.acks.put((gen, mid))

        def on_message(client: mqtt.Client, ud: Any, m: mqtt.MQTTMessage) -> None:
            if self.on_message is None:
                return
            try:
                self.on_message(m)
            except Exception as e:  # a consumer's bug must not kill paho's network thread
                self.callback_errors += 1
                self.last_callback_error = f"{type(e).__name__}: {e}"[:200]

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        c.on_connect_fail = on_connect_fail
        c.on_publish = on_publish
        c.on_message = on_message
        self._up = False
        self._down = False
        self._started = now
        self._client = c
        try:
            c.connect_async(self.url.host, self.url.port, self.keepalive)
            c.loop_start()
        except (OSError, ValueError) as e:
            self.last_error = f"cannot connect to {self.url}: {e}"
            self._drop(now)

    def _drop(self, now: float) -> None:
        c, self._client = self._client, None
        self._up = False
        if c is not None:
            try:
                c.disconnect()
            except (OSError, ValueError):
                pass
            c.loop_stop()
        self._retry_at = now + self._backoff
        self._backoff = min(BACKOFF_MAX_S, self._backoff * 2)

    # --- use ------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        """Publish on the current client; returns the mid (its PUBACK comes on ``acks`` with
        the generation) or None when not connected (the caller keeps the message)."""
        with self._lock:
            c = self._client
            if c is None or not self._up or self._down:
                return None
            info = c.publish(topic, payload, qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._down = True
            return None
        return int(info.mid)

    def close(self, final: tuple[str, bytes, int, bool] | None = None) -> None:
        """Stop the client; ``final`` (topic, payload, qos, retain) is published first and
        waited for up to 2 s (the gateway's clean "offline")."""
        c = self._client
        if c is not None and final is not None and self.connected:
            info = c.publish(*final)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        self._closed = True
        self._drop(self._clock())
