"""One serial port by path or pyserial URL, read without blocking; a vanished port is an error
value (PortGone with a readable reason), never a traceback.

``serial_for_url`` takes a device path (``/dev/ttyACM0``, a pty) or any pyserial URL
(``loop://``, ``socket://host:port``, ``rfc2217://...``), so tests and the SIL need no hardware.
"""

from __future__ import annotations

import os
import select
import time
from typing import Any

import serial

from bedside_host import ensure_firmware_on_path

ensure_firmware_on_path()

from bedside.hostlink import HOST_BAUD  # noqa: E402

POSIX_SERIAL: tuple[type, ...] = ()  # device paths and ptys: read through poll() + os.read
try:
    from serial.serialposix import Serial as _PosixSerial

    POSIX_SERIAL = (_PosixSerial,)
except ImportError:  # not POSIX: pyserial's own read for every port
    pass

BAUD = HOST_BAUD  # the firmware's one value: USB CDC ignores it; real UART bridges need it
WRITE_TIMEOUT_S = 0.5  # a command line is tiny: longer means the device is not reading
_READ_MAX = 65536
_POLL_STEP_S = 0.01  # ports without a file descriptor (loop://) are polled this often


class PortGone(Exception):
    """The port could not be opened, or failed while open (unplugged, device reset)."""


def _reason(e: BaseException) -> str:
    """A short readable reason: the OS error's text where there is one."""
    code = getattr(e, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    text = str(e).strip() or type(e).__name__
    if "returned no data" in text:  # pyserial's words for a port whose device went away
        return "the device went away (the port returned no data)"
    return text.splitlines()[0][:200]


def _wait_readable(fd: int, timeout: float) -> bool:
    """Wait up to `timeout` s for input on `fd` (poll(): any descriptor number)."""
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(p.poll(max(0, int(timeout * 1000 + 0.999))))


def _write_fd(fd: int, data: bytes, timeout: float) -> None:
    """Write all of `data` to a non-blocking descriptor within `timeout` s, with poll() (as
    pyserial's write does with select(), which cannot take descriptors above 1023)."""
    view = memoryview(data)
    end = time.monotonic() + timeout
    while view:
        try:
            n = os.write(fd, view)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            raise serial.SerialException(f"write failed: {e}") from None
        view = view[n:]
        if not view:
            return
        left = end - time.monotonic()
        if left <= 0:
            raise serial.SerialTimeoutException("Write timeout")
        p = select.poll()
        p.register(fd, select.POLLOUT)
        p.poll(max(1, int(left * 1000)))


class Transport:
    def __init__(self, url: str, baudrate: int = BAUD) -> None:
        self.url = url
        self.baudrate = baudrate
        self._ser: Any = None
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def open(self) -> None:
        """Open the port (raises PortGone with the reason)."""
        self.close()
        try:
            ser = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0, write_timeout=WRITE_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortGone(f"cannot open {self.url}: {_reason(e)}") from None
        self._ser = ser
        try:
            fd = ser.fileno()
            self._fd = fd if isinstance(fd, int) and fd >= 0 else None
        except Exception:  # loop:// and some URL handlers have no descriptor
            self._fd = None

    def read(self, timeout: float = 0.0) -> bytes:
        """What has arrived, waiting up to ``timeout`` s for the first byte (b"" if nothing)."""
        ser = self._ser
        if ser is None:
            raise PortGone("port not open")
        try:
            if self._fd is not None and isinstance(ser, POSIX_SERIAL):
                return self._read_fd(self._fd, timeout)
            if timeout > 0:
                if self._fd is not None:
                    _wait_readable(self._fd, timeout)
                else:
                    end = time.monotonic() + timeout
                    while not ser.in_waiting and time.monotonic() < end:
                        time.sleep(_POLL_STEP_S)
            return bytes(ser.read(_READ_MAX))
        except (serial.SerialException, OSError, ValueError, TypeError) as e:
            # TypeError/ValueError: some handlers fail that way on a closed socket or fd
            self.close()
            raise PortGone(f"{self.url}: {_reason(e)}") from None

    def _read_fd(self, fd: int, timeout: float) -> bytes:
        """A device path or pty: poll() and os.read() on its descriptor, as pyserial's read
        does but without select(), which cannot take descriptors above 1023 (a station with
        a few hundred chairs has more). Errors read as pyserial's do."""
        if not _wait_readable(fd, timeout):
            return b""
        try:
            data = os.read(fd, _READ_MAX)
        except BlockingIOError:
            return b""
        except InterruptedError:
            return b""
        except OSError as e:
            raise serial.SerialException(f"read failed: {e}") from None
        if not data:  # readable but nothing: the device went away (pyserial's words)
            raise serial.SerialException(
                "device reports readiness to read but returned no data "
                "(device disconnected or multiple access on port?)"
            )
        return data

    def write(self, data: bytes) -> None:
        ser = self._ser
        if ser is None:
            raise PortGone("port not open")
        try:
            if self._fd is not None and isinstance(ser, POSIX_SERIAL):
                _write_fd(self._fd, data, WRITE_TIMEOUT_S)
            else:
                ser.write(data)
        except serial.SerialTimeoutException:
            self.close()
            raise PortGone(f"{self.url}: write timed out (the device is not reading)") from None
        except (serial.SerialException, OSError, ValueError, TypeError) as e:
            self.close()
            raise PortGone(f"{self.url}: {_reason(e)}") from None

    def close(self) -> None:
        ser, self._ser, self._fd = self._ser, None, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # closing a vanished port may fail; it is closed either way
                pass
