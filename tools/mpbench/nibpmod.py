# nibpmod.py: a SunTech Advantage NIBP module double for the benches (MicroPython and CPython):
# answers the driver's commands over a UART-like object in virtual time: start -> 'O', cuff
# polls -> cuff pressure, 'K' after `duration_ms`, get data -> the result packet, abort -> 'A'
# then 'K'. Replies are built when the values are set, not per read: no allocation per tick.
from bedside.sensors.suntech import CMD_ABORT, CMD_GET_CUFF, CMD_GET_DATA
from bedside.ticks import elapsed


def _packet(data):
    b = bytearray(len(data) + 3)
    b[0] = 0x3E
    b[1] = len(data) + 3
    b[2 : 2 + len(data)] = data
    b[-1] = (0x100 - (sum(b[:-1]) & 0xFF)) & 0xFF
    return bytes(b)


R_O = _packet(b"O")
R_K = _packet(b"K")
R_A = _packet(b"A")


def result_packet(sys_, dia, map_, hr):
    d = bytearray(21)  # p[2..22]: sys, dia at 2..5, BPS at 7, HR at 16, MAP at 18, EC at 20
    d[0] = sys_ & 0xFF
    d[1] = sys_ >> 8
    d[2] = dia & 0xFF
    d[3] = dia >> 8
    d[5] = 1  # BPS valid
    d[14] = hr & 0xFF
    d[15] = hr >> 8
    d[16] = map_ & 0xFF
    d[17] = map_ >> 8
    return _packet(d)


def cuff_packet(mmhg):
    return _packet(bytes((mmhg & 0xFF, mmhg >> 8)))


class NibpModule:
    """The module side of the NIBP UART. clock: an object with .now (ms ticks)."""

    def __init__(self, clock, duration_ms=30000, sys_=120, dia=80, map_=93, hr=72):
        self.clock = clock
        self.duration_ms = duration_ms
        self._q = [None, None, None, None]  # replies waiting (a fixed ring of references)
        self._qi = 0  # next to send
        self._qn = 0  # how many wait
        self._pos = 0  # bytes of the head reply already read
        self.measuring = False
        self._t0 = 0
        self.results = 0  # result packets fully read by the driver
        self.t_result = None  # clock.now when the last result packet's last byte was read
        self._cuff_hi = cuff_packet(150)
        self._cuff_lo = cuff_packet(0)
        self.set_result(sys_, dia, map_, hr)

    def set_result(self, sys_, dia, map_, hr=72):
        self._result = result_packet(sys_, dia, map_, hr)

    def _queue(self, pkt):
        if self._qn < 4:
            self._q[(self._qi + self._qn) & 3] = pkt
            self._qn += 1

    def write(self, data):
        if data[0] == 0x3A and len(data) == 3:  # start (adult, pediatric, neonate)
            self._queue(R_O)
            self.measuring = True
            self._t0 = self.clock.now
        elif data == CMD_GET_CUFF:
            self._queue(self._cuff_hi if self.measuring else self._cuff_lo)
        elif data == CMD_GET_DATA:
            self._queue(self._result)
        elif data == CMD_ABORT:
            self._queue(R_A)
            if self.measuring:
                self.measuring = False
                self._queue(R_K)
        return len(data)

    def readinto(self, buf, nbytes=None):
        if self.measuring and elapsed(self.clock.now, self._t0) >= self.duration_ms:
            self.measuring = False
            self._queue(R_K)
        if not self._qn:
            return None
        pkt = self._q[self._qi]
        room = len(buf) if nbytes is None else nbytes
        n = 0
        p = self._pos
        while n < room and p < len(pkt):
            buf[n] = pkt[p]
            n += 1
            p += 1
        if p == len(pkt):
            if pkt is self._result:
                self.results += 1
                self.t_result = self.clock.now
            self._q[self._qi] = None
            self._qi = (self._qi + 1) & 3
            self._qn -= 1
            p = 0
        self._pos = p
        return n
