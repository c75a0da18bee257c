# streams.py: the Pico's byte streams for the core, which never wait and never allocate per
# tick: the USB console as the host link (ipoll + readinto, POLLOUT-gated writes in small
# chunks) and a UART reader that asks uart.any() first. No `machine` import: the objects are
# passed in (tests use fakes on MicroPython and CPython).
from bedside.compat import const

_CHUNK = const(64)  # bytes per console write: never more than the CDC buffer takes at once
_USB_RX_MAX = const(64)  # bytes read from the console per call
_POLLIN = const(1)  # select.POLLIN on MicroPython (MP_STREAM_POLL_RD) and CPython
_POLLOUT = const(4)  # select.POLLOUT on MicroPython (MP_STREAM_POLL_WR) and CPython


def _ready(poller, flag):
    """True if poller.ipoll(0) reports `flag` now. ipoll returns the poller itself on
    MicroPython (its one reused tuple): iterating it allocates nothing."""
    for entry in poller.ipoll(0):
        if entry[1] & flag:
            return True
    return False


class UsbHost:
    """The USB CDC console as the host link. On the rp2 port a write to the console waits up
    to 500 ms when a PC holds the port open without reading; so a write happens only when
    poll says POLLOUT, at most _CHUNK bytes, and what does not fit waits in the host link's
    outbox. Reads take only the bytes poll says are there, one readinto of a preallocated
    byte at a time (no read(1) allocation, no poll() list)."""

    def __init__(self, poll_in, poll_out, stdin_buf, stdout_buf):
        self._pin = poll_in  # select.poll() with stdin registered for POLLIN
        self._pout = poll_out  # select.poll() with stdout registered for POLLOUT
        self._in = stdin_buf
        self._out = stdout_buf
        self._one = bytearray(1)

    def readinto(self, buf):
        n = 0
        one = self._one
        limit = len(buf) if len(buf) < _USB_RX_MAX else _USB_RX_MAX
        while n < limit and _ready(self._pin, _POLLIN):
            if not self._in.readinto(one):
                break
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        """Up to _CHUNK bytes of data, only when the console takes them now; returns the count
        (0: not now). MicroPython's stream write(buf, max_len) takes a prefix without slicing."""
        if not _ready(self._pout, _POLLOUT):
            return 0
        n = len(data)
        if n > _CHUNK:
            n = _CHUNK
        return self._out.write(data, n) or 0


class UartIn:
    """A machine.UART for the core: readinto() reads only what uart.any() says has arrived
    (the rp2 port's readinto otherwise waits between characters whatever timeout=0 says),
    write() passes through."""

    def __init__(self, uart):
        self._uart = uart

    def readinto(self, buf):
        n = self._uart.any()
        if not n:
            return 0
        if n > len(buf):
            n = len(buf)
        return self._uart.readinto(buf, n) or 0

    def write(self, data):
        return self._uart.write(data)
