# mputil.py: helpers shared by the MicroPython-runnable tests (no pytest, no CPython-only APIs).
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"


def nonin2_frame(status, pleth, flt):
    """One Format #2 frame, built from the reference rule (protocols.md 1.3), for test input."""
    return bytes((0x01, status, pleth, flt, (0x01 + status + pleth + flt) & 0xFF))


def alloc_per_call(fn, calls):
    """Bytes allocated per call of fn() with gc disabled (MicroPython only; None on CPython)."""
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
