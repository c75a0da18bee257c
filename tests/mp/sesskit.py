# sesskit.py: helpers of the infusion-session tests (valid on MicroPython and CPython): a
# SunTech NIBP module that answers the driver and measures a set blood pressure, a bench with
# it, and the session command helper.
from bedside.sensors.suntech import CMD_ABORT, CMD_GET_CUFF, CMD_GET_DATA
from corekit import bench, cmd
from fakes import MemStore

R_O = bytes.fromhex("3E044F6F")
R_K = bytes.fromhex("3E044B73")
R_A = bytes.fromhex("3E04417D")
CUFF0 = bytes((0x3E, 0x05, 0, 0, (0x100 - (0x3E + 0x05)) & 0xFF))
MIN = 60000


def data_packet(sys, dia, mean, pr):
    p = bytearray(24)
    p[0] = 0x3E
    p[1] = 0x18
    p[2], p[3] = sys & 0xFF, sys >> 8
    p[4], p[5] = dia & 0xFF, dia >> 8
    p[7] = 1  # BPS: a blood pressure result
    p[16], p[17] = pr & 0xFF, pr >> 8
    p[18], p[19] = mean & 0xFF, mean >> 8
    p[23] = (0x100 - sum(p[:23])) & 0xFF
    return bytes(p)


class NibpModule:
    """A SunTech module as the device's NIBP UART: answers a start with 'O', reports 'K'
    `meas_ms` later, answers get-data with `bp` (sys, dia, map, pr) and cuff polls with 0."""

    def __init__(self, clock, bp=(120, 80, 93, 72), meas_ms=20000):
        self.clock = clock
        self.bp = bp
        self.meas_ms = meas_ms
        self.out = []
        self.t_k = None
        self.starts = 0
        self.start_times = []  # clock.now of each start (the last 64)

    def write(self, buf):
        b = bytes(buf)
        if b[:1] == b":" and len(b) == 3:  # a start command (adult, pediatric, neonate)
            self.starts += 1
            self.start_times.append(self.clock.now)
            if len(self.start_times) > 64:
                self.start_times.pop(0)
            self.out.append(R_O)
            self.t_k = self.clock.now
        elif b == CMD_GET_CUFF:
            self.out.append(CUFF0)
        elif b == CMD_GET_DATA:
            self.out.append(data_packet(*self.bp))
        elif b == CMD_ABORT:
            self.out.append(R_A)
            self.t_k = None
        return len(buf)

    def readinto(self, buf):
        if self.t_k is not None:
            d = (self.clock.now - self.t_k) & ((1 << 30) - 1)
            if d >= self.meas_ms:
                self.t_k = None
                self.out.append(R_K)
        if not self.out:
            return 0
        data = self.out.pop(0)
        n = len(data)
        buf[:n] = data
        return n


TYPES = ("alarm", "reply", "session", "fault", "nibp", "button")


def sbench(store=None, **kw):
    """A bench with an NIBP module; keeps alarm, reply, session, fault, nibp, button messages."""
    from fakes import Clock

    store = store if store is not None else MemStore()
    holder = {}

    class Late:  # the module needs the bench's clock, made by the bench
        def write(self, buf):
            return holder["m"].write(buf)

        def readinto(self, buf):
            return holder["m"].readinto(buf)

    b = bench(types=TYPES, store=store, nibp_uart=Late(), **kw)
    holder["m"] = NibpModule(b.clock)
    b.nibp_module = holder["m"]
    _unused = Clock
    return b


def op(b, name, by="nurse", **args):
    """One `session` op; returns the reply."""
    obj = {"cmd": "session", "op": name, "by": by}
    obj.update(args)
    return cmd(b, obj)


def state(b):
    return cmd(b, {"cmd": "get_session"})["session"]


def events(b, event=None):
    return [
        m for m in b.messages if m["type"] == "session" and (event is None or m["event"] == event)
    ]


def run_s(b, seconds, spo2=97, hr=72, tick=100):
    """Run `seconds` of virtual time with the oximeter sending (long ticks: fast) and a host
    that talks (no HOST_LINK_LOST)."""
    while seconds > 0:
        n = 5 if seconds > 5 else seconds
        b.dev.obs.host_rx.mark(b.clock.now)
        b.run(n * 1000, hr, spo2, tick=tick)
        seconds -= n


def to_baseline(b):
    assert op(b, "open", patient="P-0001", course_day=3, course_total=10)["ok"]
    assert op(b, "screened", override=False)["ok"]


def take_bp(b, bp=None, spo2=97, hr=72):
    """A baseline NIBP reading: STAT through `baseline repeat`, measured by the module."""
    if bp is not None:
        b.nibp_module.bp = bp
    r = op(b, "baseline", action="repeat")
    assert r["ok"], r
    run_s(b, 25, spo2, hr)


def to_infusion(b, gap_min=3):
    """open, screened, two readings gap_min apart with a stable oximeter, accept, start."""
    to_baseline(b)
    take_bp(b)
    run_s(b, gap_min * 60, tick=1000)
    take_bp(b, (124, 82, 96, 74))
    r = op(b, "baseline", action="accept")
    assert r["ok"], r
    r = op(b, "start")
    assert r["ok"], r
    return r
