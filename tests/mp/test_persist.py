# test_persist.py: the write-behind persistence queue (bedside.persist) over the flash logs:
# one store operation per step, never raising, bounded retries, alarm records first, coalesced
# and verified saves. Plain asserts, CPython and MicroPython (192 KiB heap).
from bedside.alarmlog import EVENT_PREFIX, AlarmLog
from bedside.persist import COUNT_MAX, RETRIES, Persist
from fakes import MemStore
from mputil import alloc_per_call


def _rig(slots=24, store=None, segments=4, per_segment=3):
    store = store if store is not None else MemStore()
    alog = AlarmLog(store, segments=segments, per_segment=per_segment)
    elog = AlarmLog(store, prefix=EVENT_PREFIX, segments=segments, per_segment=per_segment)
    elog.open(boot=alog.open())
    return store, alog, elog, Persist(store, alog, elog, slots=slots)


def _run(p, steps=1000):
    """step() until idle; the number of operations done."""
    n = 0
    while p.step():
        n += 1
        assert n < steps
    return n


def _events(log):
    return [(r["n"], r["u"], r.get("event")) for r in log.read(0, 1000)]


def test_queue_then_one_store_operation_per_step():
    """REQ-LOG-08: log_alarm/log_event/save only queue (no store call); each step() does at
    most one store operation (a segment change is its own step), in the order alarm records,
    saves, event records; step() is False when there is nothing to do."""
    store, alog, elog, p = _rig()
    ops = store.ops
    assert p.step() is False and store.ops == ops
    for k in range(5):
        assert p.log_event(100 + k, {"event": "setting", "name": "spo2_low", "value": 88})
    p.save("settings.json", b'{"spo2_low": 88}')
    for k in range(7):
        assert p.log_alarm(k, {"event": "raise", "condition": "SPO2_LOW"})
    assert store.ops == ops and p.pending() == 13
    order = []
    while True:
        before = store.ops
        n_a, n_s, n_e = alog.seq, "settings.json" in store.files, elog.seq
        if not p.step():
            break
        assert store.ops - before == 1
        if alog.seq > n_a:
            order.append("a")
        elif elog.seq > n_e:
            order.append("e")
        elif not n_s and "settings.json" in store.files:
            order.append("s")
    assert "".join(order) == "a" * 7 + "s" + "e" * 5
    assert store.ops - ops == 12 + 1 + 3 + 2  # 12 records, a save, 5 segment changes
    assert p.pending() == 0 and not p.fault and p.errors == 0 and p.dropped == 0
    assert [e[:2] for e in _events(alog)[-6:]] == [(k, k) for k in range(1, 7)]
    assert [e[1] for e in _events(elog)] == [100, 101, 102, 103, 104]
    assert store.files["settings.json"] == b'{"spo2_low": 88}'


def test_store_failure_sets_fault_never_raises_bounded_retries():
    """REQ-LOG-08: a store whose appends, writes and reads raise: step() never raises; fault
    is set with a readable last_error (<= 80 characters) and errors counted; the alarm record
    stays queued and is retried RETRIES times before it is dropped (counted); the next good
    operation clears fault; errors saturate at 9999."""
    store, alog, elog, p = _rig()
    store.fail_append = OSError(5, "flash went away " + "x" * 200)
    assert p.log_alarm(1, {"event": "raise", "condition": "SPO2_DESAT"})
    assert p.log_event(2, {"event": "audio_off"})
    assert alog.rotate_due()
    assert p.step() is True and not p.fault  # the segment change is a write: it works
    for k in range(RETRIES - 1):
        assert p.step() is True
        assert p.fault and p.errors == k + 1 and p.pending() == 2 and p.dropped == 0
    assert "alarm log" in p.last_error and "OSError" in p.last_error
    assert len(p.last_error) <= 80
    assert p.step() is True and p.dropped == 1 and p.pending() == 1  # the alarm record: gone
    store.fail_append = None
    assert p.step() is True and not p.fault  # the event log's segment change
    assert p.step() is True and not p.fault and p.pending() == 0
    assert alog.seq == 0 and elog.seq == 1
    p.log_alarm(3, {"event": "raise"})
    store.fail_append = MemoryError("odd")  # anything at all a store might raise
    for _ in range(RETRIES):
        assert p.step() is True
    assert p.fault and p.dropped == 2 and p.pending() == 0 and p.errors == 2 * RETRIES
    p.errors = COUNT_MAX - 1
    p.log_alarm(4, {"event": "raise"})
    for _ in range(RETRIES):
        p.step()
    assert p.errors == COUNT_MAX


