# hostlink.py: the USB-serial host link framing: NDJSON out with history and replay, command
# lines in (docs/protocol.md). Bounded everywhere: lines handled per tick, bytes written per
# tick, lines queued, lines replayed per command. The host can neither stall the loop nor push
# alarm events out of what can be replayed: those are kept in a separate retained ring.
# Device -> host: {"v": 2, "seq": n, "boot": b, "type": ..., "t_ms": uptime, ...}.
# Messages are built at most a few times a second (never per byte or per frame).
import io
import json
from array import array

from bedside.compat import const

PROTOCOL_VERSION = const(2)
HOST_BAUD = const(115200)  # nominal rate for ptys and USB-serial adapters (USB CDC ignores it)
LINE_MAX = const(512)  # longest accepted command line, bytes (longer: rejected, resync at LF)
HISTORY = const(48)  # last lines of every kind kept for replay ...
HISTORY_BYTES = const(2560)  # ... in one preallocated byte ring (no heap churn)
RETAINED = const(24)  # last alarm/nibp/setting/... lines kept whatever else is sent ...
RETAINED_BYTES = const(1280)  # ... in a second preallocated byte ring
OUTBOX = const(64)  # lines waiting for the transport (oldest dropped beyond this, counted)
REPLAY_MAX = const(16)  # lines sent again per replay command ...
REPLAY_BYTES = const(2048)  # ... and bytes of copies waiting in the outbox, all replays together
LINES_PER_TICK = const(4)  # command lines handled per tick; the rest wait in the input
WRITE_BUDGET = const(512)  # bytes written per tick (USB CDC full speed takes far more)
_RX = const(64)  # bytes read from the host per read call
_OUT_LINE = const(1024)  # longest message built in place (a longer one is built on the heap)
_COUNT_MAX = const(0x3FFFFFFF)  # counters stay small ints on the Pico (31-bit)
RETAIN_TYPES = ("alarm", "nibp", "nibp_state", "setting", "audio_off", "fault", "selftest")
SESSION_KEPT = const(1)  # the last `session` line kept in a ring of its own (they are long) ...
SESSION_BYTES = const(896)  # ... so they never push alarm lines out of the retained ring


def _inc(x):
    return x + 1 if x < _COUNT_MAX else x


class LineRing:
    """Lines (bytes) with their seq in one preallocated bytearray, oldest evicted first. A line
    is stored contiguously; the space at the end that a line does not fit in is skipped."""

    def __init__(self, size, slots):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        # slot tables as arrays (4 and 2 bytes a slot, not a list's pointer): seqs stay below
        # 2**30, offsets and lengths below the ring size
        self.seq = array("i", bytes(4 * slots))
        self.off = array("H", bytes(2 * slots))
        self.len = array("H", bytes(2 * slots))
        self.head = 0  # slot of the oldest line
        self.n = 0  # lines held
        self.wpos = 0  # where the next line goes
        self.pin = -1  # seq being written from this ring: copied out before it is evicted
        self.saved = None

    def _evict(self):
        i = self.head
        if self.seq[i] == self.pin:
            o = self.off[i]
            self.saved = bytes(self.mv[o : o + self.len[i]])  # rare: the host is slow
            self.pin = -1
        self.head = (i + 1) % len(self.seq)
        self.n -= 1

    def add(self, seq, line):
        a = self.place(seq, len(line))
        if a < 0:
            return False
        self.mv[a : a + len(line)] = line
        return True

    def place(self, seq, n):
        """Make room for a line of n bytes with seq (evicting the oldest as needed) and
        return its offset in buf, for the caller to fill; -1 if it can never fit."""
        size = len(self.buf)
        if n > size:
            return -1
        slots = len(self.seq)
        if self.wpos + n > size:
            # wrap: the lines after wpos are the oldest (the last lap); they go first
            while self.n and self.off[self.head] >= self.wpos:
                self._evict()
            self.wpos = 0
        a = self.wpos
        b = a + n
        # lines of one lap lie in rising offsets, so the oldest is the first that can overlap
        while self.n and (self.n >= slots or self.off[self.head] < b):
            i = self.head
            if self.n < slots and self.off[i] + self.len[i] <= a:
                break
            self._evict()
        i = (self.head + self.n) % slots
        self.seq[i] = seq
        self.off[i] = a
        self.len[i] = n
        self.n += 1
        self.wpos = b
        return a

    def find(self, seq):
        """Slot holding seq, or -1."""
        slots = len(self.seq)
        for k in range(self.n):
            i = (self.head + k) % slots
            if self.seq[i] == seq:
                return i
        return -1

    def oldest(self):
        return self.seq[self.head] if self.n else -1


