# nonin1.py: Nonin serial Data Format #1 decoder (OEM III, 3150): protocols.md section 1.2.
# 3 bytes once a second [STATUS (b7=1), HR (b7=0), SpO2 (b7=0)], 9600 8N1, NO checksum:
# sync on bit 7 only, then range-validate (section 4). HR 511 / SpO2 127 = missing.
# Lock (no checksum, so structure is the only check): a frame counts only when the next STATUS
# byte follows right after its 3 bytes (an inserted or lost byte shows there), and nothing is
# published until LOCK_FRAMES such frames in a row after start or any resync (a stray byte with
# bit 7 set heads the first frame after a resync). Costs one frame (1 s) of latency. A bit flip
# inside a frame cannot be seen, so the sensor-off flag changes only when two frames in a row
# agree (one more second for sensor-off; values are not held back).
# Allocation-free per byte: three held bytes, ints only.
from bedside.compat import const
from bedside.readings import (
    F_ARTIFACT,
    F_LOW_PERF,
    F_MISSING,
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

FORMAT = "nonin1"
BAUD = 9600
FRAME_RATE = 1  # one 3-byte frame per second
PR_MAX = 400  # plausibility bound (same as nonin2); above -> missing
LOCK_FRAMES = 2  # consecutive frames, each closed by the next STATUS byte, before publishing

_SNSD = const(0x40)  # sensor disconnected
_OOT = const(0x20)  # out of track
_LPRF = const(0x10)  # low perfusion
_MPRF = const(0x08)  # marginal perfusion
_ARTF = const(0x04)  # artifact
_HR_MISSING = const(511)
_SPO2_MISSING = const(127)
# UNCONFIRMED (section 1.2): whether byte 3 bit 7 is always 0. We require it (like 9560 #8),
# which makes a status byte arriving early restart the frame.
# UNCONFIRMED (section 1.2): display values (10 s hold after finger removal, no SNSA bit in #1)
# or recording values. Format #1 has no SNSA, so a held display value cannot be flagged here:
# the core must not treat #1 as a fast sensor-off source.


class Nonin1Decoder:
    """Incremental Format #1 decoder; every 3-byte frame closed by the next STATUS byte is one
    completed reading, published once the decoder is locked (LOCK_FRAMES)."""

    def __init__(self, reading):
        self.reading = reading
        self.reset()

    def reset(self):
        self._k = 0  # bytes of the current frame seen (0 = waiting for a status byte, 3 = held)
        self._st = 0
        self._hr7 = 0
        self._sp = 0
        self._run = 0  # consecutive closed frames since the last resync, up to LOCK_FRAMES
        self._off = 0  # published sensor-off flags
        self._off_last = 0  # the previous frame's
        self.frames_ok = 0  # frames closed by the next status byte
        self.frames_bad = 0  # frames cut short by an early status byte or overlong
        self.bytes_skipped = 0
        self.packets = 0  # completed readings
        self.frame_losses = 0  # same as frames_bad here (no packet structure above the frame)
        self.out_of_range = 0  # frames whose SpO2/HR failed range validation

    def feed(self, buf, n, now_ms):
        """Decode n bytes of buf (bytes, bytearray or memoryview). Returns EV_* bits."""
        ev = 0
        k = self._k
        for i in range(n):
            b = buf[i]
            if b & 0x80:
                if k == 3:  # the held frame is closed by a status byte in place: a frame
                    self.frames_ok += 1
                    if self._run < LOCK_FRAMES:
                        self._run += 1
                    if self._run >= LOCK_FRAMES:
                        ev |= self._frame(self._st, self._hr7, self._sp, now_ms)
                elif k:  # status byte before the frame was complete: restart on it
                    self._cut(k)
                    ev |= EV_ERROR
                self._st = b
                k = 1
            elif k == 0:
                self.bytes_skipped += 1
                ev |= EV_ERROR
            elif k == 1:
                self._hr7 = b
                k = 2
            elif k == 2:
                self._sp = b
                k = 3
            else:  # a 4th data byte: the held "frame" had a byte inserted or lost
                self._cut(4)
                ev |= EV_ERROR
                k = 0
        self._k = k
        return ev

    def _cut(self, nbytes):
        self.frames_bad += 1
        self.frame_losses += 1
        self.bytes_skipped += nbytes
        self._run = 0

    def _frame(self, st, hr7, sp, now_ms):
        r = self.reading
        flags = 0
        hr = ((st & 0x03) << 7) | hr7
        if hr == _HR_MISSING:
            hr = NONE
            flags |= F_MISSING
        elif hr > PR_MAX:
            hr = NONE
            flags |= F_MISSING
            self.out_of_range += 1
        if sp == _SPO2_MISSING:
            sp = NONE
            flags |= F_MISSING
        elif sp > 100:
            sp = NONE
            flags |= F_MISSING
            self.out_of_range += 1
        if st & _SNSD:
            flags |= F_SENSOR_OFF
        if st & _OOT:
            flags |= F_SEARCHING
        if st & _ARTF:
            flags |= F_ARTIFACT
        if st & _LPRF:
            flags |= F_LOW_PERF
            q = Q_LOW
        elif st & _MPRF:
            q = Q_MARGINAL
        elif flags & (F_SENSOR_OFF | F_SEARCHING | F_MISSING) or self._off:
            q = Q_UNKNOWN
        else:
            q = Q_GOOD  # neither low nor marginal perfusion flagged, values present
        off = flags & OFF_FLAGS
        if off == self._off_last:
            self._off = off  # two frames in a row agree
        self._off_last = off
        flags = (flags & ~OFF_FLAGS) | self._off
        r.publish(sp, hr, q, flags, NONE, NONE, now_ms)
        self.packets += 1
        return EV_FRAME | EV_READING
