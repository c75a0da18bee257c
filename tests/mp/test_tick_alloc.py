# test_tick_alloc.py: the whole tick as the Pico runs it allocates nothing in steady state
# (REQ-CORE-46): MainLoop over the board's streams (board/streams.py), a talking host, a
# sounding alarm and more than 12.4 days of uptime. Its own module, with lean doubles: the
# unix port's 64-bit heap holds the device with little to spare at 192 KiB.
from bedside.alarms.conditions import P_HIGH, SPO2_DESAT
from bedside.device import Device
from bedside.mainloop import MainLoop
from board.streams import UartIn, UsbHost
from mputil import IS_MICROPYTHON, nonin2_packet

PING = b'{"cmd": "ping", "id": 1}\n'
_ANSWER = b'"cmd": "ping"'  # in the reply line


class _Poll:
    """select.poll() with one stream: ipoll(0) yields a prebuilt (obj, event) pair or ()."""

    def __init__(self, src, event):
        self.src = src
        self.hit = ((src, event),)

    def ipoll(self, timeout=-1, flags=0):
        return self.hit if self.src.ready() else ()


class _Stdin:
    def __init__(self):
        self.i = len(PING)  # nothing pending until ping()
        self.reads = 0

    def ping(self):
        self.i = 0

    def ready(self):
        return self.i < len(PING)

    def readinto(self, buf):
        assert len(buf) == 1 and self.ready()  # one byte at a time, only what is there
        buf[0] = PING[self.i]
        self.i += 1
        self.reads += 1
        return 1


class _Stdout:
    """Always writable; counts bytes and the ping replies (a streaming match, no buffer)."""

    def __init__(self):
        self.total = 0
        self.answers = 0
        self._m = 0

    def ready(self):
        return True

    def write(self, buf, max_len):
        n = len(buf) if max_len > len(buf) else max_len
        m = self._m
        for k in range(n):
            b = buf[k]
            if b == _ANSWER[m]:
                m += 1
                if m == len(_ANSWER):
                    self.answers += 1
                    m = 0
            else:
                m = 1 if b == _ANSWER[0] else 0
        self._m = m
        self.total += n
        return n


class _AnyUart:
    """machine.UART with any(): `per_tick` more bytes of `data` (endless) each tick()."""

    def __init__(self, data, per_tick):
        self.data = data
        self.per_tick = per_tick
        self.j = 0
        self.avail = 0

    def tick(self):
        self.avail += self.per_tick

    def any(self):
        return self.avail

    def readinto(self, buf, n):
        assert n <= self.avail  # never more than any() reported (the rp2 readinto would wait)
        d = self.data
        j = self.j
        for k in range(n):
            buf[k] = d[j]
            j += 1
            if j == len(d):
                j = 0
        self.j = j
        self.avail -= n
        return n

    def write(self, data):
        return len(data)


class Quiet:
    def tone(self, hz, duty):
        pass

    def off(self):
        pass

    def set(self, color, on):
        pass


class Clock:
    def __init__(self, start=(1 << 30) - 10000):  # just below the tick wrap
        self.now = start

    def advance(self, ms):
        self.now = (self.now + ms) & ((1 << 30) - 1)
        return self.now


class CountingStore:
    """Flash files in memory (appends kept as chunks, like fakes.MemStore); counts writes."""

    def __init__(self):
        self.files = {}
        self.ops = 0

    def read(self, name):
        chunks = self.files.get(name)
        return b"".join(chunks) if chunks is not None else None

    def write(self, name, data):
        self.ops += 1
        self.files[name] = [bytes(data)]

    def append(self, name, data):
        self.ops += 1
        if name not in self.files:
            self.files[name] = []
        self.files[name].append(bytes(data))


