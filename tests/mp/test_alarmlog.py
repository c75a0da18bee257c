# test_alarmlog.py: the flash log rings (bedside.alarmlog): streaming reader, index, torn and
# hostile records, two rings, store failures. Plain asserts, CPython and MicroPython (192 KiB).
import gc
import json
from binascii import crc32

from bedside.alarmlog import (
    EVENT_PREFIX,
    LINE,
    PER_SEGMENT,
    READS,
    SEGMENTS,
    AlarmLog,
    decode,
    encode,
)
from fakes import MemStore
from filestore import FileStore, temp_root
from mputil import IS_MICROPYTHON


def _alarm(k):
    """What the device logs for an alarm event (a long one: the worst case for size)."""
    return {
        "condition": "SPO2_DESAT",
        "priority": "high",
        "state": "latched_acknowledged",
        "event": "raise",
        "kind": "physiological",
        "value": 80 + k % 10,
        "limit": 85,
    }


def _line(obj):
    """A record line with a valid checksum around any JSON text or object."""
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"


def _drain(r, calls=100000):
    """All records the reader gives until done (None with done False: call again)."""
    out = []
    for _ in range(calls):
        rec = r.next()
        if rec is not None:
            out.append(rec)
        elif r.done:
            return out
    raise AssertionError("reader never finished")


def _ns(recs):
    return [rec["n"] for rec in recs]


def _fragment(block):
    """Fill the heap with `block`-byte blocks and free every other one: plenty of free memory,
    none of it contiguous beyond about `block` bytes (first-fit allocation keeps the live ones
    in between). MicroPython only: on CPython this would fill the machine's memory."""
    blocks = []
    if not IS_MICROPYTHON:
        return blocks
    try:
        while True:
            blocks.append(bytearray(block))
    except MemoryError:
        pass
    for i in range(0, len(blocks), 2):
        blocks[i] = None
    gc.collect()
    return blocks


def test_full_log_streams_on_fragmented_heap():
    """REQ-LOG-01: a full production-size log (SEGMENTS x PER_SEGMENT alarm records of the
    longest kind, the ring wrapped) is opened and read completely through the cursor on a
    fragmented 192 KiB MicroPython heap (much free, nothing contiguous above ~1.5 KB), where
    loading one segment whole, as the log used to, raises MemoryError."""
    store = FileStore(temp_root("log"))
    try:
        log = AlarmLog(store)
        assert log.open() == 1
        total = SEGMENTS * PER_SEGMENT + PER_SEGMENT + 7
        for k in range(total):
            log.append(1000 * k, _alarm(k))
        log = None
        gc.collect()
        keep = _fragment(1536)
        try:
            if IS_MICROPYTHON:
                assert gc.mem_free() > 60000, gc.mem_free()
                try:
                    bytearray(4096)
                    big = True
                except MemoryError:
                    big = False
                assert not big  # the heap really is fragmented
                try:
                    store.read("alarmlog.5")  # the old way: a whole segment in one piece
                    whole = True
                except MemoryError:
                    whole = False
                assert not whole
            log = AlarmLog(store)
            assert log.open() == 2 and log.seq == total
            oldest = total - PER_SEGMENT - 7 - (SEGMENTS - 2) * PER_SEGMENT
            assert log.first() == oldest
            got = 0
            r = log.reader(0)
            for _ in range(10 * total):
                rec = r.next()
                if rec is None:
                    if r.done:
                        break
                    continue
                assert rec["n"] == oldest + got and rec["u"] == 1000 * rec["n"], rec
                want = _alarm(rec["n"])
                want.update({"n": rec["n"], "b": 1, "u": 1000 * rec["n"]})
                assert rec == want
                got += 1
            assert got == total - oldest >= (SEGMENTS - 1) * PER_SEGMENT
            assert r.skipped == 0
            mid = log.reader(total - 100)
            assert _drain_some(mid, 1)[0]["n"] == total - 100
        finally:
            keep.clear()
    finally:
        store.remove_all()


