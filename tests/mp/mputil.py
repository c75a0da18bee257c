# mputil.py: helpers shared by the MicroPython-runnable tests (no pytest, no CPython-only APIs).
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"


class Skipped(Exception):
    """Raised by skip(): the test cannot run here. run.py counts it as skipped, and
    tests/conftest.py turns it into a pytest skip, so it never counts as passed."""


def skip(reason):
    """Stop the calling test as skipped (not passed), e.g. a heap measurement on CPython."""
    raise Skipped(reason)


def nonin2_frame(status, pleth, flt):
    """One Format #2 frame, built from the reference rule (protocols.md 1.3), for test input."""
    return bytes((0x01, status, pleth, flt, (0x01 + status + pleth + flt) & 0xFF))


def nonin2_packet(hr=72, spo2=97, status=0x82, pleth=50, frame_status=None):
    """One Format #2 packet (25 frames): HR in frames 1-2, SpO2 in 3, a reserved frame 5;
    frame_status(f), when given, is frame f's STATUS (without SYNC) instead of `status`."""
    out = bytearray()
    for f in range(1, 26):
        flt = 0
        if f == 1:
            flt = (hr >> 7) & 0x03
        elif f == 2:
            flt = hr & 0x7F
        elif f == 3:
            flt = spo2
        elif f == 5:
            flt = 0x55  # reserved frame: arbitrary content
        st = status if frame_status is None else frame_status(f)
        out += nonin2_frame(st | (1 if f == 1 else 0), pleth, flt)
    return bytes(out)


def alloc_per_call(fn, calls):
    """Bytes allocated per call of fn() with gc disabled (MicroPython only; None on CPython:
    the caller then calls skip() instead of passing)."""
    if not IS_MICROPYTHON:
        return None
    import gc

    fn()  # warm up (first-call allocations such as bound-method caches)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(calls):
            fn()
        after = gc.mem_alloc()
    finally:
        gc.enable()
    return (after - before) / calls



def release():
    """Collect garbage (a test drops one device before it builds the next: a Pico holds one)."""
    try:
        import gc

        gc.collect()
    except ImportError:  # pragma: no cover
        pass
