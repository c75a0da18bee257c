# authkit.py: sign host commands in tests as DeviceLink does on the host (docs/protocol.md
# "Authentication"): the line's JSON without its closing brace is the signed prefix; the line
# ends with ,"mac":"<HMAC-SHA256 hex>"}. Valid on MicroPython and CPython.
import binascii
import json

from bedside.auth import Auth, hmac_sha256
from bedside.commands import AUTHENTICATED

TEST_KEY = bytes(range(32))  # the test devices' key (never a real device's)
_CTR = [0]


def provision(dev, key=TEST_KEY):
    """Install the test key on a device (as `bedside provision` would); False if its store
    refuses the write (a failing-flash test)."""
    try:
        dev.auth.install(key)
    except OSError:
        return False
    return True


def provision_store(store, key=TEST_KEY):
    """Write the test key into a flash store before a device starts on it."""
    Auth(store).install(key)


def signed(prefix_obj, key=TEST_KEY):
    """The line (bytes, with LF) of command object prefix_obj, signed with key."""
    prefix = json.dumps(prefix_obj)[:-1].encode()
    mac = binascii.hexlify(hmac_sha256(key, prefix))
    return prefix + b',"mac":"' + mac + b'"}\n'


def line(dev, obj, key=TEST_KEY, by="tester"):
    """The line for command obj to device dev: state-changing ones get `by` (unless given),
    the next counter and a MAC; read-only ones go as they are."""
    if obj.get("cmd") not in AUTHENTICATED:
        return (json.dumps(obj) + "\n").encode()
    obj = dict(obj)
    if "by" not in obj:
        obj["by"] = by
    _CTR[0] = max(_CTR[0], dev.auth.last) + 1
    obj["ctr"] = _CTR[0]
    return signed(obj, key)
