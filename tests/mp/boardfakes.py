# boardfakes.py: doubles for the Pico's byte streams (board/streams.py), valid on MicroPython
# and CPython, allocation-free where a test measures allocation: select.poll() objects that
# answer ipoll() with one prebuilt (obj, event) pair, the console's stdin/stdout buffers and a
# machine.UART with any().
POLLIN = 1  # select.POLLIN (MicroPython and CPython)
POLLOUT = 4  # select.POLLOUT


class Poller:
    """select.poll() with one stream registered: ipoll(0) yields a prebuilt (obj, event) pair
    while src.ready() says so, else nothing (an empty tuple: no allocation)."""

    def __init__(self, src, event):
        self.src = src
        self._hit = ((src, event),)
        self.calls = 0

    def ipoll(self, timeout=-1, flags=0):
        assert timeout == 0, "the board never waits in poll"
        self.calls += 1
        return self._hit if self.src.ready() else ()


class Stdin:
    """The console's input (sys.stdin.buffer): bytes pushed with push() or, with loop=True, an
    endless repetition of them. readinto() of more bytes than are there would block on the
    Pico: it fails the test instead."""

    def __init__(self, size=256, loop=False):
        self.data = bytearray(size)
        self.i = 0
        self.n = 0
        self.loop = loop
        self.reads = 0  # readinto calls
        self.biggest = 0  # largest readinto request
        self.buffer = self  # sys.stdin.buffer

    def push(self, data):
        if self.i == self.n:
            self.i = self.n = 0
        for b in data:
            self.data[self.n] = b
            self.n += 1

    def ready(self):
        return self.i < self.n

    def readinto(self, buf):
        want = len(buf)
        self.reads += 1
        if want > self.biggest:
            self.biggest = want
        assert self.n - self.i >= want, "readinto would block: more asked than is there"
        d = self.data
        i = self.i
        for k in range(want):
            buf[k] = d[i]
            i += 1
            if i == self.n and self.loop:
                i = 0
        self.i = i
        return want


class Stdout:
    """The console's output (sys.stdout.buffer): write(buf, max_len) as MicroPython's stream
    write. `room` is what the USB CDC buffer takes now (POLLOUT while > 0); the Pico's write
    waits for the rest, counted in .waits. Complete lines go to on_line(bytes) or are kept
    in .lines; keep=False keeps only counts: .nlines, and .watched (lines containing `watch`),
    without allocating."""

    def __init__(self, room=1 << 20, on_line=None, keep=True, line_max=2048, watch=None):
        self.room = room
        self.on_line = on_line
        self.keep = keep
        self.watch = watch
        self.watched = 0
        self.nlines = 0
        self.lines = []
        self.calls = 0
        self.total = 0
        self.biggest = 0
        self.waits = 0
        self._line = bytearray(line_max)
        self._n = 0
        self.buffer = self  # sys.stdout.buffer

    def ready(self):
        return self.room > 0

    def write(self, buf, max_len=None):
        n = len(buf) if max_len is None or max_len > len(buf) else max_len
        self.calls += 1
        self.total += n
        if n > self.biggest:
            self.biggest = n
        if n > self.room:
            self.waits += 1
        line = self._line
        for k in range(n):
            b = buf[k]
            if b == 10:
                self.nlines += 1
                if self.watch is not None and line.find(self.watch, 0, self._n) >= 0:
                    self.watched += 1
                if self.on_line is not None:
                    self.on_line(bytes(line[: self._n]))
                elif self.keep:
                    self.lines.append(bytes(line[: self._n]))
                self._n = 0
            else:
                line[self._n] = b
                self._n += 1
        return n


class AnyUart:
    """A machine.UART with any(): serves `pattern` endlessly at `per_tick` bytes a tick (tick()
    makes them available), or bytes pushed with push(). readinto(buf, n) of more than any()
    says would wait between characters on the rp2 port: it fails the test."""

    def __init__(self, pattern=b"", per_tick=0):
        self.pattern = pattern
        self.per_tick = per_tick
        self.j = 0  # next pattern byte
        self.avail = 0
        self.any_calls = 0
        self.reads = 0
        self.tx = 0

    def tick(self):
        self.avail += self.per_tick

    def any(self):
        self.any_calls += 1
        return self.avail

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else nbytes
        self.reads += 1
        assert n <= self.avail, "readinto would wait: more asked than any() reported"
        p = self.pattern
        j = self.j
        for k in range(n):
            buf[k] = p[j]
            j += 1
            if j == len(p):
                j = 0
        self.j = j
        self.avail -= n
        return n

    def write(self, data):
        self.tx += len(data)
        return len(data)
