# auth.py: authenticated host commands (docs/protocol.md "Authentication"): HMAC-SHA256 built
# on hashlib.sha256 with a per-device key, a monotonic counter against replay (persisted, with a
# reserve after each start), a constant-time comparison, and a lockout with backoff after
# repeated failures. This module holds the state read at boot; the per-command code is in
# bedside.authcmd, imported at the first state-changing command (RAM on a Pico-sized heap).
# Pure: the store is passed in; time comes in as now_ms. Nothing here runs per tick. The key
# is never sent, logged or shown.
#
# Key file (KEY_FILE): "<crc32 of BODY, 8 hex> BODY\n", BODY = 64 lowercase hex (32 bytes).
# Counter file (CTR_FILE): the same shape, BODY = the last accepted counter in decimal.
from bedside.compat import const
from bedside.crc import crc32
from bedside.ticks import Age

KEY_FILE = "auth.key"
CTR_FILE = "auth.ctr"
_KEY_BYTES = const(32)
CTR_GAP = const(1024)  # after a start the counter jumps by this (accepted but not yet saved)
_CTR_LOST = const(1 << 28)  # an unreadable counter file: the counter restarts above this
_CTR_MAX = const(0x3FFFFFFF)  # counters stay small ints on the Pico
_BLOCK = const(64)

S_NONE = const(0)  # not provisioned: only `provision` (unsigned) is accepted
S_READY = const(1)  # provisioned
_S_FAULT = const(2)  # a key file exists but cannot be read: maintenance-mode reset needed


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
    if len(text) != 2 * _KEY_BYTES:
        return None
    out = bytearray(_KEY_BYTES)
    for i in range(_KEY_BYTES):
        a = _hexval(text[2 * i])
        b = _hexval(text[2 * i + 1])
        if a < 0 or b < 0:
            return None
        out[i] = a * 16 + b
    return bytes(out)


def auth_file(body):
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
            last = _CTR_LOST
        self.last = min(last + CTR_GAP, _CTR_MAX)  # may have been accepted but not saved

    def _fault(self, text):
        self.state = _S_FAULT
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
        return auth_file(("%d" % self.last).encode())

    def accept(self, ctr):
        self.last = ctr
        self.fails = 0
        self.lockouts = 0
