"""Captures: the raw bytes a device read from its ports (SIL) or exchanged with a host (link).

Format (JSON lines, UTF-8; docs/sil.md "Capture and replay", docs/records.md "Raw capture"):

1. a header ``{"format": "bedside-capture", "version": 2, "source": "sil"|"link", ...}``.
   SIL (``bedside sil --capture``): ``"oximeter_format", "clock_start_ms", "reset_cause",
   "firmware", "settings", "changed"``; ``settings`` are all the settings in force at start,
   ``changed`` those that differ from that firmware's defaults (what a replay applies by
   default). Link (``bedside record --raw``): ``"url"`` (the port) and ``"wall_start"`` (UTC
   epoch seconds of t_ms 0);
2. one line per read that returned bytes: ``{"t_ms": T, "port": P, "hex": "..."}``,
   T = whole milliseconds since the capture started (non-decreasing). SIL ports: ``oximeter``,
   ``nibp`` (sensor bytes) and ``host`` (the host's command bytes as the device read them);
   link ports: ``device`` (what the device sent, with ``"rx"``: the host receive time, UTC
   epoch seconds) and ``host`` (what the host sent). SIL key presses: ``{"t_ms": T,
   "keys": LEVELS, "press": WORD}`` each time the key levels the core sees change (``press``:
   the stdin word that started the press, absent on release);
3. when the capture stops: ``{"t_ms": T, "end": true}`` (a capture cut short has none: a
   replay then ends at the last record).

Version 1 files (SIL, sensor ports only, no ``source``) are still read.
This module imports nothing from the firmware: the replayer imports the build it is given.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

FORMAT = "bedside-capture"
VERSION = 2
VERSIONS = (1, 2)
SENSOR_PORTS = ("oximeter", "nibp")
PORTS = SENSOR_PORTS  # version 1
SIL_PORTS = (*SENSOR_PORTS, "host")
LINK_PORTS = ("device", "host")
SOURCES = ("sil", "link")
# Host commands that only read (the link client's own traffic): not operator actions.
READ_ONLY_COMMANDS = frozenset({"ping", "hello", "status", "get_settings", "replay", "log"})


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
        self._emit({"format": FORMAT, "version": VERSION, "source": "sil", **header})

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

    def keys(self, levels: int, press: str | None) -> None:
        """The key levels the core sees changed (``press``: the word that started a press)."""
        rec: dict[str, Any] = {"t_ms": self.now_ms(), "keys": levels}
        if press:
            rec["press"] = press
        self._emit(rec)

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


class LinkCaptureWriter:
    """``bedside record --raw``: the raw bytes of one device port, both directions, with host
    times. ``data(port, data, rx_wall)`` is the DeviceLink byte hook; every record is flushed
    (a killed recorder keeps all but a torn last line). ``close()`` writes the end line."""

    def __init__(
        self,
        path: str | Path,
        url: str,
        clock: Any = None,
        wall: Any = None,
    ) -> None:
        import time

        self._clock = clock or time.monotonic
        self._wall = wall or time.time
        self._t0 = self._clock()
        self._last = 0
        self._out: TextIO | None = open(path, "x", encoding="utf-8")  # never overwrite
        self.path = Path(path)
        self.errors = 0
        self.bytes = 0
        self._emit(
            {
                "format": FORMAT,
                "version": VERSION,
                "source": "link",
                "url": url,
                "wall_start": round(self._wall(), 3),
            }
        )

    def _t(self) -> int:
        t = max(self._last, int((self._clock() - self._t0) * 1000))
        self._last = t
        return t

    def _emit(self, rec: dict[str, Any]) -> None:
        out = self._out
        if out is None:
            return
        try:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            out.flush()
        except (OSError, ValueError):  # a full disk never stops the recorder: counted
            self.errors += 1

    def data(self, port: str, data: bytes, rx_wall: float) -> None:
        rec: dict[str, Any] = {"t_ms": self._t(), "port": port, "hex": data.hex()}
        if port == "device":
            rec["rx"] = round(rx_wall, 3)
        self.bytes += len(data)
        self._emit(rec)

    def close(self) -> None:
        if self._out is None:
            return
        self._emit({"t_ms": self._t(), "end": True})
        try:
            self._out.close()
        except OSError:
            self.errors += 1
        self._out = None


@dataclass
class Capture:
    header: dict[str, Any]
    records: list[tuple[int, str, bytes]] = field(default_factory=list)
    keys: list[tuple[int, int, str | None]] = field(default_factory=list)  # (t, levels, word)
    rx: list[float | None] = field(default_factory=list)  # link: receive time per record
    end_ms: int = 0
    complete: bool = False  # it has its end line

    @property
    def source(self) -> str:
        return str(self.header.get("source", "sil"))

    @property
    def hours(self) -> float:
        return self.end_ms / 3_600_000


def command_row(t_ms: int, line: bytes) -> dict[str, Any] | None:
    """The timeline row of one host command line (an operator action), or None for the link
    client's own read-only traffic and lines that are not commands."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
        return None
    cmd = msg["cmd"]
    if cmd in READ_ONLY_COMMANDS:
        return None
    args = " ".join(
        f"{k}={msg[k]}" for k in sorted(msg) if k not in ("cmd", "id", "by", "ctr", "mac")
    )
    by = f" by {msg['by']}" if msg.get("by") else ""
    return {"t_ms": t_ms, "kind": "command", "text": f"{cmd} {args}".strip() + by}


