# auth.py: authenticated host commands (docs/protocol.md "Authentication"): HMAC-SHA256 built
# on hashlib.sha256 with a per-device key, a monotonic counter against replay (persisted, with a
# reserve after each start), a constant-time comparison, and a lockout with backoff after
# repeated failures. Pure: the store is passed in; time comes in as now_ms. Runs only when a
# state-changing command arrives (never per tick). The key is never sent, logged or shown.
#
# Key file (KEY_FILE): "<crc32 of BODY, 8 hex> BODY\n", BODY = 64 lowercase hex (32 bytes).
# Counter file (CTR_FILE): the same shape, BODY = the last accepted counter in decimal.
import hashlib

from bedside.compat import const
from bedside.crc import crc32
from bedside.ticks import Age

KEY_FILE = "auth.key"
CTR_FILE = "auth.ctr"
KEY_BYTES = const(32)
MAC_HEX = const(64)
SUFFIX = const(74)  # ,"mac":"<64 hex>"} ends every signed line
MARK = b',"mac":"'
CTR_GAP = const(1024)  # after a start the counter jumps by this (accepted but not yet saved)
CTR_LOST = const(1 << 28)  # an unreadable counter file: the counter restarts above this
CTR_MAX = const(0x3FFFFFFF)  # counters stay small ints on the Pico
FAILS_FREE = const(5)  # failures in a row before a lockout
LOCK_MS = const(2000)  # the first lockout; each further one doubles ...
LOCK_MAX_MS = const(300000)  # ... up to this
_BLOCK = const(64)

