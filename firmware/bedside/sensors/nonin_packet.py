# nonin_packet.py: the Nonin 25-frame packet shared by Data Formats #2 and #7.
# STATUS bits and the FLOAT-byte-by-frame table (protocols.md section 1.3, source S1; #7 per
# section 1.4 uses the same table): HR MSB/LSB frames 1-2, SpO2 3, STAT2 8, SpO2-D 9,
# HR-D 20-21; reserved frames are ignored. A packet starts at a SYNC frame; SYNC before frame
# 25 is a frame loss. The format modules only find frames in the byte stream (their framing
# differs) and hand each to _frame_in(); values, flags and sentinels are decided here.
# Lock: a window that passes the checksum by chance (1 in 256; Format #7 has no start byte) must
# not publish a "sensor off" read from its random STATUS byte. So each frame is held until the
# next frame arrives valid and in phase (13 ms), and after start or any resync nothing is
# published (no value, pleth, flag or EV_FRAME) until LOCK_FRAMES consecutive valid frames.
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

BAUD = 9600  # 8N1, both formats (section 1.1)
FRAME_RATE = 75  # frames per second (3 packets of 25)
PR_MAX = 400  # above this a 9-bit HR is not a pulse rate: treat as missing
LOCK_FRAMES = 3  # consecutive valid frames in phase before anything is published (40 ms)
# (the first two are then published, each confirmed by its successor)

_FRAMES = const(25)
# STATUS bits (Format #2 byte 2, Format #7 byte 1)
_SNSD = const(0x40)  # OEM III: sensor disconnected (reserved on the 9560; UNCONFIRMED in #7)
_ARTF = const(0x20)
_OOT = const(0x10)
_SNSA = const(0x08)  # sensor alarm: finger removed / unusable data
_PERF = const(0x06)  # RPRF (0x04) | GPRF (0x02)
_QUALITY = (0, Q_GOOD, Q_LOW, Q_MARGINAL)  # by (status & _PERF) >> 1
SYNC = const(0x01)
# FLOAT frame numbers (1-based)
_F_HR_MSB = const(1)
_F_HR_LSB = const(2)
_F_SPO2 = const(3)
_F_STAT2 = const(8)  # 9560: b0 LOW BAT. OEM III: UNCONFIRMED (hence the stat2 option)
_F_SPO2_D = const(9)
_F_HR_D_MSB = const(20)
_F_HR_D_LSB = const(21)
_PULSE_HOLD = const(9)  # packets (3 s, a pulse rate down to 20 /min) the last pulse's
# artifact and perfusion bits are held over packets without a pulse (the module sets them only
# on the frames of a pulse; a packet without one says nothing about the signal's quality)
_HR_MISSING = const(511)
_SPO2_MISSING = const(127)


