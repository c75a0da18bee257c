# test_power_cut.py: a power cut at every store operation around a settings change and alarm
# events (CPython and MicroPython): after the restart the settings are the old or the new ones
# (never defaulted, never mixed), the logs reopen, DEVICE_RESTARTED is raised.
from corekit import bench, cmd
from fakes import MemStore
from mputil import release


class PowerCut(BaseException):
    """The power went: nothing after this runs (not an Exception: no handler catches it)."""


class CutStore(MemStore):
    """A store whose `cut`-th write or append is cut halfway: a write leaves a torn temp file
    (the rename never happens), an append leaves half a record line."""

    def __init__(self, cut):
        MemStore.__init__(self)
        self.cut = cut
        self.n = 0

    def _tick(self):
        self.n += 1
        return self.cut is not None and self.n == self.cut

    def write(self, name, data):
        if self._tick():
            self._chunks[name + ".tmp"] = [bytes(data)[: len(data) // 2]]
            raise PowerCut()
        MemStore.write(self, name, data)

    def append(self, name, data):
        if self._tick():
            MemStore.append(self, name, bytes(data)[: len(data) // 2])
            raise PowerCut()
        MemStore.append(self, name, data)


def _scenario(b):
    b.run(1500, 72, 97)
    cmd(b, {"cmd": "set", "name": "spo2_low", "value": 91})
    b.run(1500, 72, 80)  # SPO2_DESAT: alarm records
    cmd(b, {"cmd": "set", "name": "pr_high", "value": 135})
    b.run(1500, 72, 97)


def test_power_cut_at_every_store_operation():
    """REQ-REL-02: a power cut at each store operation (write or append) of a run with two
    settings changes and alarm events: the restarted device has each setting at its old or
    new value, not SETTINGS_DEFAULTED, its logs open at the next boot, DEVICE_RESTARTED is
    raised and it monitors again (SPO2_DESAT raised again)."""
    probe = CutStore(None)
    b = bench(types=("reply",), store=probe)
    _scenario(b)
    total = probe.n
    b = None
    release()
    assert total >= 6
    for cut in range(2, total + 1):  # (1: the bench's own key file, before the device ran)
        store = CutStore(cut)
        try:
            b = bench(types=("reply",), store=store)
            _scenario(b)
            raise AssertionError("no cut at %d" % cut)
        except PowerCut:
            pass
        b = None
        release()
        store.cut = None
        b = bench(types=("alarm",), store=store, reset_cause="unclean")
        s = b.dev.settings
        assert not s.defaulted, (cut, s.problems)
        assert s["spo2_low"] in (90, 91) and s["pr_high"] in (130, 135), cut
        # the boot counter lives in the alarm log's boot record: cut while that very record
        # was written (cuts 2, 3), the first boot never counted (docs/reliability.md, limits)
        assert b.dev.boot == (1 if cut <= 3 else 2), cut
        b.run(3000, 72, 80)
        assert b.alarms("DEVICE_RESTARTED") and b.alarms("SPO2_DESAT"), cut
        b = None
        release()
