"""``bedside provision``: give a device its command key (docs/protocol.md "Authentication").

A new key is made on this host (32 random bytes), sent once over the link to the device, which
stores it on its flash, and kept on this host in the key directory (owner-only file,
bedside_host.keys) under the device id from its hello. An unprovisioned device takes it
unsigned; a provisioned one only when the command is signed with its current key, which this
host must hold (else: reset the key in maintenance mode, docs/protocol.md). The new key is
written here first as ``<id>.key.new`` and becomes the key once the device confirmed it, so an
answer lost on the way loses no key. The key is never printed, logged or on a command line.
"""

from __future__ import annotations

import argparse
from typing import Any

from bedside_host import keys
from bedside_host.commands._device import (
    Refused,
    add_operator,
    add_port,
    open_link,
    run_guarded,
)

HELP = "give the device its command key (made here, stored on the device and this host)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_port(p)
    add_operator(p)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        link = open_link(args)
        try:
            hello = link.hello or {}
            dev_id = hello.get("device")
            raw = hello.get("auth")
            auth: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if not isinstance(dev_id, str) or not dev_id:
                raise Refused("the device's hello names no device id (firmware too old?)")
            state = auth.get("state")
            if state == "key_unreadable":
                raise Refused(
                    "the device's key store is unreadable: reset it in maintenance mode "
                    "(docs/protocol.md, Authentication)"
                )
            if state == "provisioned" and not link.has_key:
                raise Refused(
                    f"device {dev_id} is provisioned and this host has not its key "
                    f"({keys.key_dir()}): provision from the host that has it, or reset the "
                    "key in maintenance mode"
                )
            key = keys.new_key()
            keys.save_key(dev_id, key, suffix=".new")
            link.request("provision", timeout=5.0, key=key.hex())
            keys.commit_pending(dev_id)
            link.use_key(key)
            print(f"device {dev_id} provisioned; key stored in {keys.key_dir()} (owner only)")
            return 0
        finally:
            link.close()

    return run_guarded("bedside provision", body)
