# bench_device.py: cost of the whole core per main-loop tick, heap it holds, bytes it allocates.
# Prints only (never asserts time). Run from the repo root on either runtime:
#   MICROPYPATH=firmware:tests/mp micropython -X heapsize=192k tools/bench_device.py
#   python tools/bench_device.py
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (_here + "/../firmware", _here + "/../tests/mp", "firmware", "tests/mp"):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import gc  # noqa: E402
import time  # noqa: E402

MP = sys.implementation.name == "micropython"
TICKS = 2000


def now_us():
    return time.ticks_us() if MP else time.perf_counter() * 1e6


def diff_us(a, b):
    return time.ticks_diff(a, b) if MP else a - b


def main():
    gc.collect()
    base = gc.mem_alloc() if MP else 0
    from bedside.device import Device
    from fakes import Clock, MemStore
    from mputil import nonin2_packet
    from test_device_alloc import LoopUart, Quiet, Silent

    gc.collect()  # a collected heap before the device is built, as at boot
    clock = Clock()
    q = Quiet()
    dev = Device(
        clock.now, LoopUart(nonin2_packet(72, 97) * 3, 4), Silent(), q, q, store=MemStore()
    )
    gc.collect()
    held = gc.mem_alloc() - base if MP else None
    for _ in range(300):
        dev.poll(clock.advance(10))
    t0 = now_us()
    for _ in range(TICKS):
        dev.poll(clock.advance(10))
    per_tick = diff_us(now_us(), t0) / TICKS
    alloc = None
    if MP:
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        for _ in range(99):
            dev._t_report = clock.now
            dev.poll(clock.advance(10))
        alloc = (gc.mem_alloc() - a0) / 99
        gc.enable()
    rt = "micropython" if MP else "cpython"
    print(
        "device %s: %.1f us per 10 ms tick (%.2f %% of the tick, host CPU, not an RP2040)"
        % (rt, per_tick, per_tick / 100)
    )
    if MP:
        print(
            "device %s: heap held by the core imports (+ test fakes) and a Device: %d bytes; "
            "allocated per steady tick: %.1f" % (rt, held, alloc)
        )


main()
