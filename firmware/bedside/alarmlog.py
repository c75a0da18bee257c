# alarmlog.py: a persistent log ring in flash (IEC 60601-1-8 6.12; docs/alarms.md 8), streamed.
#
# The device keeps two rings with separate budgets, so a flood of one never pushes the other
# out: the alarm log (PREFIX: alarm events, boots) and the event log (EVENT_PREFIX: settings
# changes, AUDIO OFF/ON, faults, self-tests). Both are written behind the alarm path by
# bedside.persist.
# Layout: `segments` files <prefix>0 .. <prefix><S-1> of at most `per_segment` records each;
# when the current one is full the oldest is emptied and reused, so at least
# (segments - 1) * per_segment of the newest records are always kept.
# Record: one line "<crc32 of the JSON, 8 hex> <JSON>\n" of at most LINE bytes; the JSON carries
# n (record number, rising by one for ever), b (boot counter), u (uptime ms at the event) and
# the event's flat fields.
# Heap: a file is never loaded whole. Every scan reads line by line into ONE preallocated
# LINE-byte buffer through the store's size()/read_into(); open() keeps a small index (each
# segment's first record number); a Reader is a cursor that reads at most READS x LINE bytes per
# next(). A torn line (power cut mid-write), an over-long line and any corrupt line are skipped,
# never fatal; the next record starts on a new line.
#
# The store (FlashStore on the Pico, DirStore in the SIL, MemStore in tests):
#   read(name) -> bytes, or None if there is no such file
#   write(name, data): atomic and verified (temp file, read back and compare, rename); OSError on
#       failure or mismatch, the old file is then unchanged
#   append(name, data)
#   size(name) -> int, or None if there is no such file; OSError if it cannot tell
#   read_into(name, offset, buf) -> bytes read into buf from offset (0 at the end or if there
#       is no such file); OSError on failure (errno EISDIR: the name is a directory)
import json

from bedside.compat import const
from bedside.crc import crc32

SEGMENTS = const(16)
PER_SEGMENT = const(64)
PREFIX = "alarmlog."
EVENT_PREFIX = "eventlog."
LINE = const(320)  # longest record line in bytes, LF included; a longer line is corrupt
READS = const(2)  # store reads per Reader.next() at most
MAX_N = const(0x3FFFFFFF)  # record numbers and boot counters stay 31-bit small ints
_HEAD = const(8)  # open(): a segment whose first valid record is not in 8 reads holds none
_CUT = const(40)  # append(): string fields of an over-long record are cut to this length
_EIO = const(5)
_EISDIR = const(21)


def encode(rec):
    """One record line (bytes) for the dict rec."""
    body = json.dumps(rec).encode()
    return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"


