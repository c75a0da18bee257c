# nonin2.py: Nonin serial Data Format #2 decoder (OEM III, Xpod, 9560, 3150).
# 5-byte frames [0x01, STATUS, PLETH, FLOAT, CHK], 25 frames a packet, 75 frames/s, 9600 8N1.
# CHK = (B1+B2+B3+B4) & 0xFF. First lock needs the SYNC bit; a packet starts at a SYNC frame.
# Reference: shared/reference/protocols.md section 1.3 (source S1, corroborated by S3, S4, S5).
# Allocation-free per byte: a 5-byte window in a preallocated bytearray, ints only. The packet
# (FLOAT table, status bits, sentinels) is nonin_packet.py, shared with Format #7.
from bedside.compat import const
from bedside.sensors import EV_ERROR
from bedside.sensors.nonin_packet import (
    BAUD,
    FRAME_RATE,
    LOCK_FRAMES,
    PR_MAX,
    SYNC,
    NoninPacketDecoder,
)

FORMAT = "nonin2"
__all__ = ("BAUD", "FORMAT", "FRAME_RATE", "LOCK_FRAMES", "PR_MAX", "Nonin2Decoder")

_START = const(0x01)


class Nonin2Decoder(NoninPacketDecoder):
    """Incremental Format #2 decoder; updates an OxiReading once per packet (3 per second).
    Options (display, snsd, stat2): see NoninPacketDecoder."""

    def feed(self, buf, n, now_ms):
        """Decode n bytes of buf (bytes, bytearray or memoryview). Returns EV_* bits."""
        ev = 0
        k = self._n
        i = 0
        while i < n:  # per byte: few locals, so MicroPython keeps this frame off the heap
            self._win[k] = buf[i]
            i += 1
            k += 1
            if k == 5:
                ev |= self._window(now_ms)
                k = self._k
        self._n = k
        return ev

    def _window(self, now_ms):
        """Five bytes in the window: a frame (decoded; the window empties) or not (slid one
        byte on). Returns EV_* bits; self._k: the bytes left in the window."""
        w = self._win
        b1 = w[1]
        if (
            w[0] == _START
            and b1 & 0x80
            and ((w[0] + b1 + w[2] + w[3]) & 0xFF) == w[4]
            and (self._locked or b1 & SYNC)
        ):
            self._locked = True
            self.frames_ok += 1
            self._k = 0
            return self._frame_in(b1, w[2], w[3], now_ms)
        # Not a frame here: slide the window one byte and keep looking.
        ev = EV_ERROR
        if self._locked:
            ev |= self._unlock()
        self.frames_bad += 1
        self.bytes_skipped += 1
        w[0] = w[1]
        w[1] = w[2]
        w[2] = w[3]
        w[3] = w[4]
        self._k = 4
        return ev
