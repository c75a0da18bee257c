# ticks.py: N main-loop ticks of a bench rig and nothing else, for instruction counts under
# valgrind (cachegrind): run once with N and once with 0; (I(N) - I(0)) / N is one tick's cost.
# `micropython -m ticks core|loop|heavy N`. core: Device.poll with nothing arriving (formats.py's
# idle core step, Nonin #2 after 3 s of readings); loop: the whole MainLoop.step of the rig with
# the NIBP module idle, the display and no input (report, evaluation and display ticks
# included); heavy: rig.Heavy, the heaviest input (heavy.py). Prints one line. Never asserts.
import json
import sys

import rig
from bedside.device import Device
from bedside.settings import defaults
from mputil import nonin2_packet


def _core(n):
    uart = rig.RateUart(nonin2_packet(72, 97), 0)
    s = dict(defaults(), oxi_format="nonin2", nibp_interval_min=0)  # as formats.py
    store = rig.LeanStore({"settings.json": json.dumps(s).encode()})
    clock = rig.Clock()
    q = rig.Quiet()
    dev = Device(clock.now, uart, rig.Host(), q, q, store=store, selftest=False)
    for _ in range(300):  # readings flow, then stop
        uart.avail = 5
        dev.poll(clock.advance(10))
    for _ in range(500):
        dev.poll(clock.advance(10))
    for _ in range(n):
        dev.poll(clock.advance(10))
    return dev


def _loop(n):
    h = rig.Heavy(spo2=97, host=False)
    for _ in range(300):
        h.tick()
    h.oxi.rate = 0
    h.oxi.avail = 0
    for _ in range(500):
        h.tick()
    for _ in range(n):
        h.tick()
    return h.dev


def _heavy(n):
    h = rig.Heavy()
    h.start()
    for _ in range(200):
        h.tick()
    for _ in range(n):
        h.tick()
    return h.dev


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    which = args[0] if args else "core"
    n = int(args[1]) if len(args) > 1 else 1000
    dev = {"core": _core, "loop": _loop, "heavy": _heavy}[which](n)
    print("ticks %s %d faults %d" % (which, n, dev.faults))


main()
