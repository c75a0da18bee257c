# alarmlog.py: the persistent alarm log (IEC 60601-1-8 6.12; alarms.md 1.10, 6.9): a bounded
# ring in flash that survives power loss, through the injected store (read/write/append).
#
# Layout: SEGMENTS files "alarmlog.0" .. "alarmlog.<S-1>", each at most PER_SEGMENT records,
# written in turn; when the current one is full the next (oldest) is emptied and reused, so
# at least (SEGMENTS - 1) * PER_SEGMENT of the newest records are always kept.
# Record: one line "<crc32 of the JSON, 8 hex> <JSON>\n"; the JSON carries n (sequence number,
# rising by one for ever), b (boot counter), u (uptime ms at the event) and the event fields.
# On open() it finds the newest segment (highest first n), resumes after its last valid
# record and takes the boot counter one past the highest seen. A torn last line (power cut
# mid-write) or any corrupt line fails its checksum and is skipped, never fatal; the next
# record starts on a new line. Events allocate; nothing here runs per tick.
import json

from bedside.compat import const

try:
    from binascii import crc32
except ImportError:  # pragma: no cover - ports without binascii.crc32

    def crc32(data, value=0):  # type: ignore[misc]
        c = value ^ 0xFFFFFFFF
        for byte in data:
            c ^= byte
            for _ in range(8):
                c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        return c ^ 0xFFFFFFFF


SEGMENTS = const(16)
PER_SEGMENT = const(64)
PREFIX = "alarmlog."


def encode(rec):
    """One record line (bytes) for the dict rec."""
    body = json.dumps(rec).encode()
    return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"


def decode(line):
    """The record dict of one line (without its LF), or None if torn or corrupt."""
    if len(line) < 11 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != crc32(body) & 0xFFFFFFFF:
            return None
        rec = json.loads(body)
    except (ValueError, TypeError, UnicodeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("n"), int):
        return None
    return rec


class AlarmLog:
    def __init__(self, store, prefix=PREFIX, segments=SEGMENTS, per_segment=PER_SEGMENT):
        self.store = store
        self.prefix = prefix
        self.segments = segments
        self.per_segment = per_segment
        self.seq = 0  # number of the next record
        self.boot = 0  # this boot's counter (1 on a fresh device)
        self.seg = 0  # current segment
        self.count = 0  # lines in the current segment (valid or not)
        self.skipped = 0  # corrupt/torn lines seen by open()
        self._newline = False  # the current segment ends in a torn line

    def _name(self, i):
        return self.prefix + str(i)

    def _lines(self, i):
        data = self.store.read(self._name(i))
        if not data:
            return None, b""
        return data.split(b"\n"), data

    def open(self, boot=None):
        """Resume after the last valid record; returns this boot's counter."""
        boot_arg = boot
        best = -1
        best_first = -1
        for i in range(self.segments):
            lines, _ = self._lines(i)
            if lines is None:
                continue
            for line in lines:
                rec = decode(line)
                if rec is not None:
                    if rec["n"] > best_first:
                        best_first = rec["n"]
                        best = i
                    break
        last = -1
        boot = 0
        if best >= 0:
            lines, data = self._lines(best)
            self.seg = best
            self.count = 0
            for line in lines:
                if not line:
                    continue
                self.count += 1
                rec = decode(line)
                if rec is None:
                    self.skipped += 1
                    continue
                if rec["n"] > last:
                    last = rec["n"]
                b = rec.get("b")
                if isinstance(b, int) and b > boot:
                    boot = b
            self._newline = not data.endswith(b"\n")
        self.seq = last + 1
        self.boot = boot + 1
        if boot_arg is not None:
            self.boot = boot_arg
        return self.boot

    def append(self, uptime_ms, fields):
        """Write one record (fields: a dict of the event); returns its number."""
        if self.count >= self.per_segment:
            self.seg = (self.seg + 1) % self.segments
            self.store.write(self._name(self.seg), b"")
            self.count = 0
            self._newline = False
        rec = {"n": self.seq, "b": self.boot, "u": uptime_ms}
        rec.update(fields)
        line = encode(rec)
        if self._newline:
            line = b"\n" + line  # close a torn line first: it stays one skipped line
            self._newline = False
        self.store.append(self._name(self.seg), line)
        self.count += 1
        self.seq += 1
        return rec["n"]

    def read(self, first, limit):
        """Up to `limit` valid records with n >= first, oldest first."""
        out = []
        for k in range(1, self.segments + 1):
            lines, _ = self._lines((self.seg + k) % self.segments)  # oldest segment first
            if lines is None:
                continue
            for line in lines:
                rec = decode(line)
                if rec is not None and rec["n"] >= first:
                    out.append(rec)
                    if len(out) >= limit:
                        return out
        return out

    def oldest(self):
        """Number of the oldest record kept (self.seq if the log is empty)."""
        recs = self.read(0, 1)
        return recs[0]["n"] if recs else self.seq


class _Reader:
    """TEMPORARY cursor (the persistence branch streams)."""

    def __init__(self, log, first):
        self.log = log
        self.first = first

    def next(self):
        recs = self.log.read(self.first, 1)
        if not recs:
            return None
        self.first = recs[0]["n"] + 1
        return recs[0]


def _reader(self, first):
    return _Reader(self, first)


def _first(self):
    recs = self.read(0, 1)
    return recs[0]["n"] if recs else self.seq


AlarmLog.reader = _reader
AlarmLog.first = _first
