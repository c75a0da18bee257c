# authkit.py: sign host commands in tests as DeviceLink does on the host (docs/protocol.md
# "Authentication"): the line's JSON without its closing brace is the signed prefix; the line
# ends with ,"mac":"<HMAC-SHA256 hex>"}. Valid on MicroPython and CPython.
import binascii
import hashlib
import json

from bedside.auth import KEY_FILE, auth_file
from bedside.commands import AUTHENTICATED

TEST_KEY = bytes(range(32))  # the test devices' key (never a real device's)
_CTR = [0]


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) for a key of at most 64 bytes: what the host signs with
    (CPython's hmac module there; this one runs on MicroPython too)."""
    k = bytearray(64)
    k[: len(key)] = key
    h = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    h.update(msg)
    inner = h.digest()
    h = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    h.update(inner)
    return h.digest()


def provision(dev, key=TEST_KEY):
    """Install the test key on a device (as `bedside provision` would); False if its store
    refuses the write (a failing-flash test)."""
    a = dev.auth
    if a.store is not None:
        try:
            _store_key(a.store, key)
        except OSError:
            return False
    a._use(key)
    return True


def _store_key(store, key):
    """The key file as bedside.authcmd.install writes it (without importing that module:
    the boot heap of a test is the boot heap of a device)."""
    store.write(KEY_FILE, auth_file(binascii.hexlify(key)))


def provision_store(store, key=TEST_KEY):
    """Write the test key into a flash store before a device starts on it."""
    _store_key(store, key)


def signed(prefix_obj, key=TEST_KEY):
    """The line (bytes, with LF) of command object prefix_obj, signed with key."""
    prefix = json.dumps(prefix_obj)[:-1].encode()
    mac = binascii.hexlify(hmac_sha256(key, prefix))
    return prefix + b',"mac":"' + mac + b'"}\n'


def line(dev, obj, key=TEST_KEY, by="tester"):
    """The line for command obj to device dev: state-changing ones get `by` (unless given),
    the next counter and a MAC (by=None: no `by` added); read-only ones go as they are."""
    if obj.get("cmd") not in AUTHENTICATED:
        return (json.dumps(obj) + "\n").encode()
    obj = dict(obj)
    if "by" not in obj and by is not None:
        obj["by"] = by
    _CTR[0] = max(_CTR[0], dev.auth.last) + 1
    obj["ctr"] = _CTR[0]
    return signed(obj, key)
