# rig.py: the bench rig for MicroPython (and CPython): the whole device on board doubles with
# the heaviest input (Nonin #2 at 75 frames/s, an NIBP measurement running, a host that pings
# every second and asks for a replay every 5 s, an active HIGH alarm, the display rendered every
# 250 ms), and a profiled copy of the main-loop step that times each stage with ticks_us.
# Bench only: the production loop (bedside.mainloop / Device.poll) is not instrumented.
import gc
import json
import sys
import time

from bedside.device import Device
from mputil import nonin2_packet

MP = sys.implementation.name == "micropython"
FRAME_MS = 250  # the board redraws the OLED at most this often (board/rp2040.py)

if MP:
    now_us = time.ticks_us
    diff_us = time.ticks_diff
else:

    def now_us():
        return time.perf_counter_ns() // 1000

    def diff_us(a, b):
        return a - b


class Clock:
    """now_ms, starting just below the 2**30 tick wrap (as tests/mp/fakes.Clock)."""

    def __init__(self, start=(1 << 30) - 10000):
        self.now = start

    def advance(self, ms):
        self.now = (self.now + ms) & 0x3FFFFFFF
        return self.now


class RateUart:
    """An oximeter UART: `rate` bytes a second of an endless pattern, made available per tick
    (tick(ms)); readinto copies what is there (a byte loop: no allocation)."""

    def __init__(self, pattern, rate):
        self.data = pattern
        self.rate = rate
        self.j = 0
        self.avail = 0
        self._acc = 0

    def tick(self, ms):
        self._acc += self.rate * ms
        n = self._acc // 1000
        self._acc -= n * 1000
        self.avail += n

    def readinto(self, buf, nbytes=None):
        n = self.avail
        room = len(buf) if nbytes is None else nbytes
        if n > room:
            n = room
        if not n:
            return None
        d = self.data
        j = self.j
        m = len(d)
        for k in range(n):
            buf[k] = d[j]
            j += 1
            if j == m:
                j = 0
        self.j = j
        self.avail -= n
        return n

    def write(self, data):
        return len(data)


class Host:
    """The PC: sends prebuilt command lines (queue()), reads and counts everything written."""

    def __init__(self):
        self._line = None
        self._i = 0
        self.rx_bytes = 0
        self.reads = 0
        self.written = 0

    def queue(self, line):
        self._line = line
        self._i = 0

    def readinto(self, buf):
        line = self._line
        if line is None:
            return None
        n = len(line) - self._i
        if n > len(buf):
            n = len(buf)
        i = self._i
        for k in range(n):
            buf[k] = line[i + k]
        self._i += n
        if self._i >= len(line):
            self._line = None
        self.reads += 1
        return n

    def write(self, data):
        n = len(data)
        self.written += n
        return n


class LeanStore:
    """The flash as a sink: written files (settings) are kept, appended log lines are only
    counted (on the Pico they are on flash, not on the heap; the benches read no log back).
    The store interface of bedside.alarmlog; `ops` counts operations."""

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.sizes = {}
        self.ops = 0

    def read(self, name):
        return self.files.get(name)

    def size(self, name):
        f = self.files.get(name)
        if f is not None:
            return len(f) + self.sizes.get(name, 0)
        return self.sizes.get(name)

    def read_into(self, name, offset, buf):
        f = self.files.get(name)
        if f is None or offset >= len(f):
            return 0
        n = min(len(buf), len(f) - offset)
        buf[:n] = f[offset : offset + n]
        return n

    def write(self, name, data):
        self.ops += 1
        self.files[name] = bytes(data)
        self.sizes.pop(name, None)

    def append(self, name, data):
        self.ops += 1
        self.sizes[name] = self.sizes.get(name, 0) + len(data)


class Quiet:
    def tone(self, hz, duty):
        self.on = True

    def off(self):
        self.on = False

    def set(self, color, on):
        pass


class Screen:
    """The OLED as the board drives it, without the I2C: Display.render every FRAME_MS and each
    changed line drawn with framebuf into a 128x8 row (the board's _draw)."""

    def __init__(self):
        from bedside.display import Display

        self.view = Display()
        self.errors = 0
        self._t = None
        self._todo = 0
        try:
            import framebuf

            self._row = bytearray(128)
            self._fb = framebuf.FrameBuffer(self._row, 128, 8, framebuf.MONO_VLSB)
        except ImportError:  # CPython: the text is rendered, no pixels drawn
            self._fb = None

    def update(self, dev, now):
        if self._todo:  # one line a step, as the board does
            li = 0
            while not self._todo & (1 << li):
                li += 1
            self._todo &= ~(1 << li)
            if self._fb is not None:
                self._fb.fill(0)
                self._fb.text(self.view.lines[li], 0, 0, 1)
            return
        if self._t is not None and (now - self._t) & 0x3FFFFFFF < FRAME_MS:
            return
        self._t = now
        self.view.render(dev, now)
        self._todo = self.view.dirty


PING = b'{"cmd": "ping", "id": 1}\n'


