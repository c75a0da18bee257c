# week.py: the whole core for a stretch of virtual time with live input (oximeter packets,
# desaturation episodes every few hours, signed host commands, flash-log reads, key presses),
# sampling the heap (gc.mem_alloc after a collection) at intervals: the heap must stay flat.
# Used by tests/mp/test_week.py (a day) and tools/bench_reliability.py (a week, MicroPython).
# Valid on MicroPython and CPython (on CPython there is no heap figure: samples are None).
try:
    import gc
except ImportError:  # pragma: no cover
    gc = None

import os
import time

from corekit import bench, cmd
from filestore import FileStore

HOUR = 3600 * 1000


def _heap():
    if gc is None or not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    return gc.mem_alloc()


def run(hours, sample_h=6, tick=1000):
    """Run `hours` of virtual time in `tick`-ms steps; returns (heap samples, faults,
    alarm raises seen, device healthy at the end)."""
    root = "/tmp/bedside-week-%d-%d" % (time.time(), id(samples_id))
    b = bench(types=("alarm",), store=FileStore(root))  # flash on disk, not in the heap
    raises = [0]
    prev = b.on_message

    def count(m):
        if m["type"] == "alarm" and m["event"] == "raise":
            raises[0] += 1
        elif m["type"] == "heartbeat":
            b.last_hb = m

    b.on_message = count
    b.run(3000, 72, 97)
    samples = []
    for h in range(hours):
        if h % 4 == 1:  # a desaturation episode: SPO2_LOW, then SPO2_DESAT, acknowledged
            b.run(15000, 72, 86, tick=10)
            b.run(5000, 72, 80, tick=10)
            b.press("ack")
            b.run(20000, 72, 97, tick=10)
            b.press("reset")
        if h % 3 == 2:  # host traffic: a signed change, a read-only status, a log page
            v = 91 + h % 3
            b.on_message = prev
            cmd(b, {"cmd": "set", "name": "spo2_low", "value": v, "confirm": True})
            cmd(b, {"cmd": "log", "log": "event", "count": 4})
            b.on_message = count
            b.messages = []
        b.run(HOUR - 40000 if h % 4 == 1 else HOUR, 72, 97, tick=tick)
        if h % sample_h == 0:
            samples.append(_heap())
    b.on_message = prev
    out = samples, b.dev.faults, raises[0], b.dev.healthy()
    for name in os.listdir(root):
        os.remove(root + "/" + name)
    os.rmdir(root)
    return out


samples_id = object()


if __name__ == "__main__":
    import sys

    if gc is not None and hasattr(gc, "threshold"):
        gc.threshold(8192)  # collect every 8 KB allocated, as tests/mp/run.py does

    hours = int(sys.argv[1]) if len(sys.argv) > 1 else 168
    samples, faults, raises, healthy = run(hours)
    print(
        "week: %d h virtual, heap samples %s, faults %d, alarm raises %d, healthy %s"
        % (hours, samples, faults, raises, healthy)
    )
