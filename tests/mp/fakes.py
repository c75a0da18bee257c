# fakes.py: board doubles for the core, valid on MicroPython and CPython.
# They record what the core does (sounder and LED changes with timestamps, bytes written)
# and feed it bytes, so tests assert behaviour without hardware.


try:
    from array import array
except ImportError:  # pragma: no cover
    array = None


class Events:
    """A compact log of (int, int, int-or-bool) triples: three int arrays instead of a list of
    tuples (a tenth of the heap on the 64-bit MicroPython port). Reads like a list of tuples:
    len, index, slices (a list), iteration."""

    def __init__(self, last_bool=False, cap=0):
        self._a = array("i")
        self._b = array("i")
        self._c = array("i")
        self._bool = last_bool
        self.cap = cap  # 0: keep all; else keep about the last `cap` (long runs)

    def append(self, e):
        if self.cap and len(self._a) >= self.cap:
            k = self.cap // 2
            self._a = self._a[k:]
            self._b = self._b[k:]
            self._c = self._c[k:]
        self._a.append(e[0])
        self._b.append(e[1])
        self._c.append(1 if e[2] is True else (0 if e[2] is False else e[2]))

    def __len__(self):
        return len(self._a)

    def _get(self, i):
        c = self._c[i]
        return (self._a[i], self._b[i], bool(c) if self._bool else c)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(k) for k in range(*i.indices(len(self._a)))]
        if i < 0:
            i += len(self._a)
        return self._get(i)

    def __iter__(self):
        for k in range(len(self._a)):
            yield self._get(k)


class FakeUart:
    """A UART: bytes pushed with push() are read with readinto(); writes are recorded as
    chunks (no growing contiguous buffer: the tests run on a Pico-sized heap)."""

    def __init__(self):
        self._rx = []  # pushed chunks (bytes), read from self._ri on
        self._ri = 0
        self._tx = []  # written chunks (bytes)
        self._part = b""  # the start of an unfinished line

    def push(self, data):
        self._rx.append(bytes(data))

    @property
    def rx(self):
        """What has been pushed and not read yet."""
        return b"".join(self._rx)[self._ri :]

    def readinto(self, buf):
        n = 0
        while n < len(buf) and self._rx:
            chunk = self._rx[0]
            while n < len(buf) and self._ri < len(chunk):
                buf[n] = chunk[self._ri]
                n += 1
                self._ri += 1
            if self._ri >= len(chunk):
                self._rx.pop(0)
                self._ri = 0
        return n or None

    def write(self, data):
        self._tx.append(bytes(data))
        return len(data)

    @property
    def tx(self):
        """Everything written and not yet taken as lines."""
        return self._part + b"".join(self._tx)

    def clear(self):
        self._tx = []
        self._part = b""

    def take_lines(self):
        """Complete lines written so far (bytes), removing them."""
        out = []
        part = self._part
        for chunk in self._tx:
            start = 0
            while True:
                i = chunk.find(b"\n", start)
                if i < 0:
                    part = part + chunk[start:] if start else part + chunk
                    break
                out.append(part + chunk[start:i] if part else chunk[start:i])
                part = b""
                start = i + 1
        self._tx = []
        self._part = part
        return out


class Clock:
    """Holds now_ms; tests advance it. Starts below the 2**30 wrap on purpose."""

    def __init__(self, start=(1 << 30) - 10000):
        self.now = start

    def advance(self, ms):
        self.now = (self.now + ms) & ((1 << 30) - 1)
        return self.now


class FakeSounder:
    """Records (t, hz, duty) per change (hz 0 = off) in .log, or passes them to sink()."""

    def __init__(self, clock, sink=None):
        self.clock = clock
        self.log = Events()
        self.sink = sink if sink is not None else self._keep
        self.on = False

    def _keep(self, t, hz, duty):
        self.log.append((t, hz, duty))

    def tone(self, hz, duty):
        self.on = True
        self.sink(self.clock.now, hz, duty)

    def off(self):
        self.on = False
        self.sink(self.clock.now, 0, 0)