def test_cursor_from_the_middle_bounded_and_live():
    """REQ-LOG-02: the cursor starts at any record number (oldest first, from the segment
    index), reads at most READS x LINE bytes per next(), costs no read once nothing newer
    exists, returns records appended after it reached the end, and first() is the oldest kept."""
    store = MemStore()
    log = AlarmLog(store, segments=4, per_segment=5)
    assert log.open() == 1 and log.first() == 0 and log.seq == 0
    for k in range(23):
        log.append(k, {"event": "raise", "k": k})
    assert log.first() == 5 and log.seq == 23  # 5..22 kept: 3 full segments and 3 records
    r = log.reader(12)
    recs = []
    while True:
        ops = store.ops
        rec = r.next()
        assert store.ops - ops <= READS
        if rec is None and r.done:
            break
        if rec is not None:
            recs.append(rec)
    assert _ns(recs) == list(range(12, 23)) and recs[0]["k"] == 12
    assert _ns(_drain(log.reader(0))) == list(range(5, 23))
    assert _ns(_drain(log.reader(22))) == [22]
    ops = store.ops
    assert r.next() is None and r.done and store.ops == ops  # at the end: no read at all
    far = log.reader(1000)
    assert far.next() is None and far.done and store.ops == ops
    log.append(99, {"event": "later"})
    rec = r.next()
    assert rec["n"] == 23 and rec["event"] == "later" and rec["u"] == 99
    assert r.next() is None and r.done
    assert log.read(20, 2) == _drain(log.reader(20))[:2]


def test_cursor_survives_its_segment_being_reused():
    """REQ-LOG-02: records keep rising under a cursor while the writer empties and reuses the
    segment it is reading; it goes on from the oldest record still kept, nothing twice."""
    store = MemStore()
    log = AlarmLog(store, segments=3, per_segment=4)
    log.open()
    for k in range(12):
        log.append(k, {"event": "x"})
    r = log.reader(0)
    first = _drain_some(r, 2)
    assert _ns(first) == [0, 1]
    for k in range(6):  # empties the segment holding 0..3 and the next
        log.append(k, {"event": "y"})
    rest = _drain(r)
    ns = _ns(first + rest)
    assert ns == sorted(set(ns)) and ns[-1] == log.seq - 1
    assert _ns(rest)[0] == log.first()


def _drain_some(r, n):
    out = []
    while len(out) < n:
        rec = r.next()
        if rec is not None:
            out.append(rec)
        else:
            assert not r.done
    return out


def test_torn_corrupt_and_overlong_lines_are_skipped():
    """REQ-LOG-03: a torn last line (power cut mid-write), a flipped byte and an over-long
    line (even with a valid checksum) are skipped by open() and the cursor, never fatal; the
    next record starts on a new line; a line written by the earlier firmware reads back."""
    old = b'c5c8a525 {"n": 0, "b": 1, "u": 0, "event": "boot", "reset_cause": "power_on"}\n'
    good = [encode({"n": k, "b": 2, "u": k, "event": "e%d" % k}) for k in range(1, 5)]
    flipped = bytearray(good[2])
    flipped[20] ^= 0x01
    overlong = _line({"n": 9, "b": 2, "pad": "x" * (2 * LINE)})
    torn = b'0badc0de {"n": 5, "b"'
    body = old + good[0] + overlong + good[1] + bytes(flipped) + good[3] + torn
    store = MemStore({"alarmlog.0": body})
    log = AlarmLog(store, segments=4, per_segment=8)
    assert log.open() == 3 and log.seq == 5 and log.skipped == 3 and log.count == 7
    r = log.reader(0)
    recs = _drain(r)
    assert _ns(recs) == [0, 1, 2, 4] and r.skipped == 2  # the torn end is not passed yet
    assert recs[0] == {"n": 0, "b": 1, "u": 0, "event": "boot", "reset_cause": "power_on"}
    assert recs[3] == {"n": 4, "b": 2, "u": 4, "event": "e4"}
    log.append(14, {"event": "e"})
    recs = _drain(log.reader(4))
    assert _ns(recs) == [4, 5] and recs[1] == {"n": 5, "b": 3, "u": 14, "event": "e"}
    tail = store.files["alarmlog.0"][len(body) :]
    assert tail[:1] == b"\n" and tail.count(b"\n") == 2 and decode(tail[1:-1]) == recs[1]


def test_decode_survives_hostile_records():
    """REQ-LOG-04: decode() never raises and rejects, even with a valid checksum: deep
    nesting (RecursionError on CPython, MemoryError/RuntimeError on MicroPython), non-dict
    JSON, nested or non-finite values, record numbers that are not 31-bit, garbage bytes."""
    # MicroPython: 4000 levels outgrow its json stack on this heap (MemoryError); CPython:
    # RecursionError. Either way: None, and the log goes on.
    depth = 4000 if IS_MICROPYTHON else 100000
    gc.collect()
    assert decode(_line(b"[" * depth + b"]" * depth)[:-1]) is None
    gc.collect()
    depth = 1000 if IS_MICROPYTHON else 100000
    assert decode(_line(b'{"a": ' * depth + b"1" + b"}" * depth)[:-1]) is None
    gc.collect()
    for bad in (
        [1, 2],
        5,
        "n",
        None,
        {"b": 1},
        {"n": -1},
        {"n": True},
        {"n": 10**40},
        {"n": 1.5},
        {"n": 1, "b": 10**12},
        {"n": 1, "x": [1]},
        {"n": 1, "x": {"n": 2}},
    ):
        assert decode(_line(bad)[:-1]) is None, bad
    assert decode(_line(b'{"n": 1, "v": 1e999}')[:-1]) is None
    for junk in (b"", b"garbage", b"zzzzzzzz {}", b"\xff" * 40, b"00000000 " + b"\x00" * 9):
        assert decode(junk) is None
    assert decode(_line({"n": 7, "b": 2, "v": 1.5})[:-1]) == {"n": 7, "b": 2, "v": 1.5}