class NoninPacketDecoder:
    """Packet assembly for Formats #2 and #7; a subclass supplies feed() (the framing).

    display=False reports the 4-beat recording values (HR, SpO2: missing at once when the
    finger comes off); display=True the display values (HR-D, SpO2-D), which the module holds
    for 10 s after finger removal. Either way SNSA/SNSD set F_SENSOR_OFF as soon as the frame
    that carries them is confirmed by the next one (13 ms; after a resync once LOCK_FRAMES have
    arrived), so the core sees sensor-off at once, not at the end of the packet.
    snsd=True reads STATUS bit 6 as SNSD (OEM III; a spurious sensor-off is the safe error);
    the 9560 leaves it reserved. stat2=True reads frame 8 bit 0 as LOW BAT (9560 only).
    """

    def __init__(self, reading, display=False, snsd=True, stat2=False):
        self.reading = reading
        self._display = display
        self._status_off = (_SNSA | _SNSD) if snsd else _SNSA
        self._stat2 = stat2
        self._win = bytearray(5)
        self.reset()

    def reset(self):
        self._n = 0  # bytes held in the window
        self._locked = False
        self._run = 0  # consecutive valid frames since the lock, up to LOCK_FRAMES
        self._held = False  # a valid frame waits for the next one to confirm it
        self._h_status = 0
        self._h_pleth = 0
        self._h_flt = 0
        self._h_first = False  # the held frame is the first after a (re)lock
        self._off_now = False  # a trusted frame of this packet carried SNSA/SNSD
        self._frame = 0  # frame number in the current packet, 0 = waiting for SYNC
        self._msb = 0
        self._lsb = 0
        self._spo2 = _SPO2_MISSING
        self._flags = 0
        self._quality = Q_UNKNOWN
        self._pulse = False  # a frame of this packet carried perfusion bits (a pulse)
        self._p_artf = 0  # the last pulse's F_ARTIFACT bit ...
        self._p_quality = Q_UNKNOWN  # ... and its perfusion quality
        self._p_age = _PULSE_HOLD  # packets since the last pulse (capped)
        self.frames_ok = 0
        self.frames_bad = 0  # windows rejected while holding a full frame's worth of bytes
        self.bytes_skipped = 0
        self.packets = 0
        self.frame_losses = 0  # packets abandoned (SYNC early, or lock lost mid-packet)

    def _unlock(self):
        """A window failed while locked: resync (the next lock needs SYNC and LOCK_FRAMES)."""
        self._locked = False
        self._run = 0
        self._held = False  # the held frame is not confirmed: dropped
        return self._lose_packet()

    def _lose_packet(self):
        if self._frame:
            self.frame_losses += 1
            self._frame = 0
            return EV_ERROR
        return 0

    def _frame_in(self, status, pleth, flt, now_ms):
        """A checksum-valid frame in phase: it confirms the held one, and is held itself."""
        if self._run < LOCK_FRAMES:
            self._run += 1
        ev = 0
        if self._held:
            ev = self._commit()  # the held frame
        self._held = True
        self._h_status = status
        self._h_pleth = pleth
        self._h_flt = flt
        self._h_first = self._run == 1
        if self._frame == _FRAMES - 1 and not status & SYNC:
            # Frame 25 arrived valid and in phase: it confirms frame 24, and its FLOAT is
            # reserved, so the packet is complete now (not one frame later). Its STATUS counts
            # once the next frame confirms it (_commit, outside a packet).
            self._finish(now_ms)
            self._frame = 0
            ev |= EV_READING
        return ev

    def _commit(self):
        """The held frame is confirmed: packet assembly; published only once locked
        (LOCK_FRAMES). The first frame after a (re)lock may be a real frame with its bytes
        rotated (a lost byte equal to the byte before it passes the checksum): its STATUS never
        sets sensor-off at once; if it was wrong, the real SYNC arrives early and the packet
        is dropped."""
        status = self._h_status
        pleth = self._h_pleth
        flt = self._h_flt
        first = self._h_first
        ev = 0
        if status & SYNC:
            if self._frame:
                ev = self._lose_packet()  # SYNC before frame 25: restart the packet
            self._frame = 1
            self._flags = 0
            self._off_now = False
            self._quality = Q_UNKNOWN
            self._pulse = False
        elif self._frame == 0:  # frame 25 of a finished packet, or frames after a loss
            ev |= self._publish_frame(pleth)
            if ev & EV_FRAME and status & self._status_off and not first:
                self.reading.flags |= F_SENSOR_OFF
            return ev
        else:
            self._frame += 1
        f = self._frame
        if status & self._status_off:
            self._flags |= F_SENSOR_OFF
            if not first:
                self._off_now = True
        if status & _ARTF:
            self._flags |= F_ARTIFACT
        if status & _OOT:
            self._flags |= F_SEARCHING
        if status & _PERF:  # GPRF, RPRF, both: green, red, yellow
            self._pulse = True
            self._quality = _QUALITY[(status & _PERF) >> 1]
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
        ev |= self._publish_frame(pleth)
        if self._run >= LOCK_FRAMES and self._off_now:
            self.reading.flags |= F_SENSOR_OFF  # at once, not at the end of the packet
        return ev

    def _publish_frame(self, pleth):
        """EV_FRAME and the pleth sample, once locked (LOCK_FRAMES); else 0."""
        if self._run < LOCK_FRAMES:
            return 0
        self.reading.pleth = pleth
        return EV_FRAME

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
        quality = self._quality
        if self._pulse:  # this packet's pulse decides; kept for the packets without one
            self._p_artf = flags & F_ARTIFACT
            self._p_quality = quality
            self._p_age = 0
        elif self._p_age < _PULSE_HOLD and not flags & (F_SENSOR_OFF | F_SEARCHING):
            self._p_age += 1
            flags |= self._p_artf
            quality = self._p_quality
        else:
            self._p_age = _PULSE_HOLD  # no pulse for 3 s (or off, searching): nothing held
        if quality == Q_LOW:
            flags |= F_LOW_PERF
        r.publish(spo2, hr, quality, flags, r.pleth, NONE, now_ms)  # pleth: per frame
        self.packets += 1
