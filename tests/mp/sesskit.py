# sesskit.py: a scripted SunTech NIBP module for the infusion-session tests (valid on
# MicroPython and CPython): it answers the driver and measures a set blood pressure.
from bedside.sensors.suntech import CMD_ABORT, CMD_GET_CUFF, CMD_GET_DATA

R_O = bytes.fromhex("3E044F6F")
R_K = bytes.fromhex("3E044B73")
R_A = bytes.fromhex("3E04417D")
CUFF0 = bytes((0x3E, 0x05, 0, 0, (0x100 - (0x3E + 0x05)) & 0xFF))


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

    def __init__(self, bp=(120, 80, 93, 72), meas_ms=20000):
        self.rig = None  # the sessdev.Rig whose `now` is the clock (set once it is made)
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
            self.start_times.append(self.rig.now)
            if len(self.start_times) > 64:
                self.start_times.pop(0)
            self.out.append(R_O)
            self.t_k = self.rig.now
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
            d = (self.rig.now - self.t_k) & ((1 << 30) - 1)
            if d >= self.meas_ms:
                self.t_k = None
                self.out.append(R_K)
        if not self.out:
            return 0
        data = self.out.pop(0)
        n = len(data)
        buf[:n] = data
        return n


def nibp_rig(store=None, **kw):
    """A sessdev.Rig with this module as its NIBP UART (r.nibp_module)."""
    from sessdev import Rig

    m = NibpModule()
    r = Rig(store=store, nibp_uart=m, **kw)
    m.rig = r
    r.nibp_module = m
    return r


def take_bp(r, bp):
    """A reading by the module on `session baseline repeat` (STAT)."""
    r.nibp_module.bp = bp
    a = r.op("baseline", action="repeat")
    assert a["ok"], a
    r.run(25000, tick=100)
