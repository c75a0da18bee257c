# test_watchdog.py: the health check the board feeds the watchdog on: every part of the tick
# (sensor decoders, alarm evaluation, annunciator, host link) must make progress within
# PROGRESS_MS, else Device.healthy() is False (CPython and MicroPython; clock near the wrap).
from bedside.device import PARTS, PROGRESS_MS
from corekit import bench


def _stuck(b, part):
    """Make one part's stage raise every tick; returns a function that repairs it."""
    dev = b.dev
    if part == "sensors":
        obj, name = dev.decoder, "feed"
    elif part == "alarms":
        obj, name = dev.alarms, "step"
    elif part == "annunciator":
        obj, name = dev.annunciator, "step"
    else:
        obj, name = dev.link, "pump"
    real = getattr(obj, name)

    def broken(*a):
        raise RuntimeError("stuck " + part)

    setattr(obj, name, broken)

    def repair():
        setattr(obj, name, real)

    return repair


def test_each_stuck_part_starves_the_watchdog():
    """REQ-REL-01: a part of the loop that makes no progress (its stage fails every tick) for
    PROGRESS_MS makes healthy() False, so the board stops feeding the watchdog; before that
    the device stays healthy, and once the part works again it is healthy again."""
    for part in PARTS:
        b = bench(types=("fault",))
        b.run(2000, 72, 97)
        assert b.dev.healthy() and b.dev.stalled() == -1
        repair = _stuck(b, part)
        b.run(PROGRESS_MS - 100, 72, 97)
        assert b.dev.healthy(), part
        b.run(700, 72, 97)  # the first failure may come with the next packet
        assert not b.dev.healthy(), part
        assert PARTS[b.dev.stalled()] == part or part in ("alarms", "annunciator")
        repair()
        b.run(700, 72, 97)  # (the oximeter sends 3 packets a second)
        assert b.dev.healthy(), part
        b = None


def test_a_quiet_host_and_silent_sensor_are_not_stuck():
    """REQ-REL-01: no bytes from the oximeter or the host is no fault of the loop: the parts
    complete their stages, the device stays healthy (OXI_COMM_LOST is an alarm, not a reset)."""
    b = bench(types=("alarm",))
    b.run(20000)
    assert b.dev.healthy()
    assert b.alarms("OXI_COMM_LOST")