S_NONE = const(0)  # not provisioned: only `provision` (unsigned) is accepted
S_READY = const(1)  # provisioned
S_FAULT = const(2)  # a key file exists but cannot be read: maintenance-mode reset needed
STATE_NAMES = ("unprovisioned", "provisioned", "key_unreadable")


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) of bytes msg with a key of at most 64 bytes (tests, host)."""
    k = bytearray(_BLOCK)
    k[: len(key)] = key
    ipad = bytes(b ^ 0x36 for b in k)
    opad = bytes(b ^ 0x5C for b in k)
    h = hashlib.sha256(ipad)
    h.update(msg)
    inner = h.digest()
    h = hashlib.sha256(opad)
    h.update(inner)
    return h.digest()


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    return -1


def parse_key(text):
    """32 key bytes from 64 lowercase hex characters (bytes or str), or None."""
    if isinstance(text, str):
        text = text.encode()
    if len(text) != 2 * KEY_BYTES:
        return None
    out = bytearray(KEY_BYTES)
    for i in range(KEY_BYTES):
        a = _hexval(text[2 * i])
        b = _hexval(text[2 * i + 1])
        if a < 0 or b < 0:
            return None
        out[i] = a * 16 + b
    return bytes(out)


def _file(body):
    return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"


def _body(raw):
    """The checked body of a key or counter file; ValueError if it is not intact."""
    raw = bytes(raw)
    if len(raw) < 11 or raw[8:9] != b" " or raw[-1:] != b"\n":
        raise ValueError("not an auth file")
    body = raw[9:-1]
    for c in raw[:8]:
        if _hexval(c) < 0:
            raise ValueError("not an auth file")
    if int(raw[:8], 16) != crc32(body) & 0xFFFFFFFF:
        raise ValueError("checksum mismatch")
    return body


class Auth:
    """The device's key, counter and failure state. verify(line, ctr, now) -> error or None."""

    def __init__(self, store=None):
        self.store = store
        self.state = S_NONE
        self.problem = None  # why the key or counter could not be read (readable)
        self._ipad = bytearray(_BLOCK)
        self._opad = bytearray(_BLOCK)
        self._hex = bytearray(MAC_HEX)  # the expected MAC in hex, built in place
        self.last = 0  # the last accepted counter
        self.fails = 0  # failures in a row
        self.lockouts = 0  # lockouts since the last success (the backoff exponent)
        self.lock_ms = 0  # length of the running lockout (0: none)
        self._lock = Age()
        self.failures = 0  # failures since start (saturates)
        self._retry = False  # the key file could not be read: try again at the next command
        if store is not None:
            self._load()

    # --- start ----------------------------------------------------------------------------
    def _load(self):
        try:
            raw = self.store.read(KEY_FILE)
        except Exception as e:  # OSError from the flash: tried again at the next command
            self._fault("key file unreadable: %s" % type(e).__name__)
            self._retry = True
            return
        if raw is None:
            return  # never provisioned
        try:
            key = parse_key(_body(raw))
        except Exception as e:
            key = None
            self.problem = "key file corrupt: %s" % e
        if key is None:
            self._fault(self.problem or "key file corrupt")
            return
        self._use(key)
        try:
            raw = self.store.read(CTR_FILE)
            last = 0 if raw is None else int(_body(raw))
            if last < 0:
                raise ValueError("negative")
        except Exception as e:  # the counter is unknown: restart it above anything used
            self.problem = "counter file unreadable (%s): counter restarted" % type(e).__name__
            last = CTR_LOST
        self.last = min(last + CTR_GAP, CTR_MAX)  # may have been accepted but not saved

    def _fault(self, text):
        self.state = S_FAULT
        self.problem = text[:80]

    def _use(self, key):
        ip = self._ipad
        op = self._opad
        for i in range(_BLOCK):
            b = key[i] if i < len(key) else 0
            ip[i] = b ^ 0x36
            op[i] = b ^ 0x5C
        self.state = S_READY

    def counter_file(self):
        """The counter file's bytes (queued by the device after each accepted command)."""
        return _file(("%d" % self.last).encode())

    def install(self, key):
        """Use the 32-byte key from now on and store it (OSError if the store fails: then
        nothing changed). A store-less device keeps it in RAM only."""
        if self.store is not None:
            self.store.write(KEY_FILE, _file("".join("%02x" % b for b in key).encode()))
            self.store.write(CTR_FILE, self.counter_file())
        self._use(key)
        self.problem = None

    # --- per command ----------------------------------------------------------------------
    def locked(self, now):
        """Milliseconds of lockout left (0: none)."""
        if not self.lock_ms:
            return 0
        left = self.lock_ms - self._lock.ms(now)
        if left <= 0:
            self.lock_ms = 0
            return 0
        return left

    def fail(self, now):
        """A failed authentication: counted; FAILS_FREE in a row start a lockout, each next
        one twice as long (up to LOCK_MAX_MS). Returns the lockout started (ms) or 0."""
        if self.failures < CTR_MAX:
            self.failures += 1
        self.fails += 1
        if self.fails < FAILS_FREE:
            return 0
        self.fails = 0
        ms = LOCK_MS
        for _ in range(self.lockouts):
            ms *= 2
            if ms >= LOCK_MAX_MS:
                ms = LOCK_MAX_MS
                break
        if self.lockouts < 16:
            self.lockouts += 1
        self.lock_ms = ms
        self._lock.mark(now)
        return ms

    def check(self, line, ctr):
        """Whether `line` (the received bytes, without LF) carries a valid MAC and a fresh
        counter: None, or the reason it does not. Compares all 64 characters whatever they
        hold (constant time). Changes nothing; accept(ctr) after the command is taken."""
        if self._retry:
            self._retry = False
            self.state = S_NONE
            self._load()
        if self.state != S_READY:
            if self.state == S_NONE:
                return "not provisioned: run bedside provision"
            return "key store unreadable: reset the key in maintenance mode"
        n = len(line)
        if n <= SUFFIX or bytes(line[n - SUFFIX : n - SUFFIX + 8]) != MARK:
            return "authentication required: no mac at the end of the line"
        if line[n - 2] != 34 or line[n - 1] != 125:  # "}
            return "authentication required: no mac at the end of the line"
        h = hashlib.sha256(self._ipad)
        h.update(line[: n - SUFFIX])
        inner = h.digest()
        h = hashlib.sha256(self._opad)
        h.update(inner)
        mac = h.digest()
        out = self._hex
        for i in range(32):
            b = mac[i]
            hi = b >> 4
            lo = b & 15
            out[2 * i] = hi + 48 if hi < 10 else hi + 87
            out[2 * i + 1] = lo + 48 if lo < 10 else lo + 87
        diff = 0
        base = n - SUFFIX + 8
        for i in range(MAC_HEX):
            diff |= out[i] ^ line[base + i]
        if diff:
            return "authentication failed: wrong mac"
        if isinstance(ctr, bool) or not isinstance(ctr, int) or ctr <= self.last:
            return "authentication failed: counter not above %d (replayed or stale)" % self.last
        if ctr > CTR_MAX:
            return "authentication failed: counter above %d" % CTR_MAX
        return None

    def accept(self, ctr):
        self.last = ctr
        self.fails = 0
        self.lockouts = 0
