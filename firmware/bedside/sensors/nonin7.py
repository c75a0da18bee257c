# nonin7.py: Nonin Data Format #7 decoder (OEM III per S8, 9560, 3150): protocols.md section 1.4.
# 5-byte frames [STATUS, PLETH MSB, PLETH LSB, FLOAT, CHK], 25 per packet, 75 frames/s, 9600 8N1.
# No start byte: pleth bytes may have bit 7 set, so lock = STATUS bit 7 + checksum, plus the SYNC
# bit for the first lock. FLOAT table and STATUS bits as Format #2: nonin_packet.py.
from bedside.sensors import EV_ERROR
from bedside.sensors.nonin_packet import (
    BAUD,
    FRAME_RATE,
    LOCK_FRAMES,
    PR_MAX,
    SYNC,
    NoninPacketDecoder,
)

FORMAT = "nonin7"
__all__ = ("BAUD", "FORMAT", "FRAME_RATE", "LOCK_FRAMES", "PR_MAX", "Nonin7Decoder")


class Nonin7Decoder(NoninPacketDecoder):
    """Incremental Format #7 decoder; updates an OxiReading once per packet (3 per second).
    Options (display, snsd, stat2): see NoninPacketDecoder; 16-bit pleth in reading.pleth."""

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
                and (self._locked or b0 & SYNC)
            ):
                self._locked = True
                self.frames_ok += 1
                ev |= self._frame_in(b0, (w[1] << 8) | w[2], w[3], now_ms)
                k = 0
            else:
                if self._locked:
                    ev |= self._unlock()
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
