"""The monitor's SIL annunciator line names the alarm signal being played (pattern, colour,
AUDIO OFF, audio paused with its countdown), from the firmware annunciator's own state and
pattern tables, not the buzzer's instantaneous on/off."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from bedside_host.commands.monitor import View, render
from bedside_host.link import Received
from bedside_host.signal_text import signal_text
from rich.console import Console
from silharness import Sil

pytestmark = pytest.mark.slow


def _screen(view: View) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(render(view, time.time()))
    return console.export_text()


def _view(sil: Sil) -> View:
    view = View()
    for m in sil.messages:
        line = json.dumps(m)
        view.apply(Received("/dev/pts/x", line, m, time.time(), None, False))
    for rec in sil.annunciator():
        view.apply_annunciator(rec)
    return view


def test_signal_text_from_the_pattern_tables() -> None:
    """REQ-HOST-37: the words come from bedside.alarms.patterns (IEC 60601-1-8 Tables 2-4):
    pulses per burst, burst period, LED colour and flash rate; AUDIO OFF and audio paused."""
    high: dict[str, Any] = {"auditory": "high", "visual": "high", "audio_off": False}
    assert signal_text(high) == "HIGH burst of 10 pulses every 8.5 s, red flashing 2 Hz"
    med = {"auditory": "medium", "visual": "medium"}
    assert signal_text(med) == "MEDIUM burst of 3 pulses every 7 s, yellow flashing 0.62 Hz"
    assert signal_text({"auditory": "low", "visual": "low"}).endswith(", cyan steady")
    paused = {"auditory": "none", "visual": "high"}
    assert signal_text(paused, 87.6) == "audio paused 87 s, red flashing 2 Hz"
    off = {"auditory": "none", "visual": "low", "audio_off": True, "reminder_min": 3}
    text = signal_text(off)
    assert text.startswith("AUDIO OFF (reminder every 3 min), cyan steady")
    assert text.endswith("green flashing 0.5 Hz")
    assert signal_text({"auditory": "none", "visual": "none"}) == "no alarm signal, green steady"


def test_monitor_shows_the_signal_played_by_the_sil(tmp_path: Path) -> None:
    """REQ-HOST-37: against the real SIL: a deep desaturation shows "HIGH burst ..., red
    flashing" (one signal record for the whole burst, while the buzzer toggles many times);
    after ACK it shows the audio pause with its countdown; never the sounder's ON/off."""
    sil = Sil(tmp_path)
    try:
        sil.feed_oximeter(1.0, 72, 97)
        sil.wait_for(
            lambda m: m["type"] == "alarm" and m["condition"] == "SPO2_DESAT", 10, feed=(72, 80)
        )
        sil.feed_oximeter(2.0, 72, 80)
        ann = sil.annunciator()
        sig = [a for a in ann if a["dev"] == "signal" and not a.get("selftest")]
        buzz = [a for a in ann if a["dev"] == "buzzer" and not a.get("selftest")]
        assert sig[-1]["auditory"] == "high" and sig[-1]["visual"] == "high"
        assert len(buzz) > 4 * len([s for s in sig if s["auditory"] == "high"])
        screen = _screen(_view(sil))
        assert "SIL signal: HIGH burst of 10 pulses every 8.5 s, red flashing 2 Hz" in screen
        assert "sounder" not in screen
        sil.button("ack")
        sil.wait_for(lambda m: m["type"] == "alarm" and m["event"] == "ack", 10, feed=(72, 80))
        sil.wait_for(lambda m: m["type"] == "heartbeat" and m.get("audio_paused_s"), 5)
        screen = _screen(_view(sil))
        assert "SIL signal: audio paused" in screen and "red flashing 2 Hz" in screen
    finally:
        sil.kill()
