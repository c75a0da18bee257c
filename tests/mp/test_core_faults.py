# test_core_faults.py: no exception, flash fault or key flood stops local alarming (CPython and
# MicroPython). Clocks start just below the 2**30 ms wrap.

from authkit import provision_store
from corekit import bench, cmd
from fakes import MemStore
from scenario import Bench


def test_failing_store_at_boot_and_during_alarms():
    """REQ-CORE-01: a flash that fails every operation (from boot on) never stops the device:
    it starts, alarms and sounds, and raises STORAGE_FAULT instead of raising an exception."""
    store = MemStore()  # a flash that fails every read, write and append (its fault injection)
    provision_store(store)  # provisioned before the flash failed
    store.fail_read = OSError(5)
    store.fail_write = store.fail_append = OSError(28)  # ENOSPC
    b = bench(store=store)
    b.run(3000, 72, 97)
    assert b.alarms("STORAGE_FAULT")
    b.run(2000, 72, 80)  # desaturation: the log append fails, the alarm must not
    assert b.alarms("SPO2_DESAT")[0]["event"] == "raise"
    assert any(hz for _t, hz, _d in b.sounder.log)
    r = cmd(b, {"cmd": "set", "name": "spo2_low", "value": 91})
    assert r["ok"] is False and "key store unreadable" in r["error"]  # the key: unknown
    assert b.dev.settings["spo2_low"] == 90
    store.fail_read = None  # reads work again, writes still fail: the key is read again,
    r = cmd(b, {"cmd": "set", "name": "spo2_low", "value": 91})
    if not r["ok"]:  # with its counter reserve: the host learns the counter and resends
        assert "counter not above" in r["error"]
        r = cmd(b, {"cmd": "set", "name": "spo2_low", "value": 91})
    assert r["ok"] is True  # applied in RAM at once; the write fails behind
    b.run(2000, 72, 80)
    assert b.dev.settings["spo2_low"] == 91 and b.dev.persist.errors > 0
    faults = [m for m in b.messages if m["type"] == "fault" and m["where"] == "storage"]
    assert faults and "OSError" in faults[0]["error"]
    store.fail_read = store.fail_write = store.fail_append = None  # the flash recovers: the
    # fault ends with the next good write
    assert cmd(b, {"cmd": "set", "name": "spo2_low", "value": 92})["ok"]
    b.run(3000, 72, 80)
    ends = [m for m in b.alarms("STORAGE_FAULT") if m["event"] == "end"]
    assert ends


def test_exception_in_a_stage_is_caught_and_alarms_go_on():
    """REQ-CORE-02: an unexpected exception in the sensors stage or the host stage never
    leaves poll(): CORE_FAULT (MEDIUM) is raised, a fault message is sent, alarms go on."""
    b = bench()
    b.run(3000, 72, 97)
    real = b.dev.decoder.feed
    calls = [0]

    def broken(buf, n, now):
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise RuntimeError("decoder bug")
        return real(buf, n, now)

    b.dev.decoder.feed = broken
    b.run(12000, 72, 80)
    assert b.alarms("CORE_FAULT") and b.alarms("CORE_FAULT")[0]["priority"] == "medium"
    assert b.alarms("SPO2_DESAT")  # most packets still get through: the desat is raised
    f = [m for m in b.messages if m["type"] == "fault"]
    assert f and "decoder bug" in f[0]["error"] and len(f) <= 13  # at most one a second
    assert b.dev.healthy()


def test_annunciator_failure_puts_it_in_a_safe_state():
    """REQ-CORE-03: if the annunciator raises, the device restarts it sounding at least the
    highest known priority; a loop that keeps failing reports unhealthy (watchdog reset)."""
    b = bench()
    b.run(3000, 72, 97)
    b.run(1000, 72, 80)  # HIGH
    ann = b.dev.annunciator
    real = ann.step
    state = {"fail": True}

    def broken(now, audible, visible, audio_off=False):
        if state["fail"]:
            state["fail"] = False
            raise ValueError("pattern bug")
        return real(now, audible, visible, audio_off)

    ann.step = broken
    n = len(b.sounder.log)
    b.run(2000, 72, 80)
    assert any(hz for _t, hz, _d in b.sounder.log[n:])  # still sounding
    assert b.dev.healthy()

    def always(now, audible, visible, audio_off=False):
        raise ValueError("stuck")

    ann.step = always
    ann.safe = always
    b.run(2000, 72, 80)
    assert not b.dev.healthy()  # the board stops feeding the watchdog


def test_button_never_raises():
    """REQ-CORE-04: Device.button() never raises: unknown names touch nothing."""
    b = Bench()
    b.run(500, 72, 97)
    assert b.dev.button("explode", b.clock.now) == 0
    assert b.dev.button(None, b.clock.now) == 0


def test_flash_writes_wait_for_a_quiet_moment():
    """REQ-CORE-11: flash writes (write-behind) never run while a pulse sounds or is due
    within the quiet window."""

    class Watch(MemStore):
        def __init__(self, dev_ref):
            MemStore.__init__(self)
            self.ref = dev_ref
            self.bad = 0
            self.writes = 0

        def _check(self):
            dev = self.ref[0]
            if dev is not None:
                self.writes += 1
                if dev.annunciator.tone_on or dev.annunciator.quiet_ms(dev.now) < 60:
                    self.bad += 1

        def write(self, name, data):
            self._check()
            MemStore.write(self, name, data)

        def append(self, name, data):
            self._check()
            MemStore.append(self, name, data)

    ref = [None]
    store = Watch(ref)
    b = bench(types=("reply",), store=store)
    ref[0] = b.dev
    b.run(2000, 72, 97)
    b.run(20000, 72, 80)  # HIGH bursts with many events and settings changes
    for v in (91, 92, 93):
        cmd(b, {"cmd": "set", "name": "spo2_low", "value": v})
        b.press("ack")
        b.run(3000, 72, 80)
    assert store.writes > 3 and store.bad == 0 and not b.dev.persist.pending()


def test_key_flood_is_bounded_per_tick():
    """REQ-CORE-13: a flood of key events never stalls the loop: at most
    KEY_EVENTS_PER_TICK events are handled per tick."""
    from bedside.buttons import K_ACK
    from bedside.mainloop import KEY_EVENTS_PER_TICK, MainLoop

    b = bench(types=())
    loop = MainLoop(b.dev)
    seen = [0, -1, 0, 0]  # events, tick of the last one, events in that tick, most in a tick
    real = b.dev.button

    def count(name, now):
        seen[0] += 1
        seen[2] = seen[2] + 1 if seen[1] == now else 1
        seen[1] = now
        seen[3] = max(seen[3], seen[2])
        return real(name, now)

    b.dev.button = count
    for i in range(2000):  # toggling faster than any finger: debounce drops most
        loop.step(b.clock.advance(10), K_ACK if (i // 7) % 2 else 0)
        if i % 100 == 0:
            b._drain()
    assert seen[0] and seen[3] <= KEY_EVENTS_PER_TICK
