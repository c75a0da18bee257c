# corekit.py: shared helpers of the core hardening tests (valid on MicroPython and CPython):
# a flash that fails, a Bench that keeps only the messages a test reads, a command helper.
from authkit import line
from fakes import Events
from scenario import Bench

DAY = 24 * 3600 * 1000


def cmd(b, obj):
    """Send one command; run until its reply has been written (at most 3 s)."""
    _IDS[0] += 1
    obj = dict(obj)
    if "id" not in obj:
        obj["id"] = "t%d" % _IDS[0]
    found = []
    prev = b.on_message

    def hook(m):
        if m["type"] == "reply" and m["id"] == obj["id"]:
            found.append(m)
        if prev is not None:
            prev(m)
        else:
            b.keep(m)

    b.on_message = hook
    b.host.push(line(b.dev, obj))
    try:
        for _ in range(300):
            b.run(10)
            if found:
                return found[-1]
    finally:
        b.on_message = prev
    return None


_IDS = [0]


EVENTS = ("alarm", "reply", "fault", "audio_off", "selftest", "button", "setting")


def bench(types=EVENTS, **kw):
    """A Bench keeping only the message types a test looks at, and the last sounder/LED
    changes (a Pico-sized heap)."""
    b = Bench(**kw)
    b.sounder.log = Events(cap=256)  # the last sounder and LED changes (long runs)
    b.leds.log = Events(last_bool=True, cap=256)

    def keep(m):
        if m["type"] in types:
            b.messages.append(m)
        elif m["type"] == "heartbeat":
            b.last_hb = m

    b.on_message = keep
    return b


def sounding(b):
    return b.dev.annunciator.tone_on or b.dev.alarms.audible_priority() > 0
