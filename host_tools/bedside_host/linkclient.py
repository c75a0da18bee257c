"""Host side of the device link: NDJSON over a serial port, with sequence tracking and replay.

Used by the monitor (and later the station and recorder). Any pyserial URL works, so tests use
a pty, ``loop://`` or ``socket://`` instead of hardware.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import serial

PING_EVERY_S = 2.0  # host heartbeat: keeps the device's HOST_LINK_LOST quiet


@dataclass
class LinkStats:
    received: int = 0
    bad_lines: int = 0
    gaps: int = 0  # messages found missing by seq
    recovered: int = 0  # missing messages that came back by replay (flagged "replayed")
    duplicates: int = 0
    restarts: int = 0
    last_rx: float = 0.0
    last_heartbeat: float = 0.0


@dataclass
class LinkClient:
    """Reads device messages in seq order; asks for a replay when a seq is missing."""

    port: Any
    stats: LinkStats = field(default_factory=LinkStats)
    last_seq: int = 0
    missing: set[int] = field(default_factory=set)
    _buf: bytearray = field(default_factory=bytearray)
    _next_ping: float = 0.0
    _cmd_id: int = 0

    @classmethod
    def open(cls, url: str, baudrate: int = 115200) -> LinkClient:
        return cls(serial.serial_for_url(url, baudrate=baudrate, timeout=0.05))

    def send(self, cmd: str, **fields: Any) -> int:
        self._cmd_id += 1
        msg = {"cmd": cmd, "id": self._cmd_id, **fields}
        self.port.write((json.dumps(msg) + "\n").encode())
        return self._cmd_id

    def poll(self) -> list[dict[str, Any]]:
        """Read what has arrived; return new messages (duplicates and bad lines dropped)."""
        now = time.monotonic()
        if now >= self._next_ping:
            self._next_ping = now + PING_EVERY_S
            self.send("ping")
        data = self.port.read(4096)
        if data:
            self._buf += data
        out: list[dict[str, Any]] = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            line = bytes(self._buf[:i])
            del self._buf[: i + 1]
            msg = self._parse(line)
            if msg is not None:
                out.append(msg)
        return out

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        line = line.strip()
        if not line:
            return None
        try:
            msg = json.loads(line)
        except ValueError:
            self.stats.bad_lines += 1
            return None
        if not isinstance(msg, dict) or not isinstance(msg.get("seq"), int):
            self.stats.bad_lines += 1
            return None
        self.stats.last_rx = time.monotonic()
        seq: int = msg["seq"]
        if msg.get("type") == "hello" and seq <= 1:
            if self.last_seq:
                self.stats.restarts += 1
            self.last_seq = 0
            self.missing.clear()
        if seq <= self.last_seq:
            if seq not in self.missing:
                self.stats.duplicates += 1
                return None
            self.missing.discard(seq)
            self.stats.recovered += 1
            msg["replayed"] = True  # older than what is shown: history, not current state
        else:
            if seq > self.last_seq + 1:
                gap = range(self.last_seq + 1, seq)
                if self.last_seq:
                    self.stats.gaps += len(gap)  # lost in transit
                # (on attach, the device's earlier messages are fetched too, not counted lost)
                self.missing.update(gap)
                self.send("replay", **{"from": self.last_seq + 1})
            self.last_seq = seq
        if msg.get("type") == "reply" and msg.get("cmd") == "replay":
            oldest = msg.get("oldest")
            if isinstance(oldest, int):  # what the device no longer holds cannot come back
                self.missing = {s for s in self.missing if s >= oldest}
        self.stats.received += 1
        if msg.get("type") == "heartbeat":
            self.stats.last_heartbeat = time.monotonic()
        return msg

    def close(self) -> None:
        self.port.close()
