"""Capture and replay of operator actions (issue 10): `bedside sil --capture` keeps the host's
command bytes and the key presses, so `bedside replay` presses the same keys and sends the
same commands in virtual time, and `--compare` shows where two builds treat them differently.

One live SIL run is captured once (module fixture): a `set` command from the host, a
desaturation, the ACK key while the alarm sounds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from bedside_host.sil.capture import read_capture
from silharness import BEDSIDE, ROOT, Sil

pytestmark = pytest.mark.slow
SET = {"cmd": "set", "id": 7, "name": "spo2_low", "value": 88, "by": "alice"}


def bedside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BEDSIDE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "host_tools")),
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("operator")
    cap = tmp / "run.capture"
    sil = Sil(tmp, "--capture", str(cap))
    try:
        sil.feed_oximeter(1.0, 72, 97)
        sil.write("host", sil.signed(SET))  # signed as DeviceLink signs it (docs/protocol.md)
        sil.wait_for(lambda m: m["type"] == "setting", 20, feed=(72, 97))
        sil.wait_for(
            lambda m: m["type"] == "alarm" and m["condition"] == "SPO2_DESAT", 20, feed=(72, 80)
        )
        sil.feed_oximeter(0.5, 72, 80)
        sil.button("ack")
        sil.wait_for(lambda m: m["type"] == "alarm" and m["event"] == "ack", 20, feed=(72, 80))
        sil.feed_oximeter(1.0, 72, 80)
        time.sleep(0.2)
        sil.host_messages()
        code, _out = sil.stop()
        assert code == 0
    finally:
        sil.kill()
    return cap, sil.messages


def events(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["condition"], r["event"], r["state"]) for r in rows if r.get("kind") == "alarm"]


def test_capture_keeps_host_commands_and_key_presses(
    live: tuple[Path, list[dict[str, Any]]],
) -> None:
    """REQ-HOST-30: a SIL capture keeps the host port's bytes as the device read them and
    every change of the key levels, with the word that started the press."""
    cap_path, _ = live
    cap = read_capture(cap_path)
    assert cap.header["source"] == "sil" and cap.header["version"] == 2
    host = b"".join(d for _t, p, d in cap.records if p == "host")
    assert b'"by":"alice","cmd":"set","id":7,"name":"spo2_low","value":88,"ctr":' in host
    presses = [(lv, w) for _t, lv, w in cap.keys]
    assert (1, "ack") in presses and (0, None) in presses  # K_ACK held, then released
    t_press = next(t for t, lv, w in cap.keys if w == "ack")
    t_release = next(t for t, lv, _w in cap.keys if t > t_press and lv == 0)
    assert 100 <= t_release - t_press <= 1000  # a short press (150 ms held)


def test_replay_reproduces_operator_actions(
    live: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """REQ-HOST-31: `bedside replay` sends the captured commands and presses the captured keys
    at their times: the timeline names them (operator rows) and the device's answers (the
    setting change, the ACK of the alarm) are the live run's; without the key records the
    ACK is gone, so the keys are what made it."""
    cap_path, messages = live
    r = bedside("replay", str(cap_path), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["timeline"]
    texts = [r.get("text") for r in rows]
    assert "key ack" in texts
    assert "button ack (1 affected)" in texts  # the device handled the key as live
    assert "set name=spo2_low value=88 by alice" in texts
    assert "setting spo2_low 90 -> 88 by alice" in texts
    live_alarms = [m | {"kind": "alarm"} for m in messages if m["type"] == "alarm"]
    assert events(rows) == events(live_alarms)
    assert ("SPO2_DESAT", "ack", "audio_paused") in events(rows)
    t_key = next(r["t_ms"] for r in rows if r.get("text") == "key ack")
    t_ack = next(r["t_ms"] for r in rows if r.get("event") == "ack")
    assert 0 <= t_ack - t_key <= 500
    text = bedside("replay", str(cap_path))
    assert "operator: key ack" in text.stdout
    assert "operator: set name=spo2_low value=88 by alice" in text.stdout
    # the same capture without its key records: nothing is acknowledged
    nokeys = tmp_path / "nokeys.capture"
    lines = cap_path.read_text().splitlines()
    nokeys.write_text("\n".join(x for x in lines if '"keys"' not in x) + "\n")
    r2 = bedside("replay", str(nokeys), "--json")
    assert r2.returncode == 0, r2.stderr
    rows2 = json.loads(r2.stdout)["timeline"]
    assert not [r for r in rows2 if r.get("event") == "ack"]
    assert "key ack" not in [r.get("text") for r in rows2]


def test_compare_shows_a_build_that_refuses_the_operators_set(
    live: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """REQ-HOST-32: `--compare` over a capture with operator actions: a build whose SpO2 low
    limit range starts at 89 refuses the captured `set spo2_low 88`; the diff shows the
    setting change only in A and the refusal only in B (exit 1)."""
    cap_path, _ = live
    changed = tmp_path / "changed" / "firmware"
    shutil.copytree(ROOT / "firmware", changed, ignore=shutil.ignore_patterns("__pycache__"))
    settings = changed / "bedside" / "settings.py"
    text = settings.read_text()
    new = text.replace('"spo2_low": (90, 80, 98,', '"spo2_low": (90, 89, 98,', 1)
    assert new != text
    settings.write_text(new)
    r = bedside("replay", str(cap_path), "--compare", str(changed))
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert [x for x in out if x.startswith("-") and "setting spo2_low 90 -> 88" in x]
    assert [x for x in out if x.startswith("+") and "refused set" in x]
    assert not [x for x in out if x[:1] in "+-" and "key ack" in x]  # same keys in both
