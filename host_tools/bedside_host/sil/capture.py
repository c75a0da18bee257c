"""Sensor-port captures: the raw bytes the device read from the oximeter and NIBP ports.

Format (JSON lines, UTF-8; docs/sil.md "Capture and replay"):

1. a header: ``{"format": "bedside-capture", "version": 1, "oximeter_format": "...",
   "clock_start_ms": N, "reset_cause": "...", "firmware": "...", "settings": {...},
   "changed": {...}}``; ``settings`` are all the settings in force at start, ``changed``
   those that differ from that firmware's defaults (what a replay applies by default);
2. one line per read that returned bytes: ``{"t_ms": T, "port": "oximeter"|"nibp",
   "hex": "..."}``, T = whole milliseconds since the SIL started (non-decreasing);
3. when the SIL stops: ``{"t_ms": T, "end": true}`` (a capture cut short has none: a replay
   then ends at the last record).

This module imports nothing from the firmware: the replayer imports the build it is given.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

FORMAT = "bedside-capture"
VERSION = 1
PORTS = ("oximeter", "nibp")


class CaptureError(ValueError):
    """A capture file that cannot be replayed; str() is one line naming file and line."""


class _Clock(Protocol):
    def since_start_ms(self) -> float: ...


class _Stream(Protocol):
    def readinto(self, buf: Any) -> int | None: ...
    def write(self, data: Any) -> int | None: ...
    def close(self) -> None: ...


class CaptureWriter:
    """Writes a capture file; wrap() gives streams that record each read. The file is closed
    (with its end line) when every wrapped stream has been closed."""

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self._out: TextIO | None = open(path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._open = 0
        self.clock: _Clock | None = None  # set once the SIL clock exists; 0 ms before that
        self.errors = 0  # records that could not be written
        self._emit({"format": FORMAT, "version": VERSION, **header})

    def now_ms(self) -> int:
        return int(self.clock.since_start_ms()) if self.clock is not None else 0

    def _emit(self, rec: dict[str, Any]) -> None:
        out = self._out
        if out is None:
            return
        try:
            with self._lock:
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                out.flush()
        except (OSError, ValueError):  # a full disk never stops the SIL: counted
            self.errors += 1

    def record(self, port: str, data: bytes) -> None:
        self._emit({"t_ms": self.now_ms(), "port": port, "hex": data.hex()})

    def wrap(self, stream: _Stream, port: str) -> CapturingStream:
        self._open += 1
        return CapturingStream(stream, port, self)

    def stream_closed(self) -> None:
        self._open -= 1
        if self._open <= 0 and self._out is not None:
            self._emit({"t_ms": self.now_ms(), "end": True})
            try:
                self._out.close()
            except OSError:
                self.errors += 1
            self._out = None


class CapturingStream:
    """A port stream whose reads are also written to the capture (bytes unchanged)."""

    def __init__(self, inner: _Stream, port: str, writer: CaptureWriter) -> None:
        self.inner = inner
        self.port = port
        self.writer = writer
        self.path: str = getattr(inner, "path", "")

    def readinto(self, buf: Any) -> int | None:
        n = self.inner.readinto(buf)
        if n:
            self.writer.record(self.port, bytes(buf[:n]))
        return n

    def write(self, data: Any) -> int | None:
        return self.inner.write(data)

    def close(self) -> None:
        self.inner.close()
        self.writer.stream_closed()


@dataclass
class Capture:
    header: dict[str, Any]
    records: list[tuple[int, str, bytes]] = field(default_factory=list)
    end_ms: int = 0
    complete: bool = False  # it has its end line

    @property
    def hours(self) -> float:
        return self.end_ms / 3_600_000


def read_capture(path: str | Path) -> Capture:
    """Parse and validate a capture file; CaptureError (one line) on anything wrong."""
    name = str(path)
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise CaptureError(f"{name}: cannot read: {e.strerror or e}") from None
    with f:
        try:
            lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise CaptureError(f"{name}: not a text capture file ({e})") from None
    if not lines:
        raise CaptureError(f"{name}: empty file, not a {FORMAT} capture")

    def bad(no: int, what: str) -> CaptureError:
        return CaptureError(f"{name}: line {no}: {what}")

    def obj(no: int, text: str) -> dict[str, Any]:
        try:
            rec = json.loads(text)
        except ValueError:
            raise bad(no, "not JSON") from None
        if not isinstance(rec, dict):
            raise bad(no, "not a JSON object")
        return rec

    header = obj(1, lines[0])
    if header.get("format") != FORMAT:
        raise bad(1, f'not a {FORMAT} header (want "format": "{FORMAT}")')
    if header.get("version") != VERSION:
        got = header.get("version")
        raise bad(1, f"capture version {got!r} is not supported (want {VERSION})")
    for key, typ in (("oximeter_format", str), ("settings", dict), ("changed", dict)):
        if not isinstance(header.get(key), typ):
            raise bad(1, f"header field {key!r} missing or not a {typ.__name__}")
    start = header.get("clock_start_ms", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise bad(1, "header field 'clock_start_ms' is not a whole number >= 0")
    cap = Capture(header)
    last = 0
    for no, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        if cap.complete:
            raise bad(no, "data after the end line")
        rec = obj(no, text)
        t = rec.get("t_ms")
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise bad(no, "'t_ms' missing or not a whole number >= 0")
        if t < last:
            raise bad(no, f"time goes backwards ({t} ms after {last} ms)")
        last = t
        if rec.get("end") is True:
            cap.complete = True
            continue
        port = rec.get("port")
        if port not in PORTS:
            raise bad(no, f"'port' is {port!r}, not one of {', '.join(PORTS)}")
        hx = rec.get("hex")
        try:
            data = bytes.fromhex(hx) if isinstance(hx, str) else None
        except ValueError:
            data = None
        if not data:
            raise bad(no, "'hex' missing, empty or not hexadecimal bytes")
        cap.records.append((t, str(port), data))
    cap.end_ms = last
    return cap
