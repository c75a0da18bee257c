# test_device_alloc.py: the device's steady-state tick allocates nothing (REQ-SYS-04).
# Measured on MicroPython with gc disabled; on CPython the check is skipped (None).
# The whole tick with the board layer, a talking host and a sounding alarm: test_tick_alloc.py.
from bedside.device import Device
from fakes import Clock, MemStore
from mputil import alloc_per_call, nonin2_packet, skip


class LoopUart:
    """Serves a fixed byte pattern at ~375 B/s without allocating (no slicing)."""

    def __init__(self, data, per_read):
        self.data = data
        self.i = 0
        self.per_read = per_read

    def readinto(self, buf):
        n = self.per_read
        d = self.data
        i = self.i
        for k in range(n):
            buf[k] = d[i]
            i += 1
            if i == len(d):
                i = 0
        self.i = i
        return n

    def write(self, data):
        return len(data)


class Silent:
    def readinto(self, buf):
        return None

    def write(self, data):
        return len(data)


class Quiet:
    def tone(self, hz, duty):
        pass

    def off(self):
        pass

    def set(self, color, on):
        pass


def test_steady_state_poll_allocates_nothing():
    """REQ-SYS-04: decode + alarm rules + annunciator per 10 ms tick, no heap allocation."""
    clock = Clock()
    oxi = LoopUart(nonin2_packet(72, 97) * 3, 4)  # 4 bytes per 10 ms tick = 400 B/s
    q = Quiet()
    dev = Device(clock.now, oxi, Silent(), q, q, store=MemStore())
    for _ in range(300):  # 3 s: readings flow, hello sent, no alarm
        dev.poll(clock.advance(10))
    assert dev.oxi.spo2 == 97 and dev.alarms.visible_priority() == 0

    def tick():
        dev._t_report = clock.now  # keep the once-a-second report out of the measurement
        dev.poll(clock.advance(10))

    per = alloc_per_call(tick, 100)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