class FakeLeds:
    """Records (t, color, on) per change in .log, or passes them to sink(t, color, on)."""

    def __init__(self, clock, sink=None):
        self.clock = clock
        self.log = Events(last_bool=True)
        self.state = [False, False, False, False]
        self.sink = sink if sink is not None else self._keep

    def _keep(self, t, color, on):
        self.log.append((t, color, on))

    def set(self, color, on):
        self.state[color] = on
        self.sink(self.clock.now, color, on)


class _Files:
    """name -> bytes view over chunked contents (MemStore.files, for tests to inspect/edit)."""

    def __init__(self, chunks):
        self._chunks = chunks

    def __getitem__(self, name):
        return b"".join(self._chunks[name])

    def __setitem__(self, name, data):
        self._chunks[name] = [bytes(data)]

    def __contains__(self, name):
        return name in self._chunks

    def get(self, name, default=None):
        return self[name] if name in self._chunks else default

    def __len__(self):
        return len(self._chunks)

    def keys(self):
        return self._chunks.keys()


class MemStore:
    """Flash files in memory, with the store interface of bedside.alarmlog. Appends are kept as
    chunks (like flash, an append does not copy the file), so long tests do not fragment a
    Pico-sized heap; read() joins them, read_into() copies without joining. write() is atomic
    and verified like the real stores (temp, read back, compare, rename).
    Fault injection: fail_read / fail_write / fail_append: an exception to raise from
    read+size+read_into / write / append; bad_writes: write() stores corrupted data (its
    verify then fails); dirs: names that are directories (OSError EISDIR on use, as in the SIL).
    ops counts store operations."""

    def __init__(self, files=None):
        self._chunks = {}
        self.files = _Files(self._chunks)
        for name, data in (files or {}).items():
            self._chunks[name] = [bytes(data)]
        self.fail_read = None
        self.fail_write = None
        self.fail_append = None
        self.bad_writes = False
        self.dirs = set()
        self.ops = 0

    def _use(self, name, fail):
        self.ops += 1
        if fail is not None:
            raise fail
        if name in self.dirs:
            raise OSError(21)  # EISDIR

    def read(self, name):
        self._use(name, self.fail_read)
        return self.files.get(name)

    def size(self, name):
        self.ops += 1
        if self.fail_read is not None:
            raise self.fail_read
        if name in self.dirs:
            return 4096  # what stat() says of a directory on the PC
        chunks = self._chunks.get(name)
        if chunks is None:
            return None
        n = 0
        for c in chunks:
            n += len(c)
        return n

    def read_into(self, name, offset, buf):
        self._use(name, self.fail_read)
        chunks = self._chunks.get(name)
        if not chunks:
            return 0
        want = len(buf)
        n = 0
        pos = 0  # file offset of chunk c
        for c in chunks:
            end = pos + len(c)
            cur = offset + n
            if end > cur:
                s = cur - pos
                k = min(end - cur, want - n)
                buf[n : n + k] = memoryview(c)[s : s + k]
                n += k
                if n >= want:
                    break
            pos = end
        return n

    def write(self, name, data):
        self._use(name, self.fail_write)
        data = bytes(data)
        stored = data
        if self.bad_writes:
            stored = bytes([data[0] ^ 1]) + data[1:] if data else b"\x00"
        tmp = name + ".tmp"
        self._chunks[tmp] = [stored]
        if self.files[tmp] != data:  # the read-back verify
            del self._chunks[tmp]
            raise OSError(5)  # EIO
        self._chunks[name] = self._chunks.pop(tmp)

    def append(self, name, data):
        self._use(name, self.fail_append)
        if name not in self._chunks:
            self._chunks[name] = []
        self._chunks[name].append(bytes(data))