def _small(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_N


def _valid(rec):
    """A record is a flat dict of JSON scalars (finite numbers) with a 31-bit n (and b)."""
    if not isinstance(rec, dict) or not _small(rec.get("n")):
        return False
    if "b" in rec and not _small(rec["b"]):
        return False
    for k in rec:
        v = rec[k]
        if isinstance(v, float):
            if not v - v == 0.0:  # inf or nan: not valid JSON to pass on
                return False
        elif isinstance(v, (dict, list)):
            return False
    return True


def decode(line):
    """The record dict of one line (bytes or memoryview, without its LF), or None if torn or
    corrupt. Never raises: deep nesting (RecursionError on CPython, RuntimeError or MemoryError
    on MicroPython), non-dict JSON, nested or non-finite values, huge numbers give None."""
    try:
        if len(line) < 11 or line[8] != 32:
            return None
        body = line[9:]
        if int(bytes(line[:8]), 16) != crc32(body) & 0xFFFFFFFF:
            return None
        rec = json.loads(bytes(body))
        return rec if _valid(rec) else None
    except Exception:
        return None


def _fit(rec):
    """The line of rec, made to fit LINE: long strings cut to _CUT characters (marked "cut": 1),
    and if still too long only n, b, u and event kept. A record is never dropped for its size."""
    line = encode(rec)
    if len(line) > LINE:
        for k in list(rec):
            v = rec[k]
            if isinstance(v, str) and len(v) > _CUT:
                rec[k] = v[:_CUT]
        rec["cut"] = 1
        line = encode(rec)
    if len(line) > LINE:
        short = {"n": rec["n"], "b": rec["b"], "cut": 1}
        for k in ("u", "event"):
            v = rec.get(k)
            if isinstance(v, (int, str)) and len(str(v)) <= _CUT:
                short[k] = v
        line = encode(short)
    return line


class AlarmLog:
    """One ring. open() once at boot, then append() (through bedside.persist) and reader()."""

    def __init__(self, store, prefix=PREFIX, segments=SEGMENTS, per_segment=PER_SEGMENT):
        if not 1 <= segments <= 30 or per_segment < 1:
            raise ValueError("1..30 segments of at least 1 record")
        self.store = store
        self.prefix = prefix
        self.segments = segments
        self.per_segment = per_segment
        self.seq = 0  # number of the next record
        self.boot = 0  # this boot's counter (1 on a fresh device)
        self.last_boot = 0  # highest boot counter open() found (0: none)
        self.seg = 0  # current segment
        self.count = 0  # lines in the current segment (valid or not)
        self.skipped = 0  # corrupt/torn lines open() found in the current segment
        self._newline = False  # the current segment may end in a torn line: close it first
        self._first = [-1] * segments  # first record number per segment, -1: none
        self._keep = 0  # bit per segment open() could not read: never emptied this boot
        self._bad = 0  # bit per empty/garbage segment that could not be emptied: try others
        self._names = [prefix + str(i) for i in range(segments)]
        self._buf = bytearray(LINE)  # the one line buffer every scan goes through
        self._mv = memoryview(self._buf)
        self._got = 0

    # --- scanning -----------------------------------------------------------------------
    def _fetch(self, i, pos):
        """Read segment i from pos into the line buffer. Returns the LF index, -2 at the end,
        -1 without a LF: a partial last line (self._got < LINE) or an over-long line."""
        got = self.store.read_into(self._names[i], pos, self._mv)
        self._got = got
        if not got:
            return -2
        return self._buf.find(b"\n", 0, got)

    def _head(self, i):
        """Number of the first valid record of segment i within its first lines, or -1."""
        size = self.store.size(self._names[i])
        if not size or size > 2 * self.per_segment * LINE:
            return -1  # missing, empty, or far bigger than anything this log writes
        pos = 0
        long = False
        for _ in range(_HEAD):
            lf = self._fetch(i, pos)
            if lf == -2 or (lf == -1 and self._got < LINE):
                return -1
            if lf == -1:
                pos += LINE
                long = True
                continue
            if not long:
                rec = decode(self._mv[:lf])
                if rec is not None:
                    b = rec.get("b")
                    if _small(b) and b > self.last_boot:
                        self.last_boot = b
                    return rec["n"]
            long = False
            pos += lf + 1
        return -1

    def _tail(self, i):
        """Scan the current segment: line count, last record number, highest boot counter."""
        pos = 0
        long = False
        last = -1
        top = 0
        for _ in range(4 * self.per_segment + 8):
            lf = self._fetch(i, pos)
            if lf < 0 and (lf == -2 or self._got < LINE):
                if lf == -1 or long:  # a torn last line
                    self.count += 1
                    self.skipped += 1
                    self._newline = True
                return last, top
            if lf == -1:
                pos += LINE
                long = True
                continue
            pos += lf + 1
            if long:
                long = False
                self.count += 1
                self.skipped += 1
            elif lf:
                self.count += 1
                rec = decode(self._mv[:lf])
                if rec is None:
                    self.skipped += 1
                    continue
                if rec["n"] > last:
                    last = rec["n"]
                b = rec.get("b")
                if _small(b) and b > top:
                    top = b
        self.count = self.per_segment  # far more lines than written: move on at the next append
        return last, top

    def open(self, boot=None):
        """Index the segments and resume after the last valid record; returns this boot's
        counter: one past the highest seen, or `boot` if given (the event log takes the alarm
        log's). Corrupt data never raises: torn, corrupt and over-long lines, non-dict JSON and
        a segment that is a directory (EISDIR) are skipped. Any other OSError from the store is
        an I/O failure: open() still completes with what it could read (the log is usable;
        segments it could not read are never emptied this boot) and then raises that OSError,
        so the caller can raise STORAGE_FAULT."""
        S = self.segments
        err = None
        self._keep = 0
        self._bad = 0
        self.last_boot = 0  # raised by every record open() decodes
        best = -1
        for i in range(S):
            n = -1
            try:
                n = self._head(i)
            except OSError as e:
                if not e.args or e.args[0] != _EISDIR:  # args[0]: the errno on both Pythons
                    self._keep |= 1 << i
                    err = err or e
            self._first[i] = n
            if n >= 0 and (best < 0 or n > self._first[best]):
                best = i
        self.count = 0
        self.skipped = 0
        self._newline = False
        last = top = 0
        if best >= 0:
            self.seg = best
            try:
                last, top = self._tail(best)
            except OSError as e:
                err = err or e
                self.count = self.per_segment  # not fully read: append elsewhere
            if last < self._first[best]:
                last = self._first[best]
            self.seq = last + 1
        else:
            self.seg = S - 1
            self.count = self.per_segment  # the first append empties segment 0 and starts there
            self.seq = 0
        if top > self.last_boot:
            self.last_boot = top
        self.boot = boot if boot is not None else min(self.last_boot + 1, MAX_N)
        if err is not None:
            raise err
        return self.boot

    # --- writing ------------------------------------------------------------------------
    def _target(self, skip):
        """The segment to empty next: one holding no valid record, else the oldest; -1 if
        every other segment is in the `skip` mask."""
        S = self.segments
        best = -1
        for d in range(1, S + 1):
            k = (self.seg + d) % S
            if (k == self.seg and S > 1) or skip >> k & 1:
                continue
            f = self._first[k]
            if f < 0:
                return k
            if best < 0 or f < self._first[best]:
                best = k
        return best

    def rotate_due(self):
        """The current segment is full: the next append() empties the oldest one first."""
        return self.count >= self.per_segment

    def rotate(self):
        """Empty the oldest segment (or one holding nothing valid) and make it current: one
        store write. OSError if it fails; an empty or garbage segment that cannot be emptied
        is passed over by the next try. Segments open() could not read are never emptied: with
        no other left, OSError(EIO) until open() succeeds again."""
        k = self._target(self._bad | self._keep)
        if k < 0 and self._bad:  # every other segment failed this boot: go round again
            self._bad = 0
            k = self._target(self._keep)
        if k < 0:
            raise OSError(_EIO)
        try:
            self.store.write(self._names[k], b"")
        except OSError:
            if self._first[k] < 0:
                self._bad |= 1 << k
            raise
        self._first[k] = -1
        self.seg = k
        self.count = 0
        self._newline = False

    def append(self, uptime_ms, fields):
        """Write one record (fields: a flat dict of the event; uptime_ms an int or a (seconds,
        ms) pair); returns its number. Raises the
        store's OSError; the log stays consistent (the record is not counted, a possibly torn
        line is closed before the next one), so the same call can be retried."""
        if self.count >= self.per_segment:
            self.rotate()
        n = self.seq
        rec = {}
        rec.update(fields)
        rec["n"] = n
        rec["b"] = self.boot
        if isinstance(uptime_ms, tuple):  # (seconds, ms): the caller keeps no big int around
            uptime_ms = uptime_ms[0] * 1000 + uptime_ms[1]
        rec["u"] = uptime_ms
        line = _fit(rec)
        if self._newline:
            line = b"\n" + line  # close a torn line first: it stays one skipped line
        try:
            self.store.append(self._names[self.seg], line)
        except Exception:
            self._newline = True
            raise
        self._newline = False
        if self._first[self.seg] < 0:
            self._first[self.seg] = n
        self.count += 1
        self.seq = n + 1
        return n

    # --- reading ------------------------------------------------------------------------
    def first(self):
        """Number of the oldest record kept (self.seq if the log is empty), from the index."""
        lo = -1
        for f in self._first:
            if f >= 0 and (lo < 0 or f < lo):
                lo = f
        return self.seq if lo < 0 else lo

    def _holding(self, n):
        """The segment whose records start at or before n (the latest such), else the oldest;
        -1 if the log is empty."""
        at = -1
        lo = -1
        for i in range(self.segments):
            f = self._first[i]
            if f < 0:
                continue
            if f <= n and (at < 0 or f > self._first[at]):
                at = i
            if lo < 0 or f < self._first[lo]:
                lo = i
        return at if at >= 0 else lo

    def _after(self, f):
        """The segment with the smallest first record number above f, or -1."""
        nxt = -1
        for i in range(self.segments):
            g = self._first[i]
            if g > f and (nxt < 0 or g < self._first[nxt]):
                nxt = i
        return nxt

    def reader(self, first=0):
        """A cursor over the records with n >= first, oldest first (see Reader)."""
        return Reader(self, first)

    def read(self, first, limit):
        """Up to `limit` valid records with n >= first, oldest first, as a list. Convenience
        for tests and small limits: the work is not bounded per call; use reader() in the tick."""
        r = Reader(self, first)
        out = []
        while len(out) < limit:
            rec = r.next()
            if rec is None:
                if r.done:
                    break
                continue
            out.append(rec)
        return out


class Reader:
    """Cursor: next() returns the next valid record (a dict) with n >= first, oldest first.
    None and done True: the end, for now (records appended later come from later calls).
    None and done False: this call spent its budget (READS store reads of at most LINE bytes)
    on corrupt lines or records before `first`; call again (e.g. next tick).
    Record numbers only rise: a duplicate or older record is passed over. A segment emptied
    and reused under the cursor is noticed; it goes on from the oldest record still kept."""

    def __init__(self, log, first=0):
        self.log = log
        self.last = (first if first > 0 else 0) - 1  # highest number returned (or first - 1)
        self.done = False
        self.skipped = 0  # corrupt, torn and over-long lines passed over
        self.seg = -1
        self.pos = 0
        self._seg_first = -1
        self._long = False

    def _enter(self, s):
        self.seg = s
        self._seg_first = self.log._first[s]
        self.pos = 0
        self._long = False

    def next(self):
        log = self.log
        reads = 0
        while True:
            if self.last + 1 >= log.seq:  # nothing newer has been written
                self.done = True
                return None
            s = self.seg
            if s < 0 or log._first[s] != self._seg_first:  # start, or the segment was reused
                s = log._holding(self.last + 1)
                if s < 0:
                    self.done = True
                    return None
                self._enter(s)
            if reads >= READS:
                self.done = False
                return None
            reads += 1
            lf = log._fetch(s, self.pos)
            if lf < 0 and (lf == -2 or log._got < LINE):  # end of this segment
                nxt = log._after(self._seg_first)
                if nxt < 0:
                    self.done = True  # stay here: a torn or growing line is read again later
                    return None
                self._enter(nxt)
                continue
            if lf == -1:  # over-long line: pass over it chunk by chunk
                self.pos += LINE
                self._long = True
                continue
            self.pos += lf + 1
            if self._long:
                self._long = False
                self.skipped += 1
                continue
            if not lf:
                continue
            rec = decode(log._mv[:lf])
            if rec is None:
                self.skipped += 1
                continue
            if rec["n"] <= self.last:
                continue
            self.last = rec["n"]
            self.done = False
            return rec
