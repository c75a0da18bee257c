"""The MQTT topic tree and payloads of Bedside (docs/mqtt.md): the one place they are defined.

``bedside/v1/<site>/<chair>/<leaf>``; the gateway publishes, the recorder, the station and the
HL7 sender subscribe. Each device message goes to the leaf of its type (:data:`LEAVES`) with
the QoS of that leaf (:data:`QOS`). Payloads are JSON objects (:func:`device_payload`,
:func:`gap_payload`) that carry the device line verbatim, so a subscriber records exactly
the bytes the gateway received. ``status`` (``online``/``offline``, the last will) and
``state`` (a snapshot of the chair) are retained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = "bedside/v1"
PAYLOAD_VERSION = 1
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883

# device message type -> leaf topic
LEAVES: dict[str, str] = {
    "oxi": "vitals",
    "heartbeat": "heartbeat",
    "nibp": "nibp",
    "alarm": "alarm",
    "session": "session",
    "hello": "hello",
    "nibp_state": "event",
    "button": "event",
    "setting": "event",
    "audio_off": "event",
    "fault": "event",
    "selftest": "event",
    "log": "event",
}
NOT_PUBLISHED = frozenset({"reply"})  # answers to the gateway's own commands
GAP = "gap"  # Gap records of the link client
STATUS = "status"  # retained, "online" / "offline" (the last will)
STATE = "state"  # retained JSON snapshot of the chair
# leaf -> QoS: 1 (stored in the gateway's outbox until the broker acknowledges it) for every
# event a record or the hospital must hold; 0 for the once-a-second streams.
QOS: dict[str, int] = {
    "vitals": 0,
    "heartbeat": 0,
    "nibp": 1,
    "alarm": 1,
    "session": 1,
    "hello": 1,
    "event": 1,
    GAP: 1,
    STATUS: 1,
    STATE: 1,
}
DATA_LEAVES = frozenset(QOS) - {STATUS, STATE}

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class ConfigError(ValueError):
    """A bad URL, site or chair name (reported in one line, exit status 2)."""


def check_name(what: str, name: str) -> str:
    """A site or chair name: 1-32 of letters, digits, ``_ . -`` (no MQTT wildcards or ``/``)."""
    if not _NAME.match(name):
        raise ConfigError(
            f"bad {what} {name!r}: use 1-32 letters, digits, '_', '.' or '-' (no '/', '+', '#')"
        )
    return name


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def __str__(self) -> str:  # never prints the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_url(url: str) -> BrokerUrl:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` (TLS, system CA store).
    A ConfigError names the URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    shown = _redacted(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"bad broker URL {shown!r}: use mqtt://HOST:PORT or mqtts://HOST:PORT")
    if not parts.hostname:
        raise ConfigError(f"bad broker URL {shown!r}: no host")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    except ValueError:
        raise ConfigError(f"bad broker URL {shown!r}: bad port") from None
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"bad broker URL {shown!r}: no path or query allowed")
    user = unquote(parts.username) if parts.username else None
    pw = unquote(parts.password) if parts.password else None
    return BrokerUrl(parts.hostname, port, tls, user, pw)


def _redacted(url: str) -> str:
    """The URL as it may be printed: ``scheme://user:***@host...`` (never the password)."""
    scheme, sep, rest = url.partition("://")
    creds, at, after = rest.rpartition("@")  # (a password may hold an unencoded '/')
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{after}"


def topic(site: str, chair: str, leaf: str) -> str:
    return f"{ROOT}/{site}/{chair}/{leaf}"


def subscription(site: str | None) -> str:
    """The filter for every chair of one site (or of every site)."""
    return f"{ROOT}/{site or '+'}/+/+"


def split(t: str) -> tuple[str, str, str] | None:
    """(site, chair, leaf) of a Bedside topic, or None."""
    parts = t.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT:
        return None
    return parts[2], parts[3], parts[4]


def chair_id(site: str, chair: str) -> str:
    """The key a subscriber hands out for a chair: ``<site>/<chair>``."""
    return f"{site}/{chair}"


def leaf_of(msg: dict[str, Any]) -> str | None:
    """The leaf a device message is published on (None: not published)."""
    mtype = msg.get("type")
    if not isinstance(mtype, str) or mtype in NOT_PUBLISHED:
        return None
    return LEAVES.get(mtype, "event")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def device_payload(
    gw: str, line: str, rx: float, wall: float | None, replayed: bool, port: str
) -> bytes:
    """A device line as published: the line verbatim plus where and when it was received."""
    return _dumps(
        {
            "pv": PAYLOAD_VERSION,
            "gw": gw,
            "port": port,
            "rx": rx,
            "wall": wall,
            "replayed": replayed,
            "line": line,
        }
    )


def gap_payload(
    gw: str, port: str, boot: int, first_seq: int, last_seq: int, reason: str, rx: float
) -> bytes:
    return _dumps(
        {
            "pv": PAYLOAD_VERSION,
            "gw": gw,
            "port": port,
            "rx": rx,
            "gap": {"boot": boot, "first_seq": first_seq, "last_seq": last_seq, "reason": reason},
        }
    )


def state_payload(state: dict[str, Any]) -> bytes:
    return _dumps({"pv": PAYLOAD_VERSION, **state})


class PayloadError(ValueError):
    """A payload that is not a Bedside payload (dropped by subscribers, counted)."""


def decode(payload: bytes) -> dict[str, Any]:
    """A data or state payload; for device lines, ``msg`` is added (the parsed line)."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"not JSON: {e}") from None
    if not isinstance(obj, dict) or obj.get("pv") != PAYLOAD_VERSION:
        raise PayloadError("not a Bedside payload (pv)")
    if "line" in obj:
        if not isinstance(obj["line"], str) or not isinstance(obj.get("rx"), int | float):
            raise PayloadError("bad line or rx")
        try:
            msg = json.loads(obj["line"])
        except ValueError as e:
            raise PayloadError(f"device line is not JSON: {e}") from None
        if not isinstance(msg, dict):
            raise PayloadError("device line is not an object")
        obj["msg"] = msg
    elif "gap" in obj:
        g = obj["gap"]
        if not isinstance(g, dict) or not all(
            isinstance(g.get(k), int) for k in ("boot", "first_seq", "last_seq")
        ):
            raise PayloadError("bad gap")
    return obj
