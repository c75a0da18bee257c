"""PC board layer for software-in-the-loop: the same core as the Pico, with PC I/O.

UARTs and the host link are pty pairs (or any pyserial URL); the sounder and LEDs are written
as JSON lines to the annunciator log; the flash store is a directory.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

import serial

from bedside_host import ensure_firmware_on_path

ensure_firmware_on_path()

from bedside.alarms.patterns import COLOR_NAMES  # noqa: E402
from bedside.display import LINES, TALL, Display  # noqa: E402


class Stream(Protocol):
    def readinto(self, buf: Any) -> int | None: ...
    def write(self, data: Any) -> int | None: ...
    def close(self) -> None: ...


class PtyStream:
    """The device side of a pty pair: non-blocking, raw. `path` is what a peer opens."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass unchanged
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)

    def readinto(self, buf: Any) -> int | None:
        try:
            data = os.read(self.master, len(buf))
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno == errno.EIO:  # peer hung up: like an unplugged cable
                return None
            raise
        n = len(data)
        buf[:n] = data
        return n or None

    def write(self, data: Any) -> int | None:
        try:
            return os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            if e.errno == errno.EIO:
                return 0
            raise

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SerialStream:
    """A pyserial port or URL (loop://, socket://, /dev/ttyUSB0) as a non-blocking stream."""

    def __init__(self, url: str, baudrate: int = 9600, **kwargs: Any) -> None:
        self.path = url
        self.port = serial.serial_for_url(
            url, baudrate=baudrate, timeout=0, write_timeout=0, **kwargs
        )

    def readinto(self, buf: Any) -> int | None:
        n = self.port.in_waiting
        if not n:
            return None
        data = self.port.read(min(n, len(buf)))
        buf[: len(data)] = data
        return len(data) or None

    def write(self, data: Any) -> int | None:
        try:
            return int(self.port.write(bytes(data)) or 0)
        except serial.SerialTimeoutException:
            return 0

    def close(self) -> None:
        self.port.close()


def open_stream(url: str | None, baudrate: int = 9600, **kwargs: Any) -> PtyStream | SerialStream:
    return PtyStream() if url is None else SerialStream(url, baudrate, **kwargs)


class AnnunciatorLog:
    """Writes one JSON line per sounder/LED change (the SIL contract, docs/sil.md). t_ms is the
    time since SIL start of the main-loop tick that made the change (`clock.tick_ms`): the
    moment the core decided it, as on the Pico where a pin or PWM write takes no time, not
    later by the PC's JSON and file writes. While `selftest()` says the power-on self-test
    drives the outputs, its records carry "selftest": true."""

    def __init__(self, out: IO[str] | None, clock: Any) -> None:
        self._out = out
        self._clock = clock
        self._lock = threading.Lock()
        self.selftest: Callable[[], bool] | None = None

    def write(self, rec: dict[str, Any]) -> None:
        if self._out is None:
            return
        head: dict[str, Any] = {"t_ms": round(self._clock.tick_ms, 1)}
        if self.selftest is not None and self.selftest():
            head["selftest"] = True
        line = json.dumps({**head, **rec})
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


class DisplayLog:
    """The OLED: renders bedside.display at most every `frame_ms` (as the Pico board does) and
    appends each changed frame as one JSON line: t_ms since SIL start, the 8 text lines, which
    lines are drawn double height ("tall") and which inverted ("inverse")."""

    def __init__(self, out: IO[str], clock: Any, frame_ms: int = 250) -> None:
        self._out = out
        self._clock = clock
        self._frame_ms = frame_ms
        self._next = 0.0
        self.view = Display()
        self.errors = 0  # frames that could not be written (counted in the heartbeat)
        self._tall = [i for i in range(LINES) if TALL >> i & 1]

    def update(self, dev: Any, now: int) -> None:
        t = self._clock.since_start_ms()
        if t < self._next:
            return
        self._next = t + self._frame_ms
        v = self.view
        v.render(dev, now)
        if not v.changed:
            return
        inverse = [i for i in range(LINES) if v.inverse >> i & 1]
        rec = {"t_ms": round(t, 1), "lines": list(v.lines), "tall": self._tall, "inverse": inverse}
        try:
            self._out.write(json.dumps(rec) + "\n")
            self._out.flush()
        except OSError:
            self.errors += 1


class LogSounder:
    def __init__(self, log: AnnunciatorLog) -> None:
        self._log = log
        self.on = False

    def tone(self, hz: int, duty: int) -> None:
        self.on = True
        self._log.write({"dev": "buzzer", "on": True, "hz": hz, "duty": duty})

    def off(self) -> None:
        self.on = False
        self._log.write({"dev": "buzzer", "on": False})


class LogLeds:
    def __init__(self, log: AnnunciatorLog) -> None:
        self._log = log
        self.state = [False] * len(COLOR_NAMES)

    def set(self, color: int, on: bool) -> None:
        self.state[color] = on
        self._log.write({"dev": "led", "color": COLOR_NAMES[color], "on": bool(on)})


class DirStore:
    """The Pico's flash files, in a directory (the store of bedside.alarmlog and persist).
    write() is atomic and verified: a temp file is written and synced, read back and compared,
    then renamed over the old file; OSError on any failure or mismatch, the old file then
    unchanged. size()/read_into() let the logs stream a file through a small buffer."""

    def __init__(self, root: Path, append_limit: int = 256 * 1024) -> None:
        self.root = root
        self.append_limit = append_limit
        root.mkdir(parents=True, exist_ok=True)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def size(self, name: str) -> int | None:
        """Bytes in file `name`, or None if there is no such file."""
        try:
            return (self.root / name).stat().st_size
        except FileNotFoundError:
            return None

    def read_into(self, name: str, offset: int, buf: bytearray | memoryview) -> int:
        """Bytes of file `name` from `offset` read into buf (0 at the end or if no such file);
        IsADirectoryError (an OSError) if the name is a directory."""
        try:
            f = open(self.root / name, "rb")
        except FileNotFoundError:
            return 0
        with f:
            f.seek(offset)
            return f.readinto(buf) or 0

    def write(self, name: str, data: bytes) -> None:
        tmp = self.root / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            if tmp.read_bytes() != bytes(data):
                raise OSError(errno.EIO, "read-back differs from what was written", str(tmp))
            os.replace(tmp, self.root / name)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_dir()

    def _sync_dir(self) -> None:
        """Make a rename durable (the directory entry reaches the disk)."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, name: str, data: bytes) -> None:
        path = self.root / name
        if path.exists() and path.stat().st_size + len(data) > self.append_limit:
            os.replace(path, self.root / (name + ".1"))  # keep one previous generation
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
