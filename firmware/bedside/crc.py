# crc.py: CRC-32 (IEEE 802.3, the zlib/binascii polynomial) for records on flash: the C
# binascii.crc32 where the port has it, else a bitwise version giving the same numbers.


def crc32_soft(data, value=0):
    """CRC-32 of `data` continuing from `value`, in Python (slow; for ports without binascii)."""
    c = value ^ 0xFFFFFFFF
    for byte in data:
        c ^= byte
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


try:
    from binascii import crc32
except ImportError:  # pragma: no cover - ports without binascii.crc32
    crc32 = crc32_soft
