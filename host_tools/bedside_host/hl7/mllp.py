"""MLLP (HL7 minimal lower layer protocol) client with ACK handling, retry and a dead-letter file.

A frame is ``0x0B`` + message + ``0x1C 0x0D``. Each message waits for its ACK (original
acknowledgement mode, MSH-15 ``AL``): MSA-1 ``AA``/``CA`` is delivered; ``AE``/``AR`` (and
``CE``/``CR``) are refused by the receiver: retrying cannot help, so the message goes to the
dead-letter file at once with the receiver's reason; no ACK (connection refused or lost,
timeout, a reply that is not an ACK of this message) is retried with exponential backoff
and, after ``max_attempts``, dead-lettered. Messages are sent one at a time in order.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import hl7

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
ACK_TIMEOUT_S = 10.0
MAX_FRAME = 1 << 20


class MllpUrlError(ValueError):
    pass


def parse_url(url: str) -> tuple[str, int]:
    """``mllp://HOST:PORT``."""
    p = urlsplit(url)
    if p.scheme != "mllp" or not p.hostname:
        raise MllpUrlError(f"bad HL7 URL {url!r}: use mllp://HOST:PORT")
    try:
        port = p.port
    except ValueError:
        port = None
    if port is None:
        raise MllpUrlError(f"bad HL7 URL {url!r}: give the port (mllp://HOST:PORT)")
    return p.hostname, port


def frame(text: str) -> bytes:
    return SB + text.encode("utf-8") + EB + CR


class FrameReader:
    """Splits a byte stream into MLLP frames (bytes outside frames are dropped)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        out = []
        while True:
            start = self.buf.find(SB)
            if start < 0:
                self.buf.clear()
                break
            end = self.buf.find(EB + CR, start)
            if end < 0:
                del self.buf[:start]
                if len(self.buf) > MAX_FRAME:
                    self.buf.clear()
                break
            out.append(self.buf[start + 1 : end].decode("utf-8", "replace"))
            del self.buf[: end + 2]
        return out


@dataclass(frozen=True)
class Ack:
    code: str  # MSA-1
    control_id: str  # MSA-2
    text: str  # MSA-3 / ERR, readable


def parse_ack(text: str) -> Ack:
    """The MSA of an ACK (ValueError if the text is not an HL7 ACK)."""
    segs = [s for s in text.replace("\n", "\r").split("\r") if s.strip()]
    msg = hl7.parse("\r".join(segs))
    msa = msg.segment("MSA")
    code = str(msa[1])
    control = str(msa[2]) if len(msa) > 2 else ""
    reason = str(msa[3]) if len(msa) > 3 else ""
    try:
        err = msg.segment("ERR")
        reason = (reason + " " + str(err)).strip()
    except KeyError:
        pass
    return Ack(code, control, reason)


def control_id(text: str) -> str:
    msh = text.split("\r", 1)[0].split("|")
    return msh[9] if len(msh) > 9 else ""


class DeadLetters:
    """Messages that could not be delivered: one JSON object a line (time, reason, attempts,
    the message text with its ``\\r`` separators), appended and flushed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._lock = threading.Lock()

    def add(self, text: str, reason: str, attempts: int, wall: float) -> None:
        rec = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)),
            "reason": reason,
            "attempts": attempts,
            "control_id": control_id(text),
            "message": text,
        }
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
                f.flush()
            self.count += 1


@dataclass
class Result:
    delivered: bool
    dead: bool
    reason: str
    attempts: int


class MllpClient:
    """One connection to the receiver, opened when needed and again after any problem."""

    def __init__(self, host: str, port: int, *, timeout: float = ACK_TIMEOUT_S) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader = FrameReader()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._reader = FrameReader()

    def exchange(self, text: str) -> Ack:
        """Send one message and return its ACK (OSError/TimeoutError/ValueError: none)."""
        try:
            if self._sock is None:
                self._sock = socket.create_connection((self.host, self.port), self.timeout)
            s = self._sock
            s.settimeout(self.timeout)
            s.sendall(frame(text))
            deadline = time.monotonic() + self.timeout
            want = control_id(text)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no ACK in time")
                s.settimeout(left)
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("the receiver closed the connection")
                for reply in self._reader.feed(data):
                    ack = parse_ack(reply)
                    if ack.control_id == want:
                        return ack
        except (OSError, ValueError, KeyError, IndexError):
            self.close()
            raise


class Sender:
    """Delivers messages in order with retry, backoff and the dead-letter file."""

    def __init__(
        self,
        url: str,
        dead_letters: Path,
        *,
        max_attempts: int = 5,
        backoff_min: float = 1.0,
        backoff_max: float = 30.0,
        timeout: float = ACK_TIMEOUT_S,
        sleep: Callable[[float], bool] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        host, port = parse_url(url)
        self.client = MllpClient(host, port, timeout=timeout)
        self.dead = DeadLetters(dead_letters)
        self.max_attempts = max(1, max_attempts)
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._stop = threading.Event()
        self._sleep = sleep or (lambda s: self._stop.wait(s))
        self._wall = wall
        self.delivered = 0
        self.retries = 0
        self.last_error = ""

    def stop(self) -> None:
        self._stop.set()

    def send(self, text: str) -> Result:
        delay = self.backoff_min
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                ack = self.client.exchange(text)
            except (OSError, ValueError, KeyError, IndexError) as e:
                reason = (
                    f"no ACK from {self.client.host}:{self.client.port}: {e or type(e).__name__}"
                )
                self.last_error = reason
                if attempt == self.max_attempts or self._stop.is_set():
                    break
                self.retries += 1
                if self._sleep(delay):
                    break  # stopping: what is not delivered goes to the dead letters
                delay = min(self.backoff_max, delay * 2)
                continue
            if ack.code in ("AA", "CA"):
                self.delivered += 1
                return Result(True, False, "", attempt)
            reason = f"receiver answered {ack.code}" + (f": {ack.text}" if ack.text else "")
            self.last_error = reason
            self.dead.add(text, reason, attempt, self._wall())
            return Result(False, True, reason, attempt)
        self.dead.add(text, reason, attempt, self._wall())
        return Result(False, True, reason, attempt)

    def close(self) -> None:
        self.client.close()