def test_failing_alarm_is_retried_after_a_transient_fault():
    """REQ-LOG-08: a transient store failure costs nothing: the alarm record is written on
    the retry, with its original uptime, and fault clears."""
    store, alog, _elog, p = _rig()
    p.log_alarm(1234, {"event": "raise", "condition": "PR_HIGH"})
    p.step()  # segment change
    store.fail_append = OSError(28)  # ENOSPC
    assert p.step() and p.fault and p.pending() == 1
    store.fail_append = None
    assert p.step() and not p.fault and p.pending() == 0 and p.dropped == 0
    assert _events(alog) == [(0, 1234, "raise")]


def test_queue_full_prefers_alarm_records():
    """REQ-LOG-09: the queue has a fixed number of preallocated slots; when they are full an
    event record is refused, an alarm record takes the place of the newest event record, and
    only when every slot holds an alarm record is one refused; each loss counts in dropped.
    Queueing allocates nothing."""
    store, alog, elog, p = _rig(slots=4)
    for k in range(4):
        assert p.log_event(k, {"event": "e%d" % k})
    assert p.log_event(9, {"event": "late"}) is False and p.dropped == 1
    assert p.log_alarm(10, {"event": "a0"}) and p.dropped == 2 and p.pending() == 4
    assert p.log_event(11, {"event": "late"}) is False and p.dropped == 3
    for k in range(1, 4):
        assert p.log_alarm(10 + k, {"event": "a%d" % k})
    assert p.dropped == 6 and p.pending() == 4
    assert p.log_alarm(20, {"event": "a4"}) is False and p.dropped == 7
    p.save("settings.json", b"{}")  # saves have their own slots
    assert p.pending() == 5
    _run(p)
    assert [e[2] for e in _events(alog)] == ["a0", "a1", "a2", "a3"]
    assert elog.seq == 0 and store.files["settings.json"] == b"{}"
    fields = {"event": "raise"}
    p2 = Persist(store, alog, elog, slots=300)
    a = alloc_per_call(lambda: p2.log_alarm(5, fields), 200)
    assert a is None or a == 0, a
    a = alloc_per_call(lambda: p2.log_event(5, fields), 50)
    assert a is None or a == 0, a


def test_saves_coalesce():
    """REQ-LOG-10: a newer save of the same name replaces the pending one: only the newest
    contents are written, once; different names are kept apart."""
    store, _alog, _elog, p = _rig()
    p.save("settings.json", b'{"spo2_low": 88}')
    p.save("other.json", b"[1]")
    p.save("settings.json", b'{"spo2_low": 89}')
    p.save("settings.json", b'{"spo2_low": 90}')
    assert p.pending() == 2
    ops = store.ops
    assert _run(p) == 2 and store.ops - ops == 2
    assert store.files["settings.json"] == b'{"spo2_low": 90}'
    assert store.files["other.json"] == b"[1]"


def test_write_verify_failure_keeps_the_old_file():
    """REQ-LOG-07: a save is atomic and verified in the store (temp file, read back and
    compare, rename): a read-back mismatch raises OSError, the old file stays as it was and
    no temp file is left; the Persist queue reports it as a fault and retries."""
    store = MemStore({"settings.json": b'{"spo2_low": 88}'})
    store.bad_writes = True
    try:
        store.write("settings.json", b'{"spo2_low": 90}')
        raise AssertionError("a mismatch must raise")
    except OSError:
        pass
    assert store.files["settings.json"] == b'{"spo2_low": 88}'
    assert sorted(store.files.keys()) == ["settings.json"]
    store, _alog, _elog, p = _rig(store=store)
    p.save("settings.json", b'{"spo2_low": 90}')
    assert p.step() and p.fault and "settings.json" in p.last_error and p.pending() == 1
    store.bad_writes = False
    assert p.step() and not p.fault and p.pending() == 0
    assert store.files["settings.json"] == b'{"spo2_low": 90}'
    store.bad_writes = True
    p.save("settings.json", b'{"spo2_low": 91}')
    _run(p)
    assert p.dropped == 1 and store.files["settings.json"] == b'{"spo2_low": 90}'
