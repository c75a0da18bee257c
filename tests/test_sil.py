"""The software-in-the-loop contract of `bedside sil` (issue: foundation), end to end over ptys.

REQ-SIL-01 one JSON line with the device-side paths; REQ-SIL-02 annunciator log lines;
REQ-SIL-03 stdin buttons; REQ-SIL-04 flash files in --state-dir; REQ-SIL-05 clean stop.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from bedside.hostlink import PROTOCOL_VERSION
from bedside.settings import decode
from silharness import Sil, sil_running

pytestmark = pytest.mark.slow


@pytest.fixture
def sil(tmp_path: Path) -> Iterator[Sil]:
    # a short SpO2 delay keeps the test quick; the clock starts 3 s before the 2**30 wrap
    yield from sil_running(
        tmp_path, "--set", "spo2_low_delay_s=2", "--clock-start-ms", str((1 << 30) - 3000)
    )


def test_ports_line_and_desat_alarm(sil: Sil) -> None:
    """REQ-SIL-01, REQ-SIL-02: ports line; a desaturation sounds MEDIUM and flashes yellow."""
    assert set(sil.ports) == {"oximeter", "nibp", "host"}
    assert all(os.path.exists(p) for p in sil.ports.values())
    sil.feed_oximeter(1.5, 72, 97)
    hello = [m for m in sil.messages if m["type"] == "hello"]
    assert hello and hello[0]["protocol"] == PROTOCOL_VERSION
    m = sil.wait_for(
        lambda m: m["type"] == "alarm" and m["condition"] == "SPO2_LOW", 8, feed=(72, 86)
    )
    assert m["priority"] == "medium" and m["state"] == "active" and m["value"] == 86
    sil.feed_oximeter(1.5, 72, 86)
    ann = sil.annunciator()
    assert all(set(a) >= {"t_ms", "dev", "on"} and isinstance(a["t_ms"], float) for a in ann)
    boot = [a for a in ann if a.get("selftest")]  # the power-on self-test comes first, marked
    assert boot == ann[: len(boot)]
    assert [a.get("color", "tone") for a in boot if a["on"]] == [
        "red", "yellow", "cyan", "green", "tone"
    ]
    ann = [a for a in ann if not a.get("selftest")]
    buzz = [a for a in ann if a["dev"] == "buzzer" and a["on"]]
    assert buzz and buzz[0]["hz"] == 600 and buzz[0]["duty"] < 16384  # the alarm's rise
    yellow = [a["on"] for a in ann if a["dev"] == "led" and a["color"] == "yellow"]
    assert True in yellow  # MEDIUM: yellow (off until the alarm, then flashing)
    assert not [a for a in ann if a["dev"] == "led" and a["color"] == "red" and a["on"]]
    oxi = [m for m in sil.messages if m["type"] == "oxi"]
    assert oxi[-1]["spo2"] == 86 and oxi[-1]["pr"] == 72


def test_buttons_from_stdin(sil: Sil) -> None:
    """REQ-SIL-03: ack on stdin pauses the audio; an unknown word is reported, not fatal."""
    sil.wait_for(lambda m: m["type"] == "alarm" and m["condition"] == "SPO2_LOW", 8, feed=(72, 86))
    sil.button("ack")
    m = sil.wait_for(lambda m: m["type"] == "alarm" and m["event"] == "ack", 3, feed=(72, 86))
    assert m["state"] == "audio_paused" and m["pause_s"] == 120
    sil.button("bogus")
    sil.feed_oximeter(1.0, 72, 86)
    code, out = sil.stop()
    assert code == 0
    assert "unknown button 'bogus'" in out
    last = [a for a in sil.annunciator() if a["dev"] == "buzzer"][-1]
    assert last["on"] is False


def test_state_dir_keeps_settings(sil: Sil, tmp_path: Path) -> None:
    """REQ-SIL-04: a setting changed over the host link is stored in --state-dir."""
    sil.write("host", sil.signed({"cmd": "set", "name": "spo2_low", "value": 88, "id": 1}))
    m = sil.wait_for(lambda m: m["type"] == "reply" and m.get("id") == 1, 3)
    assert m["ok"] is True
    _schema, stored = decode((tmp_path / "state" / "settings.json").read_bytes())
    assert stored["spo2_low"] == 88


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_clean_stop(tmp_path: Path, sig: int) -> None:
    """REQ-SIL-05: SIGINT/SIGTERM stop it cleanly; the next start is a normal power-on."""
    s = Sil(tmp_path)
    try:
        s.feed_oximeter(0.5, 72, 97)
        code, out = s.stop(sig)
        assert code == 0 and "sil: stopped" in out
    finally:
        s.kill()
    s2 = Sil(tmp_path)
    try:
        hello = s2.wait_for(lambda m: m["type"] == "hello", 3)
        assert hello["reset_cause"] == "power_on"
    finally:
        s2.kill()


def test_unclean_stop_raises_device_restarted(tmp_path: Path) -> None:
    """REQ-ALM-05, REQ-SIL-05: after a kill (power cut) the next start raises
    DEVICE_RESTARTED."""
    s = Sil(tmp_path)
    s.feed_oximeter(0.3, 72, 97)
    s.kill()
    s2 = Sil(tmp_path)
    try:
        m = s2.wait_for(lambda m: m["type"] == "alarm" and m["condition"] == "DEVICE_RESTARTED", 3)
        assert m["state"] == "active"
        assert s2.messages[0]["reset_cause"] == "unclean"
    finally:
        s2.kill()
