"""End to end with real processes: the SIL device -> `bedside gateway` -> Mosquitto ->
`bedside record --mqtt`, `bedside hl7 --mqtt` (to an in-process MLLP listener) and the
station feed; the gateway is killed and restarted (REQ-MQ, REQ-HL7)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bedside_host.mqtt.subscriber import start_feed
from bedside_host.store import Store
from mllplistener import MllpListener
from mqttbroker import Broker
from silharness import Oximeter, Sil, start_bedside, stop_process

ROOT = Path(__file__).resolve().parents[1]
CHAIR = "clinic1/c7"


def _until(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_gateway_recorder_hl7_station_end_to_end(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-01, REQ-MQ-04, REQ-MQ-06, REQ-HL7-06: a SIL device behind `bedside gateway`:
    the recorder subscriber's database holds the chair's alarm events exactly as the
    gateway's own record does; `bedside hl7 --mqtt` delivers valid PCD-01 and PCD-04 to the
    MLLP listener; the station feed shows the chair online, offline after the gateway
    process is killed (the broker publishes its last will) and online again after it is
    restarted; a device gone silent behind a running gateway shows its link stale."""
    (tmp_path / "sil").mkdir()
    sil = Sil(tmp_path / "sil")
    oxi = Oximeter(sil)
    oxi.start()
    listener = MllpListener()
    got: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def on_message(chair_id: str, msg: dict[str, Any], rx: float) -> None:
        with lock:
            got.append((chair_id, msg))

    def online() -> list[bool]:
        with lock:
            seen = [m["online"] for c, m in got if c == CHAIR and m["type"] == "gateway"]
        return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]

    def alarms() -> list[dict[str, Any]]:
        with lock:
            return [m for c, m in got if c == CHAIR and m.get("type") == "alarm"]

    feed = start_feed(broker.url, on_message, site="clinic1")
    gw_args = [
        "gateway",
        "--port",
        sil.ports["host"],
        "--mqtt",
        broker.url,
        "--site",
        "clinic1",
        "--chair",
        "c7",
        "--db",
        str(tmp_path / "gw.db"),
        "--keepalive",
        "2",
        "--quiet",
    ]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["rec"] = start_bedside(
            "record",
            "--mqtt",
            broker.url,
            "--site",
            "clinic1",
            "--db",
            str(tmp_path / "central.db"),
            "--quiet",
            log=tmp_path / "rec.log",
        )
        procs["hl7"] = start_bedside(
            "hl7",
            "--mqtt",
            broker.url,
            "--site",
            "clinic1",
            "--hl7",
            listener.url,
            "--period",
            "2",
            "--dead-letter",
            str(tmp_path / "dead.jsonl"),
            "--quiet",
            log=tmp_path / "hl7.log",
        )
        assert feed.wait_connected(10)
        time.sleep(1.5)  # the subscribers are up before the gateway starts
        procs["gw"] = start_bedside(*gw_args, log=tmp_path / "gw.log")
        assert _until(lambda: online()[:1] == [True], 30), (tmp_path / "gw.log").read_text()
        oxi.spo2 = 80  # deep desaturation: SPO2_DESAT at once
        assert _until(lambda: any(a["event"] == "raise" for a in alarms()), 30)
        oxi.spo2 = 97
        assert _until(lambda: any(a["event"] == "end" for a in alarms()), 30)
        assert _until(lambda: len(listener.texts("ORU^R01")) >= 1, 20)
        stop_process(procs["gw"], signal.SIGKILL)  # the chair's PC dies: the broker sends the will
        assert _until(lambda: online()[:2] == [True, False], 15), online()
        procs["gw"] = start_bedside(*gw_args, log=tmp_path / "gw.log")
        assert _until(lambda: online()[:3] == [True, False, True], 30), online()
        time.sleep(2.0)
        oxi.stopping.set()
        sil.kill()  # the device itself goes silent: the gateway stays, its link does not

        def link_lost() -> bool:
            with lock:
                gws = [m for c, m in got if c == CHAIR and m["type"] == "gateway"]
            return gws[-1]["online"] and gws[-1]["link"] in ("stale", "disconnected")

        assert _until(link_lost, 20)
        assert stop_process(procs["gw"]) == 0
        assert _until(lambda: online()[:4] == [True, False, True, False], 10), online()
        time.sleep(1.0)
        assert stop_process(procs["rec"]) == 0
        assert stop_process(procs["hl7"]) == 0
    finally:
        for p in procs.values():
            stop_process(p, signal.SIGKILL)
        feed.stop()
        oxi.stopping.set()
        sil.kill()
        listener.close()
    gw = Store(tmp_path / "gw.db")
    central = Store(tmp_path / "central.db")
    try:

        def events(st: Store) -> list[tuple[Any, ...]]:
            return [
                (a["boot"], a["t_ms"], a["condition"], a["event"])
                for a in st.alarms()
                if a["source"] != "log"
            ]

        assert events(gw) and events(central) == events(gw)
        assert {s.device for s in central.sessions()} == {CHAIR}
        assert central.counts()["raw_lines"] <= gw.counts()["raw_lines"]
    finally:
        gw.close()
        central.close()
    assert all(g.problems == [] for g in listener.got), [g.problems for g in listener.got]
    r40 = listener.texts("ORU^R40")
    assert any("SPO2_DESAT" in t for t in r40)
    assert not (tmp_path / "dead.jsonl").exists()
