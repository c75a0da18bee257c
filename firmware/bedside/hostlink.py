# hostlink.py: the USB-serial host link, newline-delimited JSON (docs/protocol.md).
# Device -> host: messages {"v": 1, "seq": n, "type": ..., "t_ms": uptime, ...}; seq rises by
# one per message and the last HISTORY lines can be replayed on request. Host -> device:
# commands {"cmd": ..., "id": optional}; every line is validated and answered with a reply.
# Messages are built at most a few times a second (never per byte or per frame).
import json

from bedside.compat import const

PROTOCOL_VERSION = const(1)
LINE_MAX = const(512)  # longest accepted command line, bytes (longer: rejected, resync at LF)
HISTORY = const(64)  # sent lines kept for replay
OUTBOX = const(64)  # lines waiting for the transport (oldest dropped beyond this, counted)


class HostLink:
    """Encodes messages into a bounded outbox and decodes command lines from the host."""

    def __init__(self):
        self.seq = 0
        self._line = bytearray(LINE_MAX)
        self._n = 0
        self._overlong = False
        self._pending = []  # encoded lines not yet written (bytes)
        self._partial = None  # memoryview of a line written in part
        self._history = [None] * HISTORY  # (seq, line) ring
        self.rx_lines = 0
        self.rx_errors = 0
        self.tx_dropped = 0

    # --- device -> host ------------------------------------------------------------------
    def send(self, mtype, t_ms, fields=None):
        """Queue one message; returns its seq."""
        self.seq += 1
        msg = {"v": PROTOCOL_VERSION, "seq": self.seq, "type": mtype, "t_ms": t_ms}
        if fields:
            msg.update(fields)
        line = (json.dumps(msg) + "\n").encode()
        self._history[self.seq % HISTORY] = (self.seq, line)
        self._queue(line)
        return self.seq

    def _queue(self, line):
        if len(self._pending) >= OUTBOX:
            self._pending.pop(0)
            self.tx_dropped += 1
        self._pending.append(line)

    def replay(self, first_seq):
        """Queue again every kept line with seq >= first_seq, in order. Returns the count."""
        lines = [h for h in self._history if h is not None and h[0] >= first_seq]
        lines.sort(key=lambda h: h[0])
        for _seq, line in lines:
            self._queue(line)
        return len(lines)

    def oldest_kept(self):
        kept = [h[0] for h in self._history if h is not None]
        return min(kept) if kept else self.seq + 1

    def flush(self, stream):
        """Write queued lines to stream (write() may accept less, or None); never blocks."""
        while self._partial is not None or self._pending:
            if self._partial is None:
                self._partial = memoryview(self._pending.pop(0))
            try:
                n = stream.write(self._partial)
            except OSError:
                n = 0
            if not n:
                return False
            if n >= len(self._partial):
                self._partial = None
            else:
                self._partial = self._partial[n:]
        return True

    # --- host -> device ------------------------------------------------------------------
    def feed(self, buf, n, handle):
        """Split bytes into lines; call handle(command_dict_or_None, error) per line."""
        line = self._line
        for i in range(n):
            b = buf[i]
            if b == 10:  # LF ends a line
                if self._overlong:
                    self._overlong = False
                    self.rx_errors += 1
                    handle(None, "line longer than %d bytes" % LINE_MAX)
                elif self._n:
                    self._line_in(handle)
                self._n = 0
            elif self._overlong or b == 13:
                continue
            elif self._n >= LINE_MAX:
                self._overlong = True
            else:
                line[self._n] = b
                self._n += 1

    def _line_in(self, handle):
        self.rx_lines += 1
        try:
            cmd = json.loads(bytes(self._line[: self._n]))
        except (ValueError, UnicodeError):
            self.rx_errors += 1
            handle(None, "invalid JSON")
            return
        if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
            self.rx_errors += 1
            handle(None, 'a command is a JSON object with a string "cmd"')
            return
        handle(cmd, None)
