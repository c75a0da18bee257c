# hostlink.py: the USB-serial host link framing: NDJSON out with history and replay, command
# lines in (docs/protocol.md). Bounded everywhere: lines handled per tick, bytes written per
# tick, lines queued, lines replayed per command. The host can neither stall the loop nor push
# alarm events out of what can be replayed: those are kept in a separate retained ring.
# Device -> host: {"v": 2, "seq": n, "boot": b, "type": ..., "t_ms": uptime, ...}.
# Messages are built at most a few times a second (never per byte or per frame).
import json

from bedside.compat import const

PROTOCOL_VERSION = const(2)
HOST_BAUD = const(115200)  # nominal rate for ptys and USB-serial adapters (USB CDC ignores it)
LINE_MAX = const(512)  # longest accepted command line, bytes (longer: rejected, resync at LF)
HISTORY = const(64)  # last lines of every kind kept for replay ...
HISTORY_BYTES = const(6144)  # ... within this many bytes (a Pico-sized heap)
RETAINED = const(64)  # last alarm/nibp/setting/... lines kept for replay whatever else is sent
RETAINED_BYTES = const(4096)
OUTBOX = const(64)  # lines waiting for the transport (oldest dropped beyond this, counted)
OUTBOX_BYTES = const(4096)  # ... or beyond this many bytes
REPLAY_MAX = const(16)  # lines sent again per replay command
LINES_PER_TICK = const(4)  # command lines handled per tick; the rest wait in the input
WRITE_BUDGET = const(512)  # bytes written per tick (USB CDC full speed takes far more)
_RX = const(64)  # bytes read from the host per read call
_COUNT_MAX = const(0x3FFFFFFF)  # counters stay small ints on the Pico (31-bit)
RETAIN_TYPES = ("alarm", "nibp", "nibp_state", "setting", "audio_off", "fault", "selftest")


def _inc(x):
    return x + 1 if x < _COUNT_MAX else x


class HostLink:
    """Encodes messages into a bounded outbox and decodes command lines from the host."""

    def __init__(self, boot=0):
        self.boot = boot
        self.seq = 0
        self._line = bytearray(LINE_MAX)
        self._n = 0
        self._overlong = False
        self._rx = bytearray(_RX)  # bytes read but not yet split into lines
        self._rx_mv = memoryview(self._rx)
        self._rx_i = 0
        self._rx_n = 0
        self._pending = []  # encoded lines not yet written (bytes)
        self._out_bytes = 0
        self._partial = None  # memoryview of a line written in part
        self._history = [None] * HISTORY  # (seq, line) ring of every line
        self._retained = [None] * RETAINED  # (seq, line) ring of RETAIN_TYPES lines
        self._ret_i = 0
        self._bytes = [0, 0]  # bytes held by each ring
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
        line = (json.dumps(msg) + "\n").encode()
        entry = (self.seq, line)
        self._keep(0, self._history, self.seq % HISTORY, entry, HISTORY_BYTES)
        if mtype in RETAIN_TYPES:
            self._keep(1, self._retained, self._ret_i, entry, RETAINED_BYTES)
            self._ret_i = (self._ret_i + 1) % RETAINED
        self._queue(line)
        return self.seq

    def _keep(self, k, ring, i, entry, limit):
        """Put entry in slot i of ring; drop the oldest entries beyond `limit` bytes."""
        old = ring[i]
        if old is not None:
            self._bytes[k] -= len(old[1])
        ring[i] = entry
        self._bytes[k] += len(entry[1])
        n = len(ring)
        j = (i + 1) % n  # the slot after the newest holds the oldest
        while self._bytes[k] > limit and j != i:
            old = ring[j]
            if old is not None:
                self._bytes[k] -= len(old[1])
                ring[j] = None
            j = (j + 1) % n

    def _queue(self, line):
        self._out_bytes += len(line)
        self._pending.append(line)
        while len(self._pending) > OUTBOX or (
            self._out_bytes > OUTBOX_BYTES and len(self._pending) > 1
        ):
            self._out_bytes -= len(self._pending.pop(0))
            self.tx_dropped = _inc(self.tx_dropped)

    def room(self):
        """Lines the outbox takes before it drops the oldest (counting 512 bytes a line)."""
        by_bytes = (OUTBOX_BYTES - self._out_bytes) // 512
        by_lines = OUTBOX - len(self._pending)
        return by_lines if by_lines < by_bytes else by_bytes

    def _kept(self, first_seq):
        """Kept (seq, line) entries with seq >= first_seq, oldest first, without duplicates."""
        seen = {}
        for ring in (self._history, self._retained):
            for h in ring:
                if h is not None and h[0] >= first_seq:
                    seen[h[0]] = h[1]
        return sorted(seen.items())

    def replay(self, first_seq, limit=REPLAY_MAX):
        """Queue again kept lines with seq >= first_seq, in order, at most `limit` and never
        more than the outbox takes beside one reply. Returns (count, next seq or None)."""
        kept = self._kept(first_seq)
        room = self.room() - 1
        n = min(len(kept), limit, room if room > 0 else 0)
        for i in range(n):
            self._queue(kept[i][1])
        nxt = kept[n][0] if n < len(kept) else None
        return n, nxt

    def oldest_kept(self):
        best = self.seq + 1
        for ring in (self._history, self._retained):
            for h in ring:
                if h is not None and h[0] < best:
                    best = h[0]
        return best

    def flush(self, stream, budget=WRITE_BUDGET):
        """Write queued lines, at most `budget` bytes this tick; stream.write(mv) may accept
        less (or None, 0: not writable now). Never blocks, never raises. True when empty."""
        while self._partial is not None or self._pending:
            if budget <= 0:
                return False
            if self._partial is None:
                line = self._pending.pop(0)
                self._out_bytes -= len(line)
                self._partial = memoryview(line)
            part = self._partial
            if len(part) > budget:
                part = part[:budget]
            try:
                n = stream.write(part)
            except Exception:  # a failing transport never stops the loop
                n = 0
            if not n:
                return False
            budget -= n
            self.tx_bytes = _inc(self.tx_bytes)
            if n >= len(self._partial):
                self._partial = None
            else:
                self._partial = self._partial[n:]
        return True

    # --- host -> device ------------------------------------------------------------------
    def pump(self, stream, handle, max_lines=LINES_PER_TICK):
        """Read from the host and handle at most max_lines complete lines; bytes after the
        last handled line wait for the next call. Returns True if any byte arrived."""
        got = False
        handled = 0
        for _ in range(4):  # bounded reads per tick
            if self._rx_i >= self._rx_n:
                try:
                    n = stream.readinto(self._rx_mv)
                except Exception:
                    n = 0
                if not n:
                    break
                got = True
                self._rx_i = 0
                self._rx_n = n
            handled += self._split(handle, max_lines - handled)
            if handled >= max_lines:
                break
        return got

    def feed(self, buf, n, handle):
        """Split n bytes of buf into lines; handle every complete one (tests, replay tools)."""
        for i in range(n):
            self._byte(buf[i], handle)

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

    def _line_in(self, n, handle):
        self.rx_lines = _inc(self.rx_lines)
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
