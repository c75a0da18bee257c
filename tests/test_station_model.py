"""The central station's model (host_tools/bedside_host/station/model.py), fed device messages
as the protocol defines them (docs/protocol.md), with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from bedside_host.station.model import (
    AUDIO_PAUSE_S,
    STALE_AFTER_S,
    StationModel,
    tile_colour,
    value_text,
)

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def _model() -> tuple[StationModel, Clock]:
    clock = Clock()
    m = StationModel(clock=clock)
    for i in (1, 2, 3):
        m.add_chair(f"c{i}", f"Chair {i}", device=f"/dev/ttyACM{i}")
        m.on_link_state(f"c{i}", "live")
    return m, clock


def msg(mtype: str, seq: int = 1, **fields: Any) -> dict[str, Any]:
    return {"v": 2, "seq": seq, "boot": 1, "type": mtype, "t_ms": seq * 1000, **fields}


def row(
    cond: str,
    prio: str,
    state: str = "active",
    kind: str = "physiological",
    value: Any = None,
    limit: Any = None,
    age_s: float = 0,
) -> dict[str, Any]:
    return {
        "condition": cond,
        "priority": prio,
        "state": state,
        "kind": kind,
        "value": value,
        "limit": limit,
        "age_s": age_s,
    }


def heartbeat(seq: int, alarms: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "priority": alarms[0]["priority"] if alarms else "none",
        "alarms": alarms,
        "audio_paused_s": 0,
        "audio_off": False,
        "phase": "MONITOR",
    }
    fields.update(kw)
    return msg("heartbeat", seq, **fields)


def test_tile_fields_from_device_messages() -> None:
    """REQ-STA-01: a tile shows SpO2 and pulse with the time they were received, the last NIBP
    with the time it was taken, the session phase with its start, the time of the infusion stop
    and the next check due (absolute station times: the page computes the ages); '—' (None)
    where the device reports nothing."""
    m, _clock = _model()
    t = m.tile("c1")
    assert (t["spo2"], t["pr"], t["nibp"], t["session"], t["phase"]) == (None,) * 5
    m.on_message("c1", msg("oxi", 5, spo2=96, pr=71, spo2_age_s=0, flags=[], quality="good"), T0)
    m.on_message("c1", msg("nibp", 6, sys=122, dia=78, map=93, pr=70, age_s=4), T0 + 0.5)
    state = {
        "id": 7,
        "patient": "P-0042",
        "course_day": 2,
        "course_total": 10,
        "phase": "recovery",
        "phase_s": 300,
        "infusion_s": 2700,
        "recovery_s": 300,
        "check_due_s": -20,
        "dose": {"rate": 5, "units": "ug/kg/h"},
        "last_check": {"score": 4, "ago_s": 600},
    }
    m.on_message("c1", msg("session", 7, event="check", by="RN Lee", session=state), T0 + 1)
    t = m.tile("c1")
    assert (t["spo2"], t["pr"], t["oxi_rx"]) == (96, 71, T0)
    assert t["nibp"] == {
        "sys": 122,
        "dia": 78,
        "map": 93,
        "pr": 70,
        "taken_at": pytest.approx(T0 + 0.5 - 4),
    }
    s = t["session"]
    assert s["phase"] == "recovery" and t["phase"] == "recovery"
    assert s["phase_since"] == pytest.approx(T0 + 1 - 300)
    assert s["stopped_at"] == pytest.approx(T0 + 1 - 300)
    assert s["check_due_at"] == pytest.approx(T0 + 1 - 20)  # overdue by 20 s
    assert s["dose"] == {"rate": 5, "units": "ug/kg/h"} and s["last_score"] == 4
    # a sensor-off second: SpO2 and pulse are null, the last valid SpO2's age is kept
    m.on_message(
        "c1", msg("oxi", 8, spo2=None, pr=None, spo2_age_s=3, flags=["sensor_off"]), T0 + 3
    )
    t = m.tile("c1")
    assert (t["spo2"], t["pr"]) == (None, None)
    assert t["spo2_valid_at"] == pytest.approx(T0)
    assert t["oxi_flags"] == ["sensor_off"]
    # the heartbeat's phase (before the session work: "MONITOR") shows in lower case
    m.on_message("c2", heartbeat(2, []), T0)
    assert m.tile("c2")["phase"] == "monitor"


@pytest.mark.parametrize(
    ("alarms", "colour"),
    [
        ([], "normal"),
        ([row("SPO2_DESAT", "high")], "high"),
        ([row("NIBP_CUFF_FAULT", "high", kind="technical")], "high"),
        ([row("PR_HIGH", "medium")], "medium"),
        ([row("OXI_SENSOR_OFF", "medium", kind="technical")], "tech-medium"),
        ([row("OXI_SENSOR_OFF", "medium", kind="technical"), row("PR_LOW", "medium")], "medium"),
        ([row("BP_RISE", "low")], "low"),
        ([row("STORAGE_FAULT", "low", kind="technical")], "tech-low"),
        ([row("STORAGE_FAULT", "low", kind="technical"), row("PR_HIGH", "medium")], "medium"),
        ([row("SPO2_LOW", "medium", state="audio_paused")], "medium"),
        ([row("SPO2_DESAT", "high", state="latched")], "high"),
    ],
)
def test_tile_colour_follows_highest_priority(alarms: list[dict[str, Any]], colour: str) -> None:
    """REQ-STA-02: the tile is coloured by the highest priority with a signal (IEC 60601-1-8:
    high red, medium and low yellow) and technical alarms below high get their own colour
    (cyan); audio-paused and latched alarms keep their colour."""
    m, _ = _model()
    m.on_message("c1", heartbeat(3, alarms), T0)
    assert m.tile("c1")["colour"] == colour
    assert tile_colour(alarms, offline=False) == colour
    assert tile_colour(alarms, offline=True) == "offline"


def test_alarm_list_sorted_by_priority_then_onset() -> None:
    """REQ-STA-03: the alarm list holds every chair's alarms, highest priority first, then the
    oldest onset, with chair, condition text, value against limit ('SpO2 86<90', 'PR 149>130')
    and state."""
    m, clock = _model()
    m.on_message(
        "c1", heartbeat(3, [row("PR_HIGH", "medium", value=149, limit=130, age_s=50)]), T0
    )
    m.on_message(
        "c2",
        heartbeat(3, [row("SPO2_LOW", "medium", "audio_paused", value=86, limit=90, age_s=80)]),
        T0,
    )
    m.on_message("c3", heartbeat(3, [row("OXI_SIGNAL_POOR", "low", kind="technical")]), T0)
    clock.t += 5
    m.on_message(
        "c3",
        msg(
            "alarm",
            4,
            condition="SPO2_DESAT",
            priority="high",
            state="active",
            event="raise",
            kind="physiological",
            value=83,
            limit=85,
        ),
        clock.t,
    )
    lst = m.alarm_list()
    assert [(a["chair"], a["condition"]) for a in lst] == [
        ("c3", "SPO2_DESAT"),
        ("c2", "SPO2_LOW"),  # onset 80 s ago: older than c1's PR_HIGH
        ("c1", "PR_HIGH"),
        ("c3", "OXI_SIGNAL_POOR"),
    ]
    assert [a["value_text"] for a in lst] == ["SpO2 83<85", "SpO2 86<90", "PR 149>130", ""]
    assert [a["state"] for a in lst] == ["active", "audio_paused", "active", "active"]
    assert lst[0]["text"] == "SpO2 DESAT" and lst[0]["label"] == "Chair 3"
    assert lst[1]["onset"] == pytest.approx(T0 - 80)
    # the onset stays put while the alarm lasts (a later heartbeat does not move it)
    m.on_message(
        "c2", heartbeat(5, [row("SPO2_LOW", "medium", value=85, limit=90, age_s=86)]), T0 + 7
    )
    assert m.alarm_list()[1]["onset"] == pytest.approx(T0 - 80)
    # an end event removes it at once
    m.on_message(
        "c3",
        msg(
            "alarm",
            6,
            condition="SPO2_DESAT",
            priority="high",
            state="inactive",
            event="end",
            kind="physiological",
            value=None,
            limit=85,
        ),
        T0 + 8,
    )
    assert [a["condition"] for a in m.alarm_list()][:1] == ["SPO2_LOW"]
    assert value_text("NIBP_SYS_HIGH", 182, None) == "SYS 182"
    assert value_text("OXI_SENSOR_OFF", None, None) == ""


def test_stale_and_offline_never_look_normal() -> None:
    """REQ-STA-04: a chair whose link is not live, or that sent nothing for STALE_AFTER_S, is
    'offline' (never its last colour or normal) and puts a NO DATA technical alarm in the list;
    its last known alarms stay listed, marked stale; data coming back ends it."""
    m, clock = _model()
    m.on_message("c1", heartbeat(3, [row("PR_HIGH", "medium", value=140, limit=130)]), T0)
    m.on_message("c2", heartbeat(3, []), T0)
    clock.t = T0 + STALE_AFTER_S - 0.5
    m.tick()
    assert m.tile("c1")["colour"] == "medium" and not m.tile("c2")["offline"]
    clock.t = T0 + STALE_AFTER_S + 0.5
    m.tick()
    for c in ("c1", "c2"):
        assert m.tile(c)["offline"] and m.tile(c)["colour"] == "offline"
    nodata = [a for a in m.alarm_list() if a["condition"] == "NO_DATA"]
    assert {a["chair"] for a in nodata} == {"c1", "c2", "c3"}  # c3 never reported
    assert all(a["kind"] == "technical" and a["stale"] for a in nodata)
    pr = next(a for a in m.alarm_list() if a["condition"] == "PR_HIGH")
    assert pr["stale"]
    m.on_message("c2", heartbeat(9, []), clock.t)
    assert not m.tile("c2")["offline"] and m.tile("c2")["colour"] == "normal"
    # a link that is not live is offline at once, whatever the last message's age
    m.on_link_state("c2", "disconnected", "the device went away")
    t = m.tile("c2")
    assert t["offline"] and t["link"] == "disconnected"
    nd = next(a for a in m.alarm_list() if a["chair"] == "c2")
    assert nd["condition"] == "NO_DATA" and "went away" in nd["value_text"]
    assert m.sounding_priority() == "medium"  # the station sounds for a chair it cannot see


def test_station_audio_pause_and_off() -> None:
    """REQ-STA-05: the station's own audio follows the highest alarm sounding at a bedside
    (not those paused there); its pause lasts AUDIO_PAUSE_S (120 s) and ends by itself;
    switching it off needs a named user and lasts until switched on."""
    m, clock = _model()
    for c in ("c1", "c2", "c3"):
        m.on_message(c, heartbeat(2, []), T0)
    assert m.audio_state()["play"] == "none"
    m.on_message("c1", heartbeat(3, [row("SPO2_LOW", "medium", "audio_paused")]), T0)
    assert m.audio_state()["play"] == "none"
    m.on_message("c2", heartbeat(3, [row("SPO2_DESAT", "high")]), T0)
    assert m.audio_state() | {} == m.audio_state()
    assert (m.audio_state()["mode"], m.audio_state()["play"]) == ("on", "high")
    m.pause_audio("RN Lee")
    a = m.audio_state()
    assert (a["mode"], a["play"], a["paused_until"]) == ("paused", "none", T0 + AUDIO_PAUSE_S)
    clock.t = T0 + AUDIO_PAUSE_S + 0.1
    for c in ("c1", "c2", "c3"):
        m.on_message(c, heartbeat(4, [row("SPO2_DESAT", "high")] if c == "c2" else []), clock.t)
    assert (m.audio_state()["mode"], m.audio_state()["play"]) == ("on", "high")
    for bad in ("", "   ", "x" * 33, "a\nb"):
        with pytest.raises(ValueError):
            m.audio_off(bad)
    assert m.audio_state()["mode"] == "on"
    m.audio_off("Charge RN Kim", "fire drill")
    a = m.audio_state()
    assert (a["mode"], a["play"], a["off_by"], a["off_reason"]) == (
        "off",
        "none",
        "Charge RN Kim",
        "fire drill",
    )
    with pytest.raises(ValueError):
        m.audio_on("")
    m.audio_on("Charge RN Kim")
    assert m.audio_state()["mode"] == "on"


def test_deltas_coalesce_per_chair() -> None:
    """REQ-STA-06: changes are collected per chair between frames: many messages of one chair
    make one tile in the next frame; unchanged chairs are not sent; the alarm list and the audio
    state go out only when they changed; a restart (new boot) clears the chair's alarms."""
    m, _clock = _model()
    for c in ("c1", "c2", "c3"):
        m.on_message(c, heartbeat(2, []), T0)  # first data: no longer stale
    m.take_dirty()
    for seq in range(10, 20):
        m.on_message("c1", msg("oxi", seq, spo2=97, pr=70 + seq), T0)
    chairs, alarms, audio = m.take_dirty()
    assert chairs == {"c1"} and not alarms and not audio
    f = m.frame(chairs, alarms=alarms, audio=audio)
    assert [t["id"] for t in f["tiles"]] == ["c1"] and f["tiles"][0]["pr"] == 89
    assert f["tiles"][0]["seq"] == 19 and "alarms" not in f and "audio" not in f
    m.on_message("c2", heartbeat(5, [row("PR_HIGH", "medium")]), T0)
    chairs, alarms, audio = m.take_dirty()
    assert chairs == {"c2"} and alarms and audio
    m.on_message("c2", heartbeat(6, [row("PR_HIGH", "medium")]), T0 + 1)
    assert m.take_dirty() == ({"c2"}, False, False)  # same alarms: the list is not resent
    m.on_message("c2", msg("hello", 1, fw="0.1.0") | {"boot": 2}, T0 + 2)
    assert m.tile("c2")["alarms"] == [] and m.tile("c2")["boot"] == 2
    # replayed lines are history: they change nothing live
    m.take_dirty()
    m.on_message("c1", msg("oxi", 5, spo2=80, pr=50) | {"replayed": True}, T0 + 3)
    assert m.take_dirty()[0] == set() and m.tile("c1")["spo2"] == 97
