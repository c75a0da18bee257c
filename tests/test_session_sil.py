"""`bedside sil` runs the same core: session commands and key sequences pass through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside.commands import AUTHENTICATED
from silharness import Sil, sil_running

pytestmark = pytest.mark.slow


@pytest.fixture
def sil(tmp_path: Path) -> Iterator[Sil]:
    yield from sil_running(tmp_path, "--set", "nibp_interval_min=0")


def _cmd(sil: Sil, obj: dict[str, Any]) -> dict[str, Any]:
    """Send a command (a state-changing one signed, as DeviceLink sends it); its reply."""
    if obj["cmd"] in AUTHENTICATED:
        sil.write("host", sil.signed(obj))
    else:
        sil.write("host", (json.dumps(obj) + "\n").encode())
    return sil.wait_for(lambda m: m["type"] == "reply" and m.get("id") == obj["id"], 15)


def test_session_commands_and_keys_through_the_sil(sil: Sil) -> None:
    """REQ-SES-35: in the SIL a `session` op is answered and reported (`session` message,
    heartbeat phase), a refusal is readable, `get_session` answers, the check_hold key word
    reaches the session's key sequence, and the record is kept in the state directory."""
    sil.feed_oximeter(1.0, 72, 97)
    r = _cmd(sil, {"cmd": "get_session", "id": 1})
    assert r["ok"] and r["session"]["phase"] == "idle"
    r = _cmd(
        sil,
        {"cmd": "session", "id": 2, "op": "open", "by": "RN", "patient": "P-1",
         "course_day": 1, "course_total": 3},
    )  # fmt: skip
    assert r["ok"] and r["session"]["phase"] == "screening"
    sil.wait_for(lambda m: m["type"] == "heartbeat" and m["phase"] == "screening", 10)
    opened = [m for m in sil.messages if m["type"] == "session" and m["event"] == "open"]
    assert opened and opened[0]["by"] == "RN" and opened[0]["session"]["id"] == 1
    r = _cmd(sil, {"cmd": "session", "id": 3, "op": "stop", "by": "RN"})
    assert not r["ok"] and "not allowed in phase screening" in r["error"]
    sil.button("check_hold")
    m = sil.wait_for(lambda m: m["type"] == "button" and m["button"] == "check_hold", 15)
    assert m["affected"] == 0  # no score entry in screening
    sil.feed_oximeter(1.5, 72, 97)
    assert (sil.state / "session.json").exists()
