"""The alarm signal being played, in words, from the firmware's own pattern tables.

``bedside sil`` writes a ``{"dev": "signal", "auditory", "visual", "audio_off"}`` record to
its annunciator log whenever the firmware annunciator's pattern changes (its ``playing()``);
this turns one into the line the monitor shows ("HIGH burst of 10 pulses every 8.5 s, red
flashing 2 Hz"). Pulse counts, burst periods, colours and flash rates are read from
``bedside.alarms.patterns`` (IEC 60601-1-8 tables as data), never copied here.
"""

from __future__ import annotations

from typing import Any

from bedside_host import ensure_firmware_on_path

ensure_firmware_on_path()

from bedside.alarms import patterns  # noqa: E402
from bedside.alarms.conditions import PRIORITY_NAMES  # noqa: E402


def _prio(name: Any) -> int:
    return PRIORITY_NAMES.index(name) if name in PRIORITY_NAMES else 0


def _rate(period_ms: int) -> str:
    return f"{round(1000 / period_ms, 2):g} Hz"


def auditory_text(priority: str) -> str:
    """'HIGH burst of 10 pulses every 8.5 s' (or '' for none)."""
    p = _prio(priority)
    pat = patterns.AUDITORY[p] if 0 < p < len(patterns.AUDITORY) else None
    if pat is None:
        return ""
    n = len(pat[2])
    return f"{priority.upper()} burst of {n} pulses every {patterns.period(pat) / 1000:g} s"


def visual_text(priority: str) -> str:
    """'red flashing 2 Hz', 'cyan steady' (or '' for none)."""
    p = _prio(priority)
    vis = patterns.VISUAL[p] if 0 < p < len(patterns.VISUAL) else None
    if vis is None:
        return ""
    color, period, _on = vis
    name = patterns.COLOR_NAMES[color]
    return f"{name} flashing {_rate(period)}" if period else f"{name} steady"


def signal_text(rec: dict[str, Any], paused_s: float | None = None) -> str:
    """The signal line for a SIL ``signal`` record; `paused_s`: the seconds of audio pause
    left (from the heartbeat), shown while no auditory pattern plays."""
    aud = str(rec.get("auditory", "none"))
    vis = str(rec.get("visual", "none"))
    parts = []
    sound = auditory_text(aud)
    if sound:
        parts.append(sound)
    elif rec.get("audio_off"):
        mins = rec.get("reminder_min")
        parts.append("AUDIO OFF" + (f" (reminder every {mins} min)" if mins else ""))
    elif paused_s is not None and paused_s > 0 and _prio(vis):
        parts.append(f"audio paused {int(paused_s)} s")
    elif _prio(vis):
        parts.append("silent")
    light = visual_text(vis)
    if light:
        parts.append(light)
    if rec.get("audio_off"):  # the persistent AUDIO OFF indication
        if sound:
            parts.append("AUDIO OFF")
        green = patterns.COLOR_NAMES[patterns.GREEN]
        parts.append(f"{green} flashing {_rate(patterns.AUDIO_OFF_GREEN[0])}")
    if not parts:
        green = patterns.COLOR_NAMES[patterns.GREEN]
        return f"no alarm signal, {green} steady"
    return ", ".join(parts)