def test_hostile_records_in_a_segment_are_passed_over():
    """REQ-LOG-04: open() and the cursor never raise on hostile content between valid
    records (nesting, non-dict JSON, non-finite or huge numbers, binary junk, empty lines);
    the valid records around it are all kept."""
    hostile = (
        _line(b"[" * 140 + b"]" * 140)
        + _line([1, 2, 3])
        + _line(b'{"n": 1, "v": 1e999}')
        + _line({"n": 99999999999})
        + b"\x00\xff\n\n"
    )
    body = b""
    for k in range(3):
        body += encode({"n": k, "b": 1, "u": k, "event": "ok"}) + hostile
    store = MemStore({"alarmlog.0": body})
    log = AlarmLog(store, segments=2, per_segment=20)
    assert log.open() == 2 and log.seq == 3
    r = log.reader(0)
    assert _ns(_drain(r)) == [0, 1, 2] and r.skipped == 10  # nothing read after the last


def test_directory_in_place_of_a_segment():
    """REQ-LOG-04, REQ-LOG-11: a segment name that is a directory (EISDIR) is corrupt data:
    open() does not raise, the writer passes over it (one failed write, retried elsewhere),
    nothing is lost."""
    store = MemStore()
    store.dirs.add("alarmlog.0")
    log = AlarmLog(store, segments=3, per_segment=8)
    assert log.open() == 1 and log.seq == 0
    try:
        log.append(1, {"event": "a"})
        raise AssertionError("a directory cannot be emptied")
    except OSError as e:
        assert e.args[0] == 21
    assert log.append(1, {"event": "a"}) == 0  # the retry uses the next segment
    for k in range(19):
        log.append(k, {"event": "b"})
    log2 = AlarmLog(store, segments=3, per_segment=8)
    assert log2.open() == 2 and log2.seq == 20
    assert _ns(_drain(log2.reader(0))) == list(range(8, 20)) and log2.first() == 8


class _Flaky(MemStore):
    """A store whose reads of one file fail with EIO."""

    def __init__(self, bad):
        MemStore.__init__(self)
        self.bad = bad

    def read_into(self, name, offset, buf):
        if name == self.bad:
            raise OSError(5)
        return MemStore.read_into(self, name, offset, buf)


def test_read_failure_in_open_is_raised_after_completing():
    """REQ-LOG-04: an I/O failure (an OSError other than EISDIR) while opening is raised to
    the caller after open() completed: the log is usable, a segment it could not read is
    never emptied that boot (with none other left, append raises OSError), and a later open()
    that reads everything resumes the numbering exactly."""
    store = _Flaky(None)
    log = AlarmLog(store, segments=3, per_segment=2)
    log.open()
    for k in range(5):
        log.append(k, {"event": "x"})  # segments 0: 0-1, 1: 2-3, 2: 4
    store.bad = "alarmlog.0"
    log = AlarmLog(store, segments=3, per_segment=2)
    try:
        log.open()
        raise AssertionError("open() must raise the I/O failure")
    except OSError as e:
        assert e.args[0] == 5
    assert log.boot == 2 and log.seq == 5
    held = store.files["alarmlog.0"]
    for k in range(10):
        log.append(k, {"event": "y"})  # segments 1 and 2 take turns
    assert store.files["alarmlog.0"] == held
    store.bad = None
    log = AlarmLog(store, segments=3, per_segment=2)
    assert log.open() == 3 and log.seq == 15
    assert _ns(_drain(log.reader(0))) == [0, 1, 12, 13, 14]

    store = _Flaky(None)
    log = AlarmLog(store, segments=2, per_segment=2)
    log.open()
    for k in range(4):
        log.append(k, {"event": "x"})
    store.fail_read = OSError(5)
    log = AlarmLog(store, segments=2, per_segment=2)
    try:
        log.open()
        raise AssertionError("open() must raise")
    except OSError:
        pass
    store.fail_read = None
    before = store.files["alarmlog.0"] + store.files["alarmlog.1"]
    try:
        log.append(0, {"event": "z"})
        raise AssertionError("nothing it could not read may be emptied")
    except OSError as e:
        assert e.args[0] == 5
    assert store.files["alarmlog.0"] + store.files["alarmlog.1"] == before
    assert log.open() == 2 and log.seq == 4


