# test_tick_stages.py: every stage of Device.poll is guarded on its own: an exception in any one
# is caught and faulted under its stage's name, and every other stage still runs in that tick
# (Device._stages under guard.Catch). CPython and MicroPython; the clock near the tick wrap.
from corekit import bench
from mputil import release

# the stages in their order, and the name each faults under
WHERE = ("sensors", "host", "session", "alarms", "annunciator", "report", "host")
# the part of Device.PARTS each marks failing (sensors 0, alarms 1, annunciator 2, host 3)
PART = (0, 3, -1, 1, 2, -1, 3)


class Boom(Exception):
    pass


class _Session:
    """An open session's tick, as the stage calls it."""

    def __init__(self, hook):
        self.hook = hook

    def tick(self, now):
        self.hook(2)


def _rigged(k, kind=Boom):
    """A settled device whose stages log their runs in `ran`; stage k raises kind."""
    b = bench()
    b.run(3000, 72, 97)
    dev = b.dev
    ran = []

    def hook(i):
        ran.append(i)
        if i == k:
            raise kind("stage %d" % i)

    def wrap(i, real):
        def stage(*args):
            hook(i)
            return real(*args)

        return stage

    dev._read_sensors = wrap(0, dev._read_sensors)
    dev.link.pump = wrap(1, dev.link.pump)
    dev.sessctl = _Session(hook)
    dev._judge = wrap(3, dev._judge)
    dev._annunciate = wrap(4, dev._annunciate)
    dev.cmds.step = wrap(5, dev.cmds.step)
    dev.link.flush = wrap(6, dev.link.flush)
    return b, ran


def _unrig(b):
    dev = b.dev
    for name in ("_read_sensors", "_judge", "_annunciate"):
        delattr(dev, name)
    delattr(dev.link, "pump")
    delattr(dev.link, "flush")
    delattr(dev.cmds, "step")
    dev.sessctl = None


def test_each_stage_fails_alone_and_the_others_run():
    """REQ-PERF-F04: an exception in any one stage of a tick (sensors, host rx, session, alarms,
    annunciator, report and commands, host tx) is caught inside poll(), counted and reported as
    a fault under that stage's name; every other stage still runs in the same tick, the failing
    stage's part is marked failing, and only an alarm or annunciator failure counts as a bad
    tick."""
    for k in range(7):
        b, ran = _rigged(k)
        dev = b.dev
        dev._t_report = b.clock.now  # no 1 Hz report in the tick under test
        faults = dev.faults
        b.clock.advance(10)
        dev.poll(b.clock.now)  # never raises
        assert ran == [0, 1, 2, 3, 4, 5, 6], (k, ran)
        assert dev.faults == faults + 1, k
        assert dev.last_fault == "Boom: stage %d" % k, (k, dev.last_fault)
        assert dev._bad_ticks == (1 if k in (3, 4) else 0), k
        for part in range(4):
            assert dev._failing[part] == (1 if PART[k] == part else 0), (k, part)
        _unrig(b)
        b.messages = []
        b.run(1500, 72, 97)  # the next ticks work again; the fault message goes out
        f = [m for m in b.messages if m["type"] == "fault"]
        assert f and f[0]["where"] == WHERE[k] and "stage %d" % k in f[0]["error"], (k, f)
        assert dev._bad_ticks == 0 and dev.healthy(), k
        b = ran = dev = f = None  # one device at a time: a Pico-sized heap
        release()


def test_a_non_exception_leaves_poll_as_before():
    """REQ-PERF-F04: the stages catch Exception, as `except Exception` did: a KeyboardInterrupt
    (a BaseException) is not swallowed."""
    b, ran = _rigged(3, KeyboardInterrupt)
    b.clock.advance(10)
    try:
        b.dev.poll(b.clock.now)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("KeyboardInterrupt swallowed")
    assert ran == [0, 1, 2, 3]
