# berrymed.py: BerryMed BCI protocol decoder (BM1000 family, OEM boards): protocols.md section 1.8.
# 5-byte packets, byte 1 bit 7 = 1 (head), bytes 2-5 bit 7 = 0, NO checksum, 100 Hz (v1.2).
# Resync (S13): wait for a bit-7-set byte, take 4 bit-7-clear bytes, restart on an early head byte.
# PR 255 / SpO2 127 / pleth 0 = invalid; values range-validated (section 4).
# Lock (no checksum, so structure is the only check): a packet counts only when the next head
# byte follows right after its 5 bytes (an inserted or lost byte shows there), and nothing is
# published until LOCK_FRAMES such packets in a row after start or any resync; a bit flip inside
# a packet cannot be seen, so a change of SpO2, PR or the sensor-off flags is published only
# once AGREE_PACKETS packets in a row agree (a corrupted packet publishes nothing). Costs one to
# three packets (10-30 ms at 100 Hz) of latency.
# Allocation-free per byte.
from bedside.compat import const
from bedside.readings import (
    F_MISSING,
    F_NO_FINGER,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    OFF_FLAGS,
    Q_GOOD,
    Q_LOW,
    Q_MARGINAL,
    Q_UNKNOWN,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING

FORMAT = "berrymed"
# UNCONFIRMED (section 1.8): the BCI PDFs give no baud rate. 115200 is BerryMed's USB demo (S13),
# the only figure a source gives, so it is the default (the simulator's too); 9600 for a bare OEM
# board is a guess (100 Hz x 5 bytes needs 52 % of 9600). The setting oxi_baud overrides it.
BAUD = 115200
BAUDS = (9600, 115200)
FRAME_RATE = 100  # packets per second, v1.2 (v1.1: 50)
PR_MAX = 250  # v1.2 CN: PR 25..250, 255 invalid; 251..254 -> missing
LOCK_FRAMES = 3  # consecutive packets, each closed by the next head byte, before publishing
AGREE_PACKETS = 3  # packets in a row with the same SpO2, PR and sensor-off flags to publish

# byte 1
_SS = const(0x0F)  # signal strength 0..8
_NO_SIGNAL = const(0x10)  # "no signal" (CN: searching too long)
_PROBE_OFF = const(0x20)  # probe unplugged
_BEEP = const(0x40)  # pulse beep
# byte 3
_NO_FINGER = const(0x10)
_PULSE_SEARCH = const(0x20)
_PR_B7 = const(0x40)
_PR_INVALID = const(255)
_SPO2_INVALID = const(127)
_SS_LOW_MAX = const(2)  # strength 0..2 -> Q_LOW, 3..5 -> Q_MARGINAL, 6..8 -> Q_GOOD (readings.py)
_SS_MARG_MAX = const(5)
_SS_MAX = const(8)
_UNSET = const(-2)  # no previous packet to agree with


class BerryMedDecoder:
    """Incremental BCI decoder; every 5-byte packet closed by the next head byte is one
    completed reading (100/s), published once the decoder is locked (LOCK_FRAMES).

    Flags: probe unplugged -> F_SENSOR_OFF; no finger -> F_NO_FINGER; no signal or pulse search
    -> F_SEARCHING; PR/SpO2 invalid or out of range -> NONE + F_MISSING.
    UNCONFIRMED (section 1.8): which combination a real module sets when the probe is unplugged;
    each bit is mapped on its own, so any of them raises its flag.
    """

    def __init__(self, reading):
        self.reading = reading
        self._pkt = bytearray(5)
        self.reset()

    def reset(self):
        self._k = 0  # bytes of the current packet (5 = complete, held until the next head)
        self._run = 0  # consecutive closed packets since the last resync, up to LOCK_FRAMES
        self._p_spo2 = _UNSET  # the previous locked packet's SpO2, PR and sensor-off flags
        self._p_pr = _UNSET
        self._p_off = _UNSET
        self._same = 0  # packets in a row equal to _p_*, up to AGREE_PACKETS
        self.frames_ok = 0  # packets closed by the next head byte
        self.frames_bad = 0  # packets cut short by an early head byte or overlong
        self.bytes_skipped = 0
        self.packets = 0
        self.frame_losses = 0
        self.out_of_range = 0
        self.beeps = 0  # packets carrying the pulse-beep bit
        self.unconfirmed = 0  # locked packets not published: they differ from the one before

    def feed(self, buf, n, now_ms):
        """Decode n bytes of buf (bytes, bytearray or memoryview). Returns EV_* bits."""
        ev = 0
        p = self._pkt
        k = self._k
        for i in range(n):
            b = buf[i]
            if b & 0x80:
                if k == 5:  # the held packet is closed by a head byte in place: a packet
                    self.frames_ok += 1
                    if self._run < LOCK_FRAMES:
                        self._run += 1
                    ev |= self._packet(p, self._run >= LOCK_FRAMES, now_ms)
                elif k:
                    self._cut(k)
                    ev |= EV_ERROR
                p[0] = b
                k = 1
            elif k == 0:
                self.bytes_skipped += 1
                ev |= EV_ERROR
            elif k < 5:
                p[k] = b
                k += 1
            else:  # a 6th data byte: the held "packet" had a byte inserted or lost
                self._cut(6)
                ev |= EV_ERROR
                k = 0
        self._k = k
        return ev

    def _cut(self, nbytes):
        self.frames_bad += 1
        self.frame_losses += 1
        self.bytes_skipped += nbytes
        self._run = 0
        self._p_off = _UNSET  # after a resync agreement starts again

    def _packet(self, p, locked, now_ms):
        r = self.reading
        b1 = p[0]
        b3 = p[2]
        flags = 0
        if b1 & _PROBE_OFF:
            flags |= F_SENSOR_OFF
        if b3 & _NO_FINGER:
            flags |= F_NO_FINGER
        if b1 & _NO_SIGNAL or b3 & _PULSE_SEARCH:
            flags |= F_SEARCHING
        if b1 & _BEEP:
            self.beeps += 1
        pr = ((b3 & _PR_B7) << 1) | p[3]
        if pr == _PR_INVALID:
            pr = NONE
            flags |= F_MISSING
        elif pr > PR_MAX:
            pr = NONE
            flags |= F_MISSING
            self.out_of_range += 1
        sp = p[4]
        if sp == _SPO2_INVALID:
            sp = NONE
            flags |= F_MISSING
        elif sp > 100:
            sp = NONE
            flags |= F_MISSING
            self.out_of_range += 1
        pleth = p[1]
        if pleth == 0 or pleth > 100:
            pleth = NONE  # 0 = invalid (section 4); above 100 is out of the documented range
        off = flags & OFF_FLAGS
        if sp != self._p_spo2 or pr != self._p_pr or off != self._p_off:
            self._p_spo2 = sp
            self._p_pr = pr
            self._p_off = off
            self._same = 1
        elif self._same < AGREE_PACKETS:
            self._same += 1
        if not locked:
            return 0
        if self._same < AGREE_PACKETS:
            self.unconfirmed += 1
            return 0  # a change must show in AGREE_PACKETS packets in a row
        ss = b1 & _SS
        if flags & (F_SENSOR_OFF | F_NO_FINGER | F_SEARCHING) or ss > _SS_MAX:
            q = Q_UNKNOWN
        elif ss <= _SS_LOW_MAX:
            q = Q_LOW
        elif ss <= _SS_MARG_MAX:
            q = Q_MARGINAL
        else:
            q = Q_GOOD
        r.publish(sp, pr, q, flags, pleth, NONE, now_ms)
        self.packets += 1
        return EV_FRAME | EV_READING
