# test_board_streams.py: the Pico's byte streams (board/streams.py) with fake pollers, console
# buffers and UARTs; runs on CPython and on the MicroPython unix port (allocation checked there).
import json

from bedside.hostlink import WRITE_BUDGET, HostLink
from board.streams import UartIn, UsbHost
from boardfakes import POLLIN, POLLOUT, AnyUart, Poller, Stdin, Stdout
from mputil import alloc_per_call

CHUNK = 64  # bytes per console write and per console read call (board/streams.py)


def _usb(stdin=None, stdout=None):
    stdin = stdin if stdin is not None else Stdin()
    stdout = stdout if stdout is not None else Stdout()
    pin = Poller(stdin, POLLIN)
    pout = Poller(stdout, POLLOUT)
    return UsbHost(pin, pout, stdin, stdout), stdin, stdout, pin, pout


def test_usb_read_takes_only_what_poll_reports():
    """REQ-CORE-42: reads take one byte at a time, only while poll reports POLLIN (a readinto of
    more would wait on the Pico); with nothing there stdin is never read."""
    host, stdin, _out, pin, _pout = _usb()
    buf = bytearray(64)
    assert host.readinto(buf) == 0
    assert stdin.reads == 0 and pin.calls == 1
    stdin.push(b'{"cmd":"ping"}\n')
    assert host.readinto(buf) == 15
    assert bytes(buf[:15]) == b'{"cmd":"ping"}\n'
    assert stdin.reads == 15 and stdin.biggest == 1
    assert host.readinto(buf) == 0 and stdin.reads == 15


def test_usb_read_is_bounded_per_call():
    """REQ-CORE-42: at most 64 bytes per call, and never more than the buffer holds."""
    host, stdin, _out, _pin, _pout = _usb(Stdin(size=256))
    stdin.push(bytes(range(200)))
    buf = bytearray(128)
    assert host.readinto(buf) == CHUNK
    assert bytes(buf[:CHUNK]) == bytes(range(CHUNK))
    small = bytearray(10)
    assert host.readinto(small) == 10
    assert bytes(small) == bytes(range(CHUNK, CHUNK + 10))
    assert host.readinto(memoryview(buf)) == CHUNK
    assert host.readinto(buf) == 200 - 2 * CHUNK - 10
    assert host.readinto(buf) == 0


def test_usb_write_waits_for_pollout():
    """REQ-CORE-43: with POLLOUT not ready (a PC holds the port without reading) write returns 0
    without calling stdout; when ready it writes at most 64 bytes, a prefix of the data."""
    host, _in, stdout, _pin, pout = _usb(stdout=Stdout(room=0))
    assert host.write(b"x" * 10) == 0
    assert stdout.calls == 0 and pout.calls == 1
    stdout.room = 1000
    data = b"abcdefghijklmnopqrstuvwxyz" * 8
    assert host.write(memoryview(data)) == CHUNK
    assert stdout.calls == 1 and stdout.total == CHUNK and stdout.biggest == CHUNK
    assert host.write(b"ab\n") == 3
    assert stdout.lines == [data[:CHUNK] + b"ab"]


def test_hostlink_flush_over_usb_keeps_the_budget():
    """REQ-CORE-43: HostLink.flush over UsbHost never writes more than hostlink.WRITE_BUDGET
    bytes per tick nor more than 64 per write; a stalled console takes nothing and the lines
    arrive whole and in order once it reads again."""
    link = HostLink(boot=3)
    host, _in, stdout, _pin, _pout = _usb(stdout=Stdout(room=0))
    for i in range(12):
        link.send("event", 1000 + i, {"i": i, "pad": "p" * 60})
    for _ in range(50):  # a PC holding the port without reading: nothing written, no wait
        assert link.flush(host) is False
    assert stdout.calls == 0
    stdout.room = 1 << 20
    ticks = 0
    while True:
        before = stdout.total
        done = link.flush(host)
        ticks += 1
        assert stdout.total - before <= WRITE_BUDGET
        if done:
            break
        assert ticks < 100
    assert ticks >= 2  # more than one budget's worth was queued
    assert stdout.biggest <= CHUNK
    msgs = [json.loads(line) for line in stdout.lines]
    assert [m["i"] for m in msgs] == list(range(12))
    assert [m["seq"] for m in msgs] == list(range(1, 13))


def test_uart_reads_only_what_any_reports():
    """REQ-CORE-44: UartIn asks any() first and reads at most that (the rp2 port's readinto waits
    between characters whatever timeout=0 says); with any() == 0 it never calls readinto."""
    uart = AnyUart(bytes(range(100)))
    rx = UartIn(uart)
    buf = bytearray(64)
    assert rx.readinto(buf) == 0
    assert uart.any_calls == 1 and uart.reads == 0
    uart.avail = 10
    assert rx.readinto(buf) == 10 and bytes(buf[:10]) == bytes(range(10))
    assert uart.reads == 1 and uart.avail == 0
    uart.avail = 100
    assert rx.readinto(memoryview(buf)) == 64  # never more than the buffer
    assert bytes(buf) == bytes(range(10, 74))
    assert rx.readinto(buf) == 36 and uart.avail == 0
    reads = uart.reads
    assert rx.readinto(buf) == 0 and uart.reads == reads
    assert rx.write(b"abc") == 3 and uart.tx == 3


def test_board_streams_allocate_nothing():
    """REQ-CORE-45: UsbHost.readinto (nothing ready and bytes ready) and UartIn.readinto
    allocate nothing per call on MicroPython."""
    quiet, _i, _o, _p, _q = _usb()
    stdin = Stdin(size=64, loop=True)
    stdin.push(b'{"cmd":"ping","id":1}\n')
    busy, _i, _o, _p, _q = _usb(stdin)
    uart = AnyUart(bytes(range(50)), per_tick=32)
    rx = UartIn(uart)
    mv = memoryview(bytearray(64))

    def read_quiet():
        quiet.readinto(mv)

    def read_busy():
        busy.readinto(mv)

    def read_uart():
        uart.tick()
        rx.readinto(mv)

    read_busy()
    assert stdin.reads > 0 and bytes(mv[:22]) == b'{"cmd":"ping","id":1}\n'[:22]
    results = []
    for fn in (read_quiet, read_busy, read_uart):
        per = alloc_per_call(fn, 200)
        if per is None:  # CPython: allocation is measured on MicroPython only
            return
        results.append(per)
    assert results == [0, 0, 0], results