class HostLink:
    """Encodes messages into bounded rings and decodes command lines from the host."""

    def __init__(self, boot=0):
        self.boot = boot
        self.seq = 0
        self._line = bytearray(LINE_MAX)
        self._n = 0
        self._overlong = False
        self._last_n = 0
        self._rx = bytearray(_RX)  # bytes read but not yet split into lines
        self._rx_mv = memoryview(self._rx)
        self._rx_i = 0
        self._rx_n = 0
        self._bio_n = 0  # bytes of the line in self._bio
        try:  # MicroPython: a preallocated stream json.dump() writes into
            self._bio = io.BytesIO(_OUT_LINE)
        except TypeError:  # CPython's BytesIO takes no size
            self._bio = None
        self._hist = LineRing(HISTORY_BYTES, HISTORY)
        self._kept = LineRing(RETAINED_BYTES, RETAINED)
        self._sess = None  # made with the first `session` line (RAM on a Pico-sized heap)
        self._out = []  # waiting for the transport, in order: seqs (live) or bytes (replays)
        self._copies = 0  # bytes of replayed copies in _out
        self._cur = -1  # seq being written, its bytes and how far
        self._curline = None
        self._pinned = None
        self._pos = 0
        self.rx_lines = 0
        self.rx_errors = 0
        self.tx_dropped = 0
        self.tx_bytes = 0

    # --- device -> host ------------------------------------------------------------------
    def send(self, mtype, t_ms, fields=None):
        """Queue one message; returns its seq."""
        self.seq += 1
        msg = {"v": PROTOCOL_VERSION, "seq": self.seq, "boot": self.boot, "type": mtype}
        msg["t_ms"] = t_ms
        if fields:
            for k in fields:
                if k not in msg:  # the envelope is never overwritten by a field
                    msg[k] = fields[k]
        line = self._encode(msg)
        if line is None:  # in self._bio: read straight into the history ring
            line = self._from_bio(self.seq)
        else:
            self._hist.add(self.seq, line)
        if mtype in RETAIN_TYPES:
            self._kept.add(self.seq, line)
        elif mtype == "session":
            if self._sess is None:
                self._sess = LineRing(SESSION_BYTES, SESSION_KEPT)
            self._sess.add(self.seq, line)
        self._queue(self.seq)
        return self.seq

    def _encode(self, msg):
        """The JSON line: None when it was built in the preallocated stream self._bio
        (MicroPython: no large temporary strings to fragment a Pico-sized heap; _from_bio
        takes it from there), else bytes (CPython's json.dumps, or a line too long)."""
        bio = self._bio
        if bio is not None:
            bio.seek(0)
            json.dump(msg, bio)
            n = bio.tell()
            if n <= _OUT_LINE:
                self._bio_n = n
                return None
        return json.dumps(msg).encode()

    def _from_bio(self, seq):
        """Move the line in self._bio into the history ring (no copy buffer of its own);
        returns it as a view of the ring."""
        n = self._bio_n
        bio = self._bio
        bio.seek(0)
        hist = self._hist
        a = hist.place(seq, n)  # n <= _OUT_LINE < HISTORY_BYTES: always fits
        line = hist.mv[a : a + n]
        bio.readinto(line)
        return line

    def _queue(self, seq):
        self._out.append(seq)
        if len(self._out) > OUTBOX:
            # the oldest goes, but never a line already partly written (it would be torn)
            self._done(self._out.pop(1 if self._pos and self._cur is self._out[0] else 0))
            self.tx_dropped = _inc(self.tx_dropped)

    def _done(self, item):
        if not isinstance(item, int):
            self._copies -= len(item)

    def room(self):
        """Lines the outbox takes before it drops the oldest."""
        return OUTBOX - len(self._out)

    def _line_of(self, seq):
        """(ring, slot) holding seq, or (None, -1) once evicted."""
        i = self._hist.find(seq)
        if i >= 0:
            return self._hist, i
        i = self._kept.find(seq)
        if i >= 0:
            return self._kept, i
        if self._sess is not None:
            i = self._sess.find(seq)
            if i >= 0:
                return self._sess, i
        return None, -1

    def _kept_seqs(self, first_seq):
        seen = {}
        for ring in (self._hist, self._kept, self._sess):
            if ring is None:
                continue
            slots = len(ring.seq)
            for k in range(ring.n):
                q = ring.seq[(ring.head + k) % slots]
                if q >= first_seq:
                    seen[q] = True
        return sorted(seen)

    def replay(self, first_seq, limit=REPLAY_MAX):
        """Queue again kept lines with seq >= first_seq, in order, at most `limit` and never
        more than the outbox takes beside one reply. Returns (count, next seq or None)."""
        kept = self._kept_seqs(first_seq)
        room = self.room() - 1
        limit = min(len(kept), limit, room if room > 0 else 0)
        n = 0
        size = self._copies  # replayed copies still waiting count against the budget
        while n < limit:
            ring, i = self._line_of(kept[n])
            a = ring.off[i]
            size += ring.len[i]
            if size > REPLAY_BYTES:
                break
            self._copies += ring.len[i]
            # a copy: the oldest lines are the first a ring evicts while they wait
            self._queue(bytes(ring.mv[a : a + ring.len[i]]))
            n += 1
        nxt = kept[n] if n < len(kept) else None
        return n, nxt

    def oldest_kept(self):
        best = self.seq + 1
        for ring in (self._hist, self._kept, self._sess):
            if ring is None:
                continue
            q = ring.oldest()
            if 0 < q < best:
                best = q
        return best

    def flush(self, stream, budget=WRITE_BUDGET):
        """Write queued lines, at most `budget` bytes this tick; stream.write(mv) may accept
        less (or None, 0: not writable now). Never blocks, never raises. True when empty."""
        if not self._out:  # every tick: nothing queued costs no frame of _write's size
            return True
        return self._write(stream, budget)

    def _write(self, stream, budget):
        while self._out:
            if budget <= 0:
                return False
            seq = self._out[0]
            if self._cur is not seq:
                self._unpin()
                self._cur = seq
                self._pos = 0
                if not isinstance(seq, int):  # a replayed copy
                    self._curline = seq
                else:
                    ring, i = self._line_of(seq)
                    if ring is None:  # evicted before it could be written: lost, counted
                        self._out.pop(0)
                        self._cur = -1
                        self.tx_dropped = _inc(self.tx_dropped)
                        continue
                    ring.pin = seq  # written from the ring; copied out only if evicted
                    self._pinned = ring
                    self._curline = None
            line = self._curline
            if line is None:
                ring = self._pinned
                if ring.pin != seq:  # evicted meanwhile: its copy was saved
                    line = self._curline = ring.saved
                    ring.saved = None
                    self._pinned = None
                else:
                    i = ring.find(seq)
                    a = ring.off[i]
                    line = ring.mv[a : a + ring.len[i]]
            n = len(line) + 1  # the line and its LF
            take = n - self._pos
            if take > budget:
                take = budget
            try:
                if self._pos + take >= n:  # the rest of the line, then the LF
                    w = stream.write(line[self._pos :]) if self._pos < n - 1 else 0
                    if w is not None and self._pos + w >= n - 1:
                        w = (w or 0) + (stream.write(b"\n") or 0)
                else:
                    w = stream.write(line[self._pos : self._pos + take])
            except Exception:  # a failing transport never stops the loop
                w = 0
            if not w:
                return False
            budget -= w
            self.tx_bytes = (self.tx_bytes + w) & _COUNT_MAX  # bytes written (wraps)
            self._pos += w
            if self._pos >= n:
                self._done(self._out.pop(0))
                self._cur = -1
                self._curline = None
                self._unpin()
        return True

    def _unpin(self):
        if self._pinned is not None:
            self._pinned.pin = -1
            self._pinned.saved = None
            self._pinned = None

    # --- host -> device ------------------------------------------------------------------
    def pump(self, stream, handle, max_lines=LINES_PER_TICK):
        """Read from the host and handle at most max_lines complete lines; bytes after the
        last handled line wait for the next call. Returns True if any byte arrived."""
        n = 0
        if self._rx_i >= self._rx_n:  # every tick: the first read in a small frame
            n = self._readinto(stream)
            if not n:
                return False
            self._rx_i = 0
            self._rx_n = n
        return self._pump(stream, handle, max_lines, n)

    def _readinto(self, stream):
        try:
            return stream.readinto(self._rx_mv)
        except Exception:  # a failing transport never stops the loop
            return 0

    def _pump(self, stream, handle, max_lines, n):
        # pump's loop after its first read (n bytes, or 0: the input still had bytes); at
        # most 4 reads a tick in all
        got = n > 0
        handled = self._split(handle, max_lines)
        k = 3
        while k and handled < max_lines:
            k -= 1
            if self._rx_i >= self._rx_n:
                n = self._readinto(stream)
                if not n:
                    break
                got = True
                self._rx_i = 0
                self._rx_n = n
            handled += self._split(handle, max_lines - handled)
        return got

    def _split(self, handle, budget):
        rx = self._rx
        done = 0
        while self._rx_i < self._rx_n and done < budget:
            b = rx[self._rx_i]
            self._rx_i += 1
            if self._byte(b, handle):
                done += 1
        return done

    def _byte(self, b, handle):
        """One byte; returns True when it completed a line that was handled."""
        if b == 10:  # LF ends a line
            n = self._n
            self._n = 0
            if self._overlong:
                self._overlong = False
                self.rx_errors = _inc(self.rx_errors)
                handle(None, "line longer than %d bytes" % LINE_MAX)
                return True
            if n:
                self._line_in(n, handle)
                return True
            return False
        if self._overlong or b == 13:
            return False
        if self._n >= LINE_MAX:
            self._overlong = True
        else:
            self._line[self._n] = b
            self._n += 1
        return False

    def line(self):
        """The bytes of the command line being handled (without CR and LF): what a command's
        MAC covers (bedside.auth). Valid only inside the handler."""
        return memoryview(self._line)[: self._last_n]

    def _line_in(self, n, handle):
        self.rx_lines = _inc(self.rx_lines)
        self._last_n = n
        try:
            cmd = json.loads(bytes(self._line[:n]))
        except Exception:  # ValueError, UnicodeError; RecursionError/RuntimeError when deep
            self.rx_errors = _inc(self.rx_errors)
            handle(None, "invalid JSON")
            return
        if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
            self.rx_errors = _inc(self.rx_errors)
            handle(None, 'a command is a JSON object with a string "cmd"')
            return
        handle(cmd, None)
