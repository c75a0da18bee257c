# nonin7.py: Nonin Data Format #7 decoder (OEM III per S8, 9560, 3150): protocols.md section 1.4.
# 5-byte frames [STATUS, PLETH MSB, PLETH LSB, FLOAT, CHK], 25 per packet, 75 frames/s, 9600 8N1.
# No start byte: pleth bytes may have bit 7 set, so lock = STATUS bit 7 + checksum, plus the SYNC
# bit for the first lock. FLOAT table and STATUS bits as Format #2 (section 1.3).
# Allocation-free per byte: a 5-byte window in a preallocated bytearray, ints only.
from bedside.compat import const
from bedside.readings import (
    F_ARTIFACT,
    F_LOW_BATT,
    F_LOW_PERF,
    F_MISSING,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    Q_GOOD,
    Q_LOW,
    Q_MARGINAL,
    Q_UNKNOWN,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING

FORMAT = "nonin7"
BAUD = 9600
FRAME_RATE = 75  # frames per second (3 packets of 25)
PR_MAX = 400  # above this a 9-bit HR is not a pulse rate: missing (same bound as nonin2)

_FRAMES = const(25)
_SNSD = const(0x40)  # OEM III in #2: sensor disconnected. In #7 on the OEM III: UNCONFIRMED
_ARTF = const(0x20)
_OOT = const(0x10)
_SNSA = const(0x08)
_PERF = const(0x06)
_SYNC = const(0x01)
_F_HR_MSB = const(1)
_F_HR_LSB = const(2)
_F_SPO2 = const(3)
_F_STAT2 = const(8)  # 9560: b0 LOW BAT. OEM III: UNCONFIRMED (hence the stat2 option)
_F_SPO2_D = const(9)
_F_HR_D_MSB = const(20)
_F_HR_D_LSB = const(21)
_HR_MISSING = const(511)
_SPO2_MISSING = const(127)


class Nonin7Decoder:
    """Incremental Format #7 decoder; updates an OxiReading once per packet (3 per second).

    display: report HR-D/SpO2-D (held 10 s after finger removal) instead of the recording values.
    snsd: read STATUS bit 6 as SNSD (UNCONFIRMED for the OEM III in #7; reserved on the 9560).
      Default True: a spurious sensor-off is the safe error.
    stat2: read frame 8 bit 0 as LOW BAT (9560 only; UNCONFIRMED elsewhere). Default False.
    Sensor-off (SNSA/SNSD) reaches reading.flags on the very frame that carries it.
    """

    def __init__(self, reading, display=False, snsd=True, stat2=False):
        self.reading = reading
        self._display = display
        self._status_off = (_SNSA | _SNSD) if snsd else _SNSA
        self._stat2 = stat2
        self._win = bytearray(5)
        self.reset()

    def reset(self):
        self._n = 0
        self._locked = False
        self._frame = 0  # frame number in the current packet, 0 = waiting for SYNC
        self._msb = 0
        self._lsb = 0
        self._spo2 = _SPO2_MISSING
        self._flags = 0
        self._quality = Q_UNKNOWN
        self.frames_ok = 0
        self.frames_bad = 0
        self.bytes_skipped = 0
        self.packets = 0
        self.frame_losses = 0

    def feed(self, buf, n, now_ms):
        """Decode n bytes of buf (bytes, bytearray or memoryview). Returns EV_* bits."""
        ev = 0
        w = self._win
        k = self._n
        for i in range(n):
            w[k] = buf[i]
            k += 1
            if k < 5:
                continue
            b0 = w[0]
            if (
                b0 & 0x80
                and ((b0 + w[1] + w[2] + w[3]) & 0xFF) == w[4]
                and (self._locked or b0 & _SYNC)
            ):
                self._locked = True
                self.frames_ok += 1
                ev |= self._frame_in(b0, (w[1] << 8) | w[2], w[3], now_ms)
                k = 0
            else:
                if self._locked:
                    self._locked = False
                    ev |= self._lose_packet()
                self.frames_bad += 1
                self.bytes_skipped += 1
                ev |= EV_ERROR
                w[0] = w[1]
                w[1] = w[2]
                w[2] = w[3]
                w[3] = w[4]
                k = 4
        self._n = k
        return ev

    def _lose_packet(self):
        if self._frame:
            self.frame_losses += 1
            self._frame = 0
            return EV_ERROR
        return 0

    def _frame_in(self, status, pleth, flt, now_ms):
        ev = EV_FRAME
        r = self.reading
        r.pleth = pleth
        if status & _SYNC:
            if self._frame:
                ev |= self._lose_packet()
            self._frame = 1
            self._flags = 0
            self._quality = Q_UNKNOWN
        elif self._frame == 0:
            return ev
        else:
            self._frame += 1
        f = self._frame
        if status & self._status_off:
            self._flags |= F_SENSOR_OFF
            r.flags |= F_SENSOR_OFF  # at once, not at the end of the packet
        if status & _ARTF:
            self._flags |= F_ARTIFACT
        if status & _OOT:
            self._flags |= F_SEARCHING
        p = status & _PERF
        if p == 0x02:
            self._quality = Q_GOOD
        elif p == 0x06:
            self._quality = Q_MARGINAL
        elif p == 0x04:
            self._quality = Q_LOW
        if self._display:
            if f == _F_HR_D_MSB:
                self._msb = flt
            elif f == _F_HR_D_LSB:
                self._lsb = flt
            elif f == _F_SPO2_D:
                self._spo2 = flt & 0x7F
        elif f == _F_HR_MSB:
            self._msb = flt
        elif f == _F_HR_LSB:
            self._lsb = flt
        elif f == _F_SPO2:
            self._spo2 = flt & 0x7F
        if f == _F_STAT2 and self._stat2 and flt & 0x01:
            self._flags |= F_LOW_BATT
        if f == _FRAMES:
            self._finish(now_ms)
            self._frame = 0
            ev |= EV_READING
        return ev

    def _finish(self, now_ms):
        r = self.reading
        flags = self._flags
        hr = ((self._msb & 0x03) << 7) | (self._lsb & 0x7F)
        spo2 = self._spo2
        if hr == _HR_MISSING or hr > PR_MAX:
            hr = NONE
            flags |= F_MISSING
        if spo2 == _SPO2_MISSING or spo2 > 100:
            spo2 = NONE
            flags |= F_MISSING
        if self._quality == Q_LOW:
            flags |= F_LOW_PERF
        r.spo2 = spo2
        r.pr = hr
        r.quality = self._quality
        r.flags = flags
        r.pi_x100 = NONE
        r.t_ms = now_ms
        r.count += 1
        self.packets += 1