def test_full_tick_with_board_layer_allocates_nothing():
    """REQ-CORE-46: the whole tick as the Pico runs it (MainLoop over the board's UartIn and
    UsbHost streams), with a host that sends a ping every second (answered), SPO2_DESAT
    sounding, and more than 12.4 days of uptime (dev.up_s > 2**30 // 1000) and large
    counters: every tick in which no message is built, no line arrives, nothing is written to
    the host and nothing to flash allocates 0 bytes on MicroPython, and they are at least
    90 % of all ticks; no number in the device's state reaches 2**30 (a bigint on the Pico)."""
    clock = Clock()
    uart = _AnyUart(nonin2_packet(72, 80) * 3, 4)  # 400 B/s of SpO2 80 %: SPO2_DESAT
    stdin = _Stdin()
    stdout = _Stdout()
    host = UsbHost(_Poll(stdin, 1), _Poll(stdout, 4), stdin, stdout)  # POLLIN, POLLOUT
    q = Quiet()
    store = CountingStore()
    dev = Device(clock.now, UartIn(uart), host, q, q, store=store)
    loop = MainLoop(dev)
    # 12.4 days and more since boot; counters near their caps (all saturate or wrap)
    dev.up_s = (1 << 30) // 1000 + 5
    link = dev.link
    link.seq = (1 << 30) - 20000
    link.rx_lines = link.tx_bytes = link.rx_errors = (1 << 30) - 100
    t = [0]

    def tick():
        uart.tick()
        if t[0] % 1000 == 0:
            stdin.ping()
        t[0] += 10
        loop.step(clock.advance(10), 0)

    for _ in range(1500):  # 15 s: self-test over, alarm established, pings answered
        tick()
    assert dev.alarms.exists[SPO2_DESAT] and dev.alarms.audible_priority() == P_HIGH
    assert stdout.answers >= 14 and dev.up_s > (1 << 30) // 1000
    assert dev.faults == 0, dev.last_fault

    gc = None
    if IS_MICROPYTHON:
        import gc
    if gc is not None and hasattr(gc, "threshold"):
        gc.threshold(-1)  # the Pico's default: collect only when an allocation does not fit
    n = 3000  # 30 s, one measurement per tick
    quiet = quiet_bytes = quiet_max = busy = busy_bytes = 0
    answers = stdout.answers
    for _ in range(n):
        seq = link.seq
        rx = stdin.reads
        wrote = stdout.total
        ops = store.ops
        if gc is not None:
            # The collector is held off inside the tick and run between ticks while room is
            # short: a tick that allocates nothing then leaves mem_alloc() unchanged and one
            # that allocates (or gives memory back) changes it. With the collector on, a
            # collection could fall in a quiet tick (MicroPython puts the call frame of a
            # function with more than 11 locals and stack slots on the heap for the call, so a
            # tick that makes no garbage can set off the collection of a full heap) and free
            # other ticks' garbage, which this check would take for the tick's own bytes.
            if gc.mem_free() < 8192:
                gc.collect()
            gc.disable()
            a = gc.mem_alloc()
        tick()
        d = 0
        if gc is not None:
            d = gc.mem_alloc() - a
            gc.enable()
        if link.seq == seq and stdin.reads == rx and stdout.total == wrote and store.ops == ops:
            quiet += 1
            if d:
                quiet_bytes += d if d > 0 else -d
                quiet_max = max(quiet_max, d if d > 0 else -d)
        else:
            busy += 1
            busy_bytes += d if d > 0 else -d
    assert stdout.answers - answers == n // 100  # a ping a second, each answered
    assert dev.alarms.exists[SPO2_DESAT] and dev.faults == 0, dev.last_fault
    assert quiet * 100 >= 90 * n, (quiet, busy)
    if gc is None:  # CPython: the numbers are the same; the walk needs more than a Pico's heap
        from heapwalk import big_ints

        assert big_ints(dev, "dev") == []
        return  # allocation is measured on MicroPython only
    print(
        "full tick: %d ticks, %d quiet (max %d B, %d B total), %d with messages, host I/O or "
        "flash writes: %.1f B per tick on average"
        % (n, quiet, quiet_max, quiet_bytes, busy, (quiet_bytes + busy_bytes) / n)
    )
    assert quiet_bytes == 0, (quiet_bytes, quiet_max)  # no quiet tick changed mem_alloc()