def test_two_rings_separate_budgets_one_boot_counter():
    """REQ-LOG-05: the alarm log and the event log are separate rings (own files, own
    budgets): a flood of event records never pushes an alarm record out; the alarm log gives
    the boot counter and the event log takes it."""
    store = MemStore()
    alog = AlarmLog(store, segments=4, per_segment=5)
    elog = AlarmLog(store, prefix=EVENT_PREFIX, segments=2, per_segment=5)
    boot = alog.open()
    assert boot == 1 and elog.open(boot=boot) == 1
    alog.append(0, {"event": "boot", "reset_cause": "power_on"})
    alog.append(5, {"condition": "SPO2_LOW", "event": "raise"})
    for k in range(200):
        elog.append(10 + k, {"event": "setting", "name": "spo2_low", "value": 88 + k % 2})
    assert _ns(_drain(alog.reader(0))) == [0, 1]
    events = _drain(elog.reader(0))
    assert _ns(events) == list(range(events[0]["n"], 200)) and len(events) >= 5
    assert events[-1]["b"] == 1 and events[-1]["value"] == 89
    assert sorted(store.files.keys()) == [
        "alarmlog.0",
        "eventlog.0",
        "eventlog.1",
    ]
    alog2 = AlarmLog(store, segments=4, per_segment=5)
    elog2 = AlarmLog(store, prefix=EVENT_PREFIX, segments=2, per_segment=5)
    boot = alog2.open()
    assert boot == 2 and elog2.open(boot=boot) == 2 and elog2.last_boot == 1
    assert elog2.seq == 200 and alog2.seq == 2


def test_oversized_record_is_shortened_not_lost():
    """REQ-LOG-12: a record whose fields would not fit the line buffer is written shortened
    (long strings cut, marked "cut"), and readable; nothing written is ever unreadable."""
    store = MemStore()
    log = AlarmLog(store, segments=2, per_segment=8)
    log.open()
    log.append(1, {"event": "fault", "error": "e" * 1000, "where": "storage"})
    wide = {"event": "setting"}
    for k in range(40):
        wide["f%d" % k] = "v" * 30
    log.append(2, wide)
    log.append(3, {"event": "x" * 500})
    recs = _drain(log.reader(0))
    assert _ns(recs) == [0, 1, 2]
    assert recs[0]["error"] == "e" * 40 and recs[0]["where"] == "storage" and recs[0]["cut"] == 1
    assert recs[1] == {"n": 1, "b": 1, "u": 2, "event": "setting", "cut": 1}
    assert recs[2] == {"n": 2, "b": 1, "u": 3, "event": "x" * 40, "cut": 1}
    for line in store.files["alarmlog.0"].split(b"\n")[:-1]:
        assert len(line) + 1 <= LINE


def test_alarm_log_ring_survives_restart_and_corruption():
    """REQ-ALM-19: every alarm event goes to a bounded ring in flash with uptime and a boot
    counter; after a restart it resumes after the last valid record; a torn or corrupt
    record is skipped, never fatal; the ring keeps at least (segments-1) x per_segment."""
    store = MemStore()
    log = AlarmLog(store, segments=4, per_segment=5)
    assert log.open() == 1
    for k in range(12):
        log.append(100 * k, {"event": "raise", "condition": "SPO2_LOW"})
    log2 = AlarmLog(store, segments=4, per_segment=5)
    assert log2.open() == 2 and log2.seq == 12
    log2.append(0, {"event": "boot"})
    # power cut mid-write: a torn line, and a flipped byte in an older record
    name = "alarmlog.%d" % log2.seg
    store.files[name] += b'0badc0de {"n": 13, "b"'
    old = bytearray(store.files["alarmlog.0"])
    old[20] ^= 0x01
    store.files["alarmlog.0"] = bytes(old)
    log3 = AlarmLog(store, segments=4, per_segment=5)
    assert log3.open() == 3 and log3.seq == 13 and log3.skipped == 1
    log3.append(5, {"event": "boot"})
    recs = log3.read(0, 100)
    assert [r["n"] for r in recs] == list(range(1, 14))  # record 0 corrupt: skipped
    assert recs[-1]["b"] == 3 and recs[-1]["u"] == 5 and recs[-2]["b"] == 2
    assert AlarmLog(store, segments=4, per_segment=5).open() == 4  # the torn line is inert
    for k in range(30):  # wrap the ring several times
        log3.append(k, {"event": "x"})
    recs = log3.read(0, 100)
    ns = [r["n"] for r in recs]
    assert ns == list(range(ns[0], log3.seq)) and len(ns) >= 15
    assert len(store.files) == 4
    assert decode(b"garbage") is None and decode(b"") is None
