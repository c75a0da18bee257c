"""The station's other inputs and outputs: chairs from an MQTT broker, and HL7 to the hospital.

``bedside station --mqtt URL [--site S]`` shows every chair its gateways publish (docs/mqtt.md):
:class:`MqttChairs` subscribes with one persistent session (a fixed client id: the broker keeps
the QoS 1 alarm, NIBP and session messages published while the station is away), records every
publication into the station's record file as ``bedside record --mqtt`` does (device key
``<site>/<chair>``, the gateway's receive times, lines verbatim; the store keeps each line
once), and feeds the model in the event loop's thread: each device message once, the gateway's
``offline`` (last will, or this station lost the broker) and its device link state as the
chair's link state.

``--hl7 mllp://HOST:PORT``: every live device message of every chair (ports and MQTT) also goes
to an :class:`~bedside_host.hl7.bridge.Hl7Bridge` (PCD-01, PCD-04; docs/hl7.md).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedside_host.hl7.bridge import Hl7Bridge
from bedside_host.mqtt import topics
from bedside_host.mqtt.recorder import item_of
from bedside_host.mqtt.subscriber import Delivery, Subscriber, start_feed
from bedside_host.station.model import StationModel
from bedside_host.store import Item

OnMessage = Callable[[str, dict[str, Any], float], None]
_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def default_client_id(site: str | None) -> str:
    """One fixed name per station PC and site: the broker keeps this station's session."""
    return f"bedside-station-{socket.gethostname()}-{site or 'all'}"[:64]


def hl7_chair_id(label: str, site: str) -> str:
    """An HL7 chair id ``<site>/<chair>`` for a chair on a port (its tile name, sanitised)."""
    return f"{site}/{_BAD.sub('_', label).strip('_')[:32] or 'chair'}"


def default_dead_letters(db: Path) -> Path:
    """The HL7 dead-letter file next to the record file: ``<db stem>-hl7-dead-letters.jsonl``."""
    return db.with_name(f"{db.stem}-hl7-dead-letters.jsonl")


@dataclass(frozen=True)
class MqttOptions:
    url: str
    site: str | None
    client_id: str


def check_mqtt(url: str, site: str | None, client_id: str | None) -> MqttOptions:
    """Validated options (topics.ConfigError: a bad URL, site or client id)."""
    topics.parse_url(url)
    if site is not None:
        topics.check_name("site", site)
    cid = client_id if client_id is not None else default_client_id(site)
    if not 1 <= len(cid) <= 64 or not cid.isascii() or not cid.isprintable() or " " in cid:
        raise topics.ConfigError(f"bad MQTT client id {cid!r}: 1-64 printable ASCII, no spaces")
    return MqttOptions(url, site, cid)


class MqttChairs:
    """Chairs from the broker into the model (event loop thread), the record store (any
    thread) and the extra consumers (the HL7 bridge)."""

    def __init__(
        self,
        model: StationModel,
        opts: MqttOptions,
        loop: asyncio.AbstractEventLoop,
        *,
        record: Callable[[Item], None] | None = None,
        also: Sequence[OnMessage] = (),
    ) -> None:
        self.model = model
        self.opts = opts
        self.loop = loop
        self.record = record
        self.also = list(also)
        self.sub: Subscriber | None = None
        self.recorded = 0
        self.bad = 0

    def start(self) -> MqttChairs:
        self.sub = start_feed(
            self.opts.url,
            self.on_message,
            site=self.opts.site,
            loop=self.loop,
            client_id=self.opts.client_id,
            on_link_state=self.on_link_state,
            on_delivery=self.on_delivery if self.record is not None else None,
        )
        return self

    @property
    def connected(self) -> bool:
        return self.sub is not None and self.sub.connected

    def _ensure(self, chair_id: str) -> None:
        if chair_id not in self.model.chairs:
            # one site: the chair's own name on the tile; every site: <site>/<chair>
            label = chair_id.split("/", 1)[-1] if self.opts.site else chair_id
            self.model.add_chair(chair_id, label, device=chair_id)

    # --- in the event loop's thread --------------------------------------------------------
    def on_message(self, chair_id: str, msg: dict[str, Any], rx_wall: float) -> None:
        self._ensure(chair_id)
        self.model.on_message(chair_id, msg, rx_wall)
        for f in self.also:
            f(chair_id, msg, rx_wall)

    def on_link_state(self, chair_id: str, state: str, detail: str) -> None:
        self._ensure(chair_id)
        self.model.on_link_state(chair_id, state, detail)

    # --- in paho's network thread ----------------------------------------------------------
    def on_delivery(self, d: Delivery) -> None:
        assert self.record is not None
        try:
            item = item_of(d)
        except (KeyError, TypeError, ValueError):
            self.bad += 1  # a publication without the record fields: shown, never raised
            return
        if item is not None:
            self.record(item)
            self.recorded += 1

    def status(self) -> dict[str, Any]:
        """For ``GET /api/status`` (any thread): broker, session, connection, counts."""
        sub = self.sub
        return {
            "broker": str(topics.parse_url(self.opts.url)),  # never the password
            "site": self.opts.site,
            "client_id": self.opts.client_id,
            "connected": self.connected,
            "last_error": sub.conn.last_error if sub is not None else "",
            "received": sub.received if sub is not None else 0,
            "bad_payloads": (sub.bad_payloads if sub is not None else 0) + self.bad,
            "recorded": self.recorded,
        }

    def stop(self) -> None:
        if self.sub is not None:
            self.sub.stop()


HL7_BEHIND = 20  # messages waiting for the receiver before the station calls it a problem


def hl7_status(bridge: Hl7Bridge, url: str) -> dict[str, Any]:
    """For ``GET /api/status`` (any thread): what the HL7 bridge delivered and what it could
    not."""
    s = bridge.sender
    return {
        "url": url,
        "sent": dict(bridge.sent),
        "pending": bridge.pending(),
        "retries": s.retries,
        "dead_lettered": s.dead.count,
        "dead_letter_file": str(s.dead.path),
        "last_error": s.last_error,
        "build_errors": bridge.build_errors,
    }


def problems(status: dict[str, Any]) -> list[str]:
    """What a biomedical engineer must see at once, in words (the page's red system line)."""
    out: list[str] = []
    store = status.get("store")
    if store and store.get("error"):
        out.append(f"record file not written yet: {store['error']}")
    mq = status.get("mqtt")
    if mq and not mq["connected"]:
        why = f": {mq['last_error']}" if mq["last_error"] else ""
        out.append(f"MQTT broker {mq['broker']} not connected{why} (its chairs show offline)")
    h = status.get("hl7")
    if h:
        if h["dead_lettered"]:
            out.append(
                f"HL7: {h['dead_lettered']} messages not delivered, kept in"
                f" {h['dead_letter_file']}"
            )
        if h["pending"] >= HL7_BEHIND:
            why = f" ({h['last_error']})" if h["last_error"] else ""
            out.append(f"HL7: {h['pending']} messages waiting for {h['url']}{why}")
        if h["build_errors"]:
            out.append(f"HL7: {h['build_errors']} messages could not be built")
    return out
