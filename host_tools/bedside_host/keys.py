"""Per-device command keys on the host (docs/protocol.md "Authentication").

One file per device, ``$XDG_CONFIG_HOME/bedside/keys/<device id>.key`` (default
``~/.config/bedside/keys/``): 64 lowercase hex characters, the directory 0700 and the file 0600
(owner only), written atomically. The key is never printed, logged, put on a command line or
in the records database. ``bedside provision`` writes it; ``bedside sil`` writes the key of its
simulated device; ``DeviceLink`` reads it by the device id in the device's hello and signs
every state-changing command with it (the only place that signs).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from bedside_host.config import config_path

KEY_BYTES = 32
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class KeyFileError(ValueError):
    """A key file that exists but is not a key, or an unusable device id."""


def key_dir() -> Path:
    return config_path().parent / "keys"


def _path(device_id: str) -> Path:
    if not _ID.fullmatch(device_id) or device_id.startswith("."):
        raise KeyFileError(f"device id {device_id[:64]!r} cannot name a key file")
    return key_dir() / f"{device_id}.key"


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def load_key(device_id: str) -> bytes | None:
    """The device's key, or None if this host has none for it."""
    try:
        text = _path(device_id).read_text().strip()
    except FileNotFoundError:
        return None
    except KeyFileError:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise KeyFileError(f"key file for {device_id} is not 64 hex characters")
    return bytes.fromhex(text)


def save_key(device_id: str, key: bytes, suffix: str = "") -> Path:
    """Write the key (owner-only, atomic); returns the file's path."""
    if len(key) != KEY_BYTES:
        raise KeyFileError("a key is 32 bytes")
    path = _path(device_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    dest = path.with_name(path.name + suffix)
    tmp = dest.with_name(dest.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    return dest


def commit_pending(device_id: str) -> None:
    """A key saved with suffix ".new" becomes the device's key."""
    path = _path(device_id)
    os.replace(path.with_name(path.name + ".new"), path)


def forget(device_id: str) -> None:
    path = _path(device_id)
    path.unlink(missing_ok=True)