class Heavy:
    """The heaviest input through the whole main-loop step (MainLoop over Device)."""

    def __init__(self, spo2=80, nibp=True, display=True, host=True, store=None):
        from bedside.mainloop import MainLoop
        from nibpmod import NibpModule

        self.clock = Clock()
        self.oxi = RateUart(nonin2_packet(72, spo2), 375)  # 75 frames/s x 5 bytes
        self.nibp = NibpModule(self.clock, duration_ms=1 << 29) if nibp else None
        self.host = Host()
        self.host_on = host
        q = Quiet()
        self.store = store if store is not None else LeanStore()
        self.dev = Device(
            self.clock.now,
            self.oxi,
            self.host,
            q,
            q,
            store=self.store,
            nibp_uart=self.nibp,
            selftest=False,
        )
        self.screen = Screen() if display else None
        self.loop = MainLoop(self.dev, self.screen)
        self.t = 0
        self.replay = None

    def start(self):
        """Settle: readings flow, the alarm sounds, a measurement runs, the host is seen."""
        if self.nibp is not None:
            self.dev.nibp_request("start")
        for _ in range(500):
            self.tick()
        self.replay = ('{"cmd": "replay", "from": %d, "id": 2}\n' % self.dev.link.seq).encode()

    def feed(self):
        """The inputs of the next 10 ms."""
        self.oxi.tick(10)
        if self.host_on:
            if self.t % 1000 == 0:
                self.host.queue(PING)
            elif self.t % 5000 == 500 and self.replay is not None:
                self.host.queue(self.replay)
        self.t += 10

    def tick(self):
        self.feed()
        self.loop.step(self.clock.advance(10), 0)

    def profiled_tick(self, acc):
        """One tick as MainLoop.step + Device.poll run it, each stage timed (acc[i] += us).
        Stages: 0 sensors (UART reads, decode, NIBP), 1 host rx, 2 alarm rules and engine,
        3 annunciator, 4 report and commands, 5 host tx, 6 display, 7 flash write-behind.
        Mirrors Device.poll and MainLoop.step (keys left out: no key is pressed)."""
        self.feed()
        now = self.clock.advance(10)
        dev = self.dev
        dev.now = now
        d = (now - dev._last) & 0x3FFFFFFF
        dev._last = now
        dev._up_ms += d
        if dev._up_ms >= 1000:
            q = dev._up_ms // 1000
            dev.up_s += q
            dev._up_ms -= q * 1000
        t0 = now_us()
        dev._read_sensors(now)
        t1 = now_us()
        if dev.link.pump(dev.host, dev._on_line):
            dev.obs.host_seen = True
            dev.obs.host_rx.mark(now)
        t2 = now_us()
        dev._judge(now)
        t3 = now_us()
        dev._annunciate(now)
        t4 = now_us()
        if (now - dev._t_report) & 0x3FFFFFFF >= 1000:
            dev._t_report = now
            dev.report(now)
        dev.cmds.step(now)
        t5 = now_us()
        dev.link.flush(dev.host)
        t6 = now_us()
        if self.screen is not None:
            self.screen.update(dev, now)
        t7 = now_us()
        dev.background(now)
        t8 = now_us()
        acc[0] += diff_us(t1, t0)
        acc[1] += diff_us(t2, t1)
        acc[2] += diff_us(t3, t2)
        acc[3] += diff_us(t4, t3)
        acc[4] += diff_us(t5, t4)
        acc[5] += diff_us(t6, t5)
        acc[6] += diff_us(t7, t6)
        acc[7] += diff_us(t8, t7)


STAGES = (
    "sensors: UART reads, decode, NIBP driver",
    "host rx: read and handle commands",
    "alarm rules and engine",
    "annunciator",
    "report and commands",
    "host tx: write queued lines",
    "display render and draw",
    "flash write-behind",
)


def emit(kind, body):
    print("BENCH " + json.dumps({"kind": kind, "data": body}))


def median(xs, in_place=False):
    """The median; in_place sorts xs itself (no copy: a long list has no room for a second)."""
    s = xs if in_place else sorted(xs)
    if in_place:
        s.sort()
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def pct(xs, p, in_place=False):
    """The p-th percentile (nearest rank); in_place as for median."""
    s = xs if in_place else sorted(xs)
    if in_place:
        s.sort()
    k = (p * len(s) + 99) // 100 - 1
    return s[max(0, min(len(s) - 1, k))]


def main(parts):
    """A bench script's entry: the runtime line, then each part named on the command line
    (default: all), e.g. main({"formats": per_format})."""
    heap = gc.mem_free() + gc.mem_alloc() if MP else None
    ver = ".".join(str(x) for x in sys.implementation.version[:3])
    if MP:
        gc.collect()
    used = gc.mem_alloc() if MP else None
    print(
        "%s on %s %s, gc heap %s B, %s B used after imports"
        % (sys.argv[0], sys.implementation.name, ver, heap, used)
    )
    emit("runtime", {"name": sys.implementation.name, "version": ver, "heap": heap})
    which = [a for a in sys.argv[1:] if not a.startswith("-")] or list(parts)
    for name in which:  # tools/bench_micropython.py runs each in its own process (fresh heap)
        parts[name]()
        gc.collect()