def message_row(t_ms: int, mtype: str, m: dict[str, Any]) -> dict[str, Any] | None:
    """The timeline row of one device message: alarm events (condition, priority, event,
    state, value, limit), key events handled, setting changes, AUDIO OFF changes and refused
    commands."""
    if mtype == "alarm":
        rec: dict[str, Any] = {"t_ms": t_ms, "kind": "alarm"}
        for k in ("condition", "priority", "event", "state", "value", "limit"):
            rec[k] = m.get(k)
        return rec
    if mtype == "setting":
        by = f" by {m['by']}" if m.get("by") else ""
        text = f"setting {m.get('name')} {m.get('old')} -> {m.get('value')}{by}"
    elif mtype == "button":  # a key event the device handled (what a link capture sees)
        text = f"button {m.get('button')} ({m.get('affected')} affected)"
    elif mtype == "audio_off":
        why = f" ({m['reason']})" if m.get("reason") else ""
        text = ("AUDIO OFF on" if m.get("on") else "AUDIO OFF off") + why
    elif mtype == "reply" and m.get("ok") is False and m.get("cmd") not in READ_ONLY_COMMANDS:
        text = f"refused {m.get('cmd')}: {m.get('error')}"
    else:
        return None
    return {"t_ms": t_ms, "kind": "device", "text": text}


def split_lines(buf: bytearray, data: bytes) -> list[bytes]:
    """Append `data` to `buf`; return the complete lines it now holds (removed from buf)."""
    buf += data
    out: list[bytes] = []
    while True:
        i = buf.find(b"\n")
        if i < 0:
            return out
        out.append(bytes(buf[:i]).strip())
        del buf[: i + 1]


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
    version = header.get("version")
    if version not in VERSIONS or isinstance(version, bool):
        want = " or ".join(str(v) for v in VERSIONS)
        raise bad(1, f"capture version {version!r} is not supported (want {want})")
    source = header.get("source", "sil")
    if source not in SOURCES or (version == 1 and source != "sil"):
        raise bad(1, f"header field 'source' is {source!r}, not one of {', '.join(SOURCES)}")
    if source == "sil":
        fields: tuple[tuple[str, type], ...] = (
            ("oximeter_format", str),
            ("settings", dict),
            ("changed", dict),
        )
        ports = SENSOR_PORTS if version == 1 else SIL_PORTS
    else:
        fields = (("url", str),)
        ports = LINK_PORTS
    for key, typ in fields:
        if not isinstance(header.get(key), typ):
            raise bad(1, f"header field {key!r} missing or not a {typ.__name__}")
    start = header.get("clock_start_ms", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise bad(1, "header field 'clock_start_ms' is not a whole number >= 0")
    wall = header.get("wall_start", 0)
    if not isinstance(wall, int | float) or isinstance(wall, bool):
        raise bad(1, "header field 'wall_start' is not a number")
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
        if "keys" in rec and source == "sil" and version >= 2:
            levels = rec["keys"]
            press = rec.get("press")
            if not isinstance(levels, int) or isinstance(levels, bool) or not 0 <= levels < 256:
                raise bad(no, "'keys' is not a key bit mask 0..255")
            if press is not None and not isinstance(press, str):
                raise bad(no, "'press' is not a word")
            cap.keys.append((t, levels, press))
            continue
        port = rec.get("port")
        if port not in ports:
            raise bad(no, f"'port' is {port!r}, not one of {', '.join(ports)}")
        rx = rec.get("rx")
        if rx is not None and (not isinstance(rx, int | float) or isinstance(rx, bool)):
            raise bad(no, "'rx' is not a number")
        hx = rec.get("hex")
        try:
            data = bytes.fromhex(hx) if isinstance(hx, str) else None
        except ValueError:
            data = None
        if not data:
            raise bad(no, "'hex' missing, empty or not hexadecimal bytes")
        cap.records.append((t, str(port), data))
        cap.rx.append(float(rx) if rx is not None else None)
    cap.end_ms = last
    return cap
