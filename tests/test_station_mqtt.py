"""The central station fed from MQTT (``bedside station --mqtt URL --site S``) and sending HL7
(``--hl7 mllp://HOST:PORT``): real processes (SIL device, ``bedside gateway``, ``bedside
station``), a real Mosquitto started by the test, the in-process MLLP listener (REQ-STA-2x)."""

from __future__ import annotations

import argparse
import json
import select
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bedside_host.commands import station as station_cmd
from bedside_host.hl7.bridge import Hl7Bridge
from bedside_host.link.messages import Received
from bedside_host.mqtt import topics
from bedside_host.mqtt.connection import Connection, Will
from bedside_host.mqtt.gateway import Gateway
from bedside_host.mqtt.outbox import Outbox
from bedside_host.mqtt.subscriber import Deduplicator, Delivery
from bedside_host.station import feeds
from bedside_host.station.app import Hub, create_app
from bedside_host.station.model import StationModel
from bedside_host.store import Store
from fastapi.testclient import TestClient
from mllplistener import MllpListener
from mqttbroker import Broker
from recordsim import DeviceSim, LineSource, alarm
from silharness import Oximeter, Sil, start_bedside, stop_process
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
SITE = "clinic1"


def _until(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


class Station:
    """``bedside station`` in its own process; its address read from the first stdout line."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.log = tmp / "station.log"
        self.db = tmp / "station.db"
        self.proc = start_bedside(
            "station",
            "--http",
            "127.0.0.1:0",
            "--db",
            str(self.db),
            *args,
            log=self.log,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        assert line.startswith("Bedside station: http://"), (line, self.log.read_text())
        self.first_line = line.strip()
        self.url = line.split()[2].rstrip("/")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def tile(self, chair: str) -> dict[str, Any] | None:
        state = self.get("/api/state")
        return next((t for t in state["tiles"] if t["id"] == chair), None)

    def stop(self) -> int:
        rc = stop_process(self.proc)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return rc


def _alarm_events(db: Path, device: str | None = None) -> list[tuple[Any, ...]]:
    """(boot, t_ms, condition, event) of the live alarm events recorded (of one device)."""
    st = Store(db)
    try:
        return [
            (a["boot"], a["t_ms"], a["condition"], a["event"])
            for a in st.alarms()
            if a["source"] != "log" and device in (None, a["device"])
        ]
    finally:
        st.close()


@pytest.mark.slow
def test_station_mqtt_shows_a_gateway_chair_records_it_and_sends_hl7(
    broker: Broker, tmp_path: Path
) -> None:
    """REQ-STA-20, REQ-STA-21, REQ-STA-22, REQ-STA-27: a SIL device behind `bedside gateway`
    and `bedside station --mqtt URL --site clinic1 --hl7 mllp://...` in their own processes:
    the chair appears on the station (API and WebSocket) live with its SpO2; a desaturation
    puts SPO2_DESAT in the chair's tile and first in the alarm list; the station's record
    file holds the chair's alarm events exactly as the gateway's own record does (each once)
    and its history is served under the chair id with its '/'; the MLLP listener receives
    valid PCD-01 ORU^R01 and PCD-04 ORU^R40 for the desaturation; a gateway that stops shows
    offline at the station. A chair on a port is shown beside them. The station's status
    reports the broker connected, lines recorded, HL7 delivered and no problem."""
    chair = f"{SITE}/c7"
    (tmp_path / "sil").mkdir()
    sil = Sil(tmp_path / "sil")
    oxi = Oximeter(sil)
    oxi.start()
    listener = MllpListener()
    dead = tmp_path / "dead.jsonl"
    station: Station | None = None
    gw: subprocess.Popen[bytes] | None = None
    try:
        station = Station(
            tmp_path,
            "--mqtt",
            broker.url,
            "--site",
            SITE,
            "--hl7",
            listener.url,
            "--hl7-period",
            "2",
            "--dead-letter",
            str(dead),
            "--port",
            "loop://",  # a chair on a port beside the broker's (a silent one)
            "--chair",
            "Bay L",
        )
        assert f"MQTT mqtt://127.0.0.1:{broker.port} site {SITE}" in station.first_line
        gw = start_bedside(
            "gateway",
            "--port",
            sil.ports["host"],
            "--mqtt",
            broker.url,
            "--site",
            SITE,
            "--chair",
            "c7",
            "--db",
            str(tmp_path / "gw.db"),
            "--keepalive",
            "2",
            "--quiet",
            log=tmp_path / "gw.log",
        )

        def live() -> bool:
            assert station is not None
            t = station.tile(chair)
            return t is not None and t["link"] == "live" and not t["offline"] and t["spo2"] == 97

        assert _until(live, 40), (station.get("/api/state"), (tmp_path / "gw.log").read_text())
        ws_url = station.url.replace("http://", "ws://") + "/ws"
        with connect(ws_url, open_timeout=10) as ws:
            snap = json.loads(ws.recv(10))
            assert snap["type"] == "snapshot" and set(snap["order"]) == {"Bay L", chair}
            port_tile = next(t for t in snap["tiles"] if t["id"] == "Bay L")
            assert port_tile["offline"] and port_tile["device"] == "loop://"
            tile = next(t for t in snap["tiles"] if t["id"] == chair)
            assert tile["label"] == "c7" and tile["device"] == chair and tile["spo2"] == 97
            oxi.spo2 = 80  # deep desaturation: SPO2_DESAT at once
            seen: dict[str, Any] = {}
            end = time.monotonic() + 30
            while time.monotonic() < end and "alarm" not in seen:
                f = json.loads(ws.recv(10))
                for t in f.get("tiles", ()):
                    if t["id"] == chair and any(
                        a["condition"] == "SPO2_DESAT" for a in t["alarms"]
                    ):
                        seen["tile"] = t
                first = (f.get("alarms") or [None])[0]
                if "tile" in seen and first and first["condition"] == "SPO2_DESAT":
                    seen["alarm"] = first
            assert "alarm" in seen, seen
            assert seen["tile"]["colour"] in ("high", "medium")
            assert seen["alarm"]["chair"] == chair
        state = station.get("/api/state")
        assert state["alarms"][0]["chair"] == chair
        oxi.spo2 = 97

        def ended() -> bool:
            assert station is not None
            t = station.tile(chair)
            return t is not None and not any(
                a["condition"] == "SPO2_DESAT" and a["state"] == "active" for a in t["alarms"]
            )

        assert _until(ended, 40)
        assert _until(lambda: any("SPO2_DESAT" in t for t in listener.texts("ORU^R40")), 20)
        assert _until(lambda: len(listener.texts("ORU^R01")) >= 2, 20)

        def history_has_alarm() -> bool:
            assert station is not None
            h = station.get(f"/api/chairs/{chair.replace('/', '%2F')}/history?minutes=10")
            return any(a["condition"] == "SPO2_DESAT" for a in h["alarms"])

        assert _until(history_has_alarm, 20)
        status = station.get("/api/status")
        assert status["mqtt"]["connected"] and status["mqtt"]["client_id"].endswith(SITE)
        assert status["mqtt"]["recorded"] > 0 and status["store"]["error"] == ""
        assert status["hl7"]["sent"]["pcd04"] >= 1 and status["hl7"]["dead_lettered"] == 0
        assert status["problems"] == []
        assert stop_process(gw) == 0  # a clean stop: retained status offline

        def offline() -> bool:
            assert station is not None
            t = station.tile(chair)
            return t is not None and t["link"] == "offline" and t["offline"]

        assert _until(offline, 20)
        assert station.stop() == 0
    finally:
        if gw is not None:
            stop_process(gw, signal.SIGKILL)
        if station is not None and station.proc.poll() is None:
            stop_process(station.proc, signal.SIGKILL)
        oxi.stopping.set()
        sil.kill()
        listener.close()
    gw_events = _alarm_events(tmp_path / "gw.db")  # one device there, keyed by its port
    st_events = _alarm_events(tmp_path / "station.db", chair)
    assert any(e[2] == "SPO2_DESAT" for e in st_events)
    assert st_events == gw_events  # every event, each once
    assert all(g.problems == [] for g in listener.got), [g.problems for g in listener.got]
    pcd04 = [t for t in listener.texts("ORU^R40") if "SPO2_DESAT" in t]
    assert pcd04 and all(chair.split("/")[1] in t for t in pcd04)
    assert not dead.exists()


def alarm_source(boot: int, count: int, per_poll: int = 3) -> LineSource:
    """A paused line source of its own device: two alarm events for each oxi."""
    return LineSource(DeviceSim(boot=boot), count, per_poll, paused=True)


def _run_gateway(
    broker: Broker, chair: str, src: LineSource, tmp: Path, stop: threading.Event, out: list[Any]
) -> None:
    """A gateway in its own thread (its SQLite files belong to it) until ``stop``."""
    url = topics.parse_url(broker.url)

    def factory(will: Will) -> Connection:
        return Connection(url, f"gw-{chair}", will=will, keepalive=2)

    path = tmp / f"gw-{chair}.db"
    gw = Gateway(
        src,
        factory,
        site=SITE,
        chair=chair,
        port=f"/dev/tty-{chair}",
        store=Store(path),
        outbox=Outbox(path),
        gw_id=f"test-{chair}",
    )
    out.append(gw)
    try:
        while not stop.is_set():
            gw.step(0.02)
    finally:
        gw.close()


class LinkWatch(threading.Thread):
    """Polls the station's API and keeps each chair's link-state history (repeats folded)."""

    def __init__(self, station: Station, chairs: list[str]) -> None:
        super().__init__(daemon=True)
        self.station = station
        self.states: dict[str, list[str]] = {c: [] for c in chairs}
        self.details: dict[str, set[str]] = {c: set() for c in chairs}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                tiles = self.station.get("/api/state")["tiles"]
            except OSError:
                continue
            for t in tiles:
                seen = self.states.get(t["id"])
                if seen is not None and (not seen or seen[-1] != t["link"]):
                    seen.append(t["link"])
                    self.details[t["id"]].add(t["link_detail"])
            time.sleep(0.05)


@pytest.mark.slow
def test_station_mqtt_broker_killed_during_alarms_shows_offline_and_loses_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    """REQ-STA-24, REQ-STA-27: two gateways publish bursts of alarm events to `bedside
    station --mqtt`; the broker is killed (SIGKILL) in the middle and restarted: the station
    shows each gateway offline (it lost the broker) and live again, its status names the
    lost broker as a problem while it is away and no problem after, and its record file holds every
    alarm event of both chairs exactly once, in order (the station's persistent session and
    the gateways' outboxes; the broker keeps sessions in its persistence file, as the clinic
    configuration does)."""
    if not broker.persistent:
        pytest.skip("the amqtt fallback keeps no sessions across a restart: needs Mosquitto")
    chairs = {"c1": alarm_source(boot=5, count=600), "c2": alarm_source(boot=6, count=600)}
    ids = [f"{SITE}/{c}" for c in chairs]
    stop = threading.Event()
    gws: list[Gateway] = []
    threads = [
        threading.Thread(target=_run_gateway, args=(broker, c, src, tmp_path, stop, gws))
        for c, src in chairs.items()
    ]
    station = Station(tmp_path, "--mqtt", broker.url, "--site", SITE)
    watch = LinkWatch(station, ids)
    try:
        for t in threads:
            t.start()

        def all_live() -> bool:
            tiles = [station.tile(c) for c in ids]
            return all(t is not None and t["link"] == "live" for t in tiles)

        assert _until(all_live, 30), (station.get("/api/state"), station.log.read_text())
        assert broker.wait_saved(time.time() + 0.1)  # the station's session is on disk
        watch.start()
        for src in chairs.values():
            src.paused = False
        assert _until(lambda: all(s.n >= 150 for s in chairs.values()), 30)
        broker.stop(kill=True)
        assert _until(lambda: all("offline" in watch.states[c] for c in ids), 15), watch.states
        status = station.get("/api/status")
        assert not status["mqtt"]["connected"]
        assert any("not connected" in p for p in status["problems"]), status
        time.sleep(1.0)
        assert all(s.n < 600 for s in chairs.values())  # the bursts go on while it is away
        broker.start()

        def done() -> bool:
            return (
                all(s.left == 0 for s in chairs.values())
                and len(gws) == 2
                and all(len(g.outbox) == 0 for g in gws)
                and all(watch.states[c][-1:] == ["live"] for c in ids)
            )

        assert _until(done, 60), (watch.states, [g.status() for g in gws], broker.output())
        time.sleep(2.0)  # the last deliveries reach the station's store
        assert station.get("/api/status")["problems"] == []
        assert station.stop() == 0
    finally:
        watch.stopping.set()
        stop.set()
        for t in threads:
            t.join(20)
        if station.proc.poll() is None:
            stop_process(station.proc, signal.SIGKILL)
    for c in ids:
        assert watch.states[c][:3] == ["live", "offline", "live"], watch.states
        assert "this station lost the broker" in watch.details[c]
    st = Store(station.db)
    try:
        for (name, src), cid in zip(chairs.items(), ids, strict=True):
            rows = st.conn.execute(
                "SELECT r.boot, r.seq FROM alarms a JOIN raw_lines r ON r.id = a.raw_id"
                " WHERE a.device = ? ORDER BY r.seq",
                (cid,),
            ).fetchall()
            sent = [(i.msg["boot"], i.msg["seq"]) for i in src.sent if i.msg["type"] == "alarm"]
            assert len(sent) == 400, name
            assert [tuple(r) for r in rows] == sent, (name, len(rows))
    finally:
        st.close()


@pytest.mark.slow
def test_station_mqtt_restarted_during_alarms_gets_what_it_missed(
    broker: Broker, tmp_path: Path
) -> None:
    """REQ-STA-25: the station's MQTT session is persistent (a fixed client id): a station
    stopped in the middle of an alarm burst and started again with the same record file
    receives from the broker the alarm events published while it was away; the record holds
    every event exactly once."""
    src = alarm_source(boot=9, count=600, per_poll=2)
    cid = f"{SITE}/c3"
    stop = threading.Event()
    gws: list[Gateway] = []
    t = threading.Thread(target=_run_gateway, args=(broker, "c3", src, tmp_path, stop, gws))
    station = Station(tmp_path, "--mqtt", broker.url, "--site", SITE, "--client-id", "st-a")
    try:
        t.start()

        def live() -> bool:
            tile = station.tile(cid)
            return tile is not None and tile["link"] == "live"

        assert _until(live, 30), station.log.read_text()
        src.paused = False
        assert _until(lambda: src.n >= 150, 30)
        assert station.stop() == 0
        at_stop = src.n
        assert _until(lambda: src.n >= at_stop + 150, 30)  # published while it is away
        station = Station(tmp_path, "--mqtt", broker.url, "--site", SITE, "--client-id", "st-a")
        assert _until(lambda: src.left == 0 and len(gws[0].outbox) == 0, 60)
        time.sleep(2.0)
        assert station.stop() == 0
    finally:
        stop.set()
        t.join(20)
        if station.proc.poll() is None:
            stop_process(station.proc, signal.SIGKILL)
    st = Store(station.db)
    try:
        rows = st.conn.execute(
            "SELECT r.boot, r.seq FROM alarms a JOIN raw_lines r ON r.id = a.raw_id"
            " WHERE a.device = ? ORDER BY r.seq",
            (cid,),
        ).fetchall()
    finally:
        st.close()
    sent = [(i.msg["boot"], i.msg["seq"]) for i in src.sent if i.msg["type"] == "alarm"]
    assert len(sent) == 400
    assert [tuple(r) for r in rows] == sent, len(rows)


def _args(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "port": [],
        "chair": [],
        "db": Path("x.db"),
        "http": "127.0.0.1:0",
        "duration": 0.0,
        "mqtt": None,
        "site": None,
        "client_id": None,
        "hl7": None,
        "dead_letter": None,
        "hl7_period": 60.0,
    }
    base.update(kw)
    return argparse.Namespace(**base)


def test_station_mqtt_and_hl7_options_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-STA-26: bad --mqtt, --site, --client-id, --hl7, --hl7-period, or --dead-letter
    and --client-id without what they belong to are exit 2 with one line naming the problem
    (no traceback, the broker password never printed), before anything starts; --mqtt alone
    needs no --port; the HL7 dead-letter file defaults to the record file's directory."""
    db = tmp_path / "s.db"
    bad: list[tuple[dict[str, Any], str]] = [
        ({"mqtt": "http://broker"}, "bad broker URL"),
        ({"mqtt": "mqtt://u:SECRET@broker:99999"}, "bad port"),
        ({"mqtt": "mqtt://broker", "site": "clinic/1"}, "bad site"),
        ({"mqtt": "mqtt://broker", "site": "#"}, "bad site"),
        ({"mqtt": "mqtt://broker", "client_id": "has space"}, "bad MQTT client id"),
        ({"mqtt": "mqtt://broker", "client_id": "x" * 65}, "bad MQTT client id"),
        ({"port": ["loop://"], "client_id": "st-1"}, "--client-id needs --mqtt"),
        ({"mqtt": "mqtt://broker", "hl7": "http://engine:2575"}, "bad HL7 URL"),
        ({"mqtt": "mqtt://broker", "hl7": "mllp://engine:2575", "hl7_period": 0.5}, "1..86400"),
        ({"port": ["loop://"], "dead_letter": tmp_path / "d.jsonl"}, "--dead-letter needs --hl7"),
        ({}, "give at least one --port (or --mqtt URL)"),
        ({"mqtt": "mqtt://broker", "chair": ["Bay 1"]}, "more --chair names than --port"),
    ]
    for kw, why in bad:
        assert station_cmd.run(_args(db=db, **kw)) == 2, kw
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and "SECRET" not in err, (kw, err)
        assert err.count("\n") == 1
    assert not db.exists() or db.stat().st_size == 0  # nothing recorded
    mqtt, hl7 = station_cmd._remote_options(
        _args(db=db, mqtt="mqtt://broker", site="clinic1", hl7="mllp://engine:2575")
    )
    assert mqtt is not None and mqtt.client_id.startswith("bedside-station-")
    assert mqtt.client_id.endswith("-clinic1") and mqtt.site == "clinic1"
    assert hl7 is not None and hl7.dead_letters == tmp_path / "s-hl7-dead-letters.jsonl"
    assert hl7.site == "clinic1" and hl7.period_s == 60.0
    assert station_cmd.chair_specs([], [], mqtt=True) == []


def _delivery(leaf: str, payload: dict[str, Any], chair: str = "c1") -> Delivery:
    return Delivery(SITE, chair, leaf, payload, time.time(), False)


def _line_payload(msg: dict[str, Any], replayed: bool = False) -> dict[str, Any]:
    return {
        "pv": 1,
        "gw": "gw",
        "port": "/dev/x",
        "rx": 1_780_000_000.5,
        "wall": 1_780_000_000.4,
        "replayed": replayed,
        "line": json.dumps(msg),
        "msg": msg,
    }


def test_station_mqtt_feed_records_each_line_and_names_chairs(tmp_path: Path) -> None:
    """REQ-STA-21, REQ-STA-23: what the broker delivers is recorded as `bedside record
    --mqtt` records it (the chair id as device key, the gateway's receive time, the line
    verbatim; a duplicate delivery stored once); a chair is added to the model on its first
    message or state, named by its chair name with --site (its site too without), with its
    record key for the history; a line the gateway published as history (replayed) changes
    nothing live and is not sent to HL7."""
    import asyncio

    model = StationModel()
    recorded: list[Any] = []
    to_hl7: list[tuple[str, dict[str, Any]]] = []
    loop = asyncio.new_event_loop()
    try:
        opts = feeds.check_mqtt("mqtt://127.0.0.1:1", SITE, None)
        bridge_calls: list[Any] = []

        class FakeBridge:
            def on_message(self, c: str, m: dict[str, Any], rx: float) -> None:
                bridge_calls.append((c, m))

        chairs = feeds.MqttChairs(
            model, opts, loop, record=recorded.append, also=[lambda c, m, r: to_hl7.append((c, m))]
        )
        msg = {"v": 2, "seq": 4, "boot": 3, "t_ms": 900, "type": "oxi", "spo2": 93, "pr": 61}
        d = _delivery("vitals", _line_payload(msg))
        chairs.on_delivery(d)
        chairs.on_delivery(d)  # QoS 1 may deliver twice
        chairs.on_delivery(_delivery("status", {"status": "online"}))
        chairs.on_delivery(_delivery("alarm", {"pv": 1, "msg": {"type": "alarm"}}))  # no line
        assert len(recorded) == 2 and chairs.bad == 1
        st = Store(tmp_path / "r.db")
        for item in recorded:
            st.add(item)
        st.flush()
        rows = st.conn.execute("SELECT device, rx_time, line FROM raw_lines").fetchall()
        st.close()
        assert [tuple(r) for r in rows] == [(f"{SITE}/c1", 1_780_000_000.5, json.dumps(msg))]
        dedup = Deduplicator()
        for m in dedup.messages(d):
            chairs.on_message(d.chair_id, m, d.rx_local)
        tile = model.tile(f"{SITE}/c1")
        assert tile["label"] == "c1" and tile["device"] == f"{SITE}/c1" and tile["spo2"] == 93
        old = dict(msg, seq=2, spo2=70)
        got = dedup.messages(_delivery("vitals", _line_payload(old, replayed=True)))
        assert got == [dict(old, replayed=True)]
        chairs.on_message(d.chair_id, got[0], d.rx_local)
        assert model.tile(f"{SITE}/c1")["spo2"] == 93  # history changes nothing live
        assert len(to_hl7) == 2 and to_hl7[1][1]["replayed"] is True
        everyone = feeds.MqttChairs(model, feeds.check_mqtt("mqtt://h", None, None), loop)
        everyone.on_link_state("clinic2/c9", "offline", "gateway gone")
        tile = model.tile("clinic2/c9")
        assert tile["label"] == "clinic2/c9" and tile["link"] == "offline" and tile["offline"]
        assert bridge_calls == []
    finally:
        loop.close()


def test_hl7_bridge_skips_history() -> None:
    """REQ-STA-23: the HL7 bridge builds nothing from a replayed (history) message: a
    replayed NIBP result or alarm event is not a current observation or alarm state change."""

    class NoSender:
        dead = None

    bridge = Hl7Bridge(NoSender(), period_s=60.0)  # type: ignore[arg-type]
    nibp = {"type": "nibp", "boot": 1, "seq": 3, "t_ms": 5, "sys": 120, "dia": 80, "map": 93}
    bridge.on_message("clinic1/c1", dict(nibp, replayed=True), time.time())
    ev = {
        "type": "alarm",
        "boot": 1,
        "seq": 4,
        "t_ms": 6,
        "condition": "SPO2_LOW",
        "event": "raise",
        "priority": "high",
        "state": "active",
        "kind": "physiological",
    }
    bridge.on_message("clinic1/c1", dict(ev, replayed=True), time.time())
    assert bridge.pending() == 0 and bridge.build_errors == 0
    bridge.on_message("clinic1/c1", nibp, time.time())  # the same, live: PCD-01 and PCD-04
    bridge.on_message("clinic1/c1", ev, time.time())
    assert bridge.pending() == 2 and bridge.build_errors == 0


def test_history_of_an_mqtt_chair_id_with_a_slash(tmp_path: Path) -> None:
    """REQ-STA-21: the history of a chair from MQTT (id ``<site>/<chair>``, its record key)
    is served at /api/chairs/<site>%2F<chair>/history, as the page asks for it."""
    db = tmp_path / "h.db"
    st = Store(db)
    sim = DeviceSim(boot=2, port=f"{SITE}/c4")
    r = alarm(sim, 1000, "SPO2_LOW", "high", "active", "raise", 86, 90)
    st.add(r)
    st.flush()
    st.close()
    model = StationModel()
    model.add_chair(f"{SITE}/c4", "c4", device=f"{SITE}/c4")
    with TestClient(create_app(Hub(model, db))) as client:
        h = client.get(f"/api/chairs/{SITE}%2Fc4/history?minutes=1440000")
        assert h.status_code == 422  # minutes bound still checked
        h = client.get(f"/api/chairs/{SITE}%2Fc4/history", params={"minutes": 1440})
        assert h.status_code == 200, h.text
        body = h.json()
        assert body["chair"] == f"{SITE}/c4" and body["label"] == "c4"
        assert client.get(f"/api/chairs/{SITE}%2Fnone/history").status_code == 404


class PortLink:
    """A DeviceLink stand-in for a chair on a port: oxi every poll step, one NIBP result, one
    alarm raised, and one replayed (history) alarm event that must not reach HL7."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.state = "live"
        self.last_error = ""
        self.sim = DeviceSim(boot=4, port=url)
        self.t_ms = 0
        self.closed = False

    def poll(self, timeout: float = 0.0) -> list[Received]:
        time.sleep(max(timeout, 0.2))
        self.t_ms += 200
        out = [self.sim.send(self.t_ms, "oxi", spo2=91, pr=64, flags=[], quality="good")]
        if self.t_ms == 400:
            out.append(self.sim.send(self.t_ms, "nibp", sys=131, dia=79, map=96, pr=64))
            old = alarm(self.sim, 100, "PR_LOW", "medium", "active", "raise", 38, 40)
            out.append(Received(old.port, old.line, old.msg, old.rx_time, None, True))
            out.append(alarm(self.sim, self.t_ms, "SPO2_LOW", "high", "active", "raise", 88, 90))
        now = time.time()
        return [Received(r.port, r.line, r.msg, now, now, r.replayed) for r in out]

    def close(self) -> None:
        self.closed = True


def test_station_hl7_for_chairs_on_ports(tmp_path: Path) -> None:
    """REQ-STA-22, REQ-STA-23: `bedside station --port ... --hl7 mllp://...`: every live
    message of a chair on a port goes to the HL7 bridge under ``<site>/<chair name>``
    (--site, the name made HL7-safe): the listener receives valid PCD-01 with the NIBP result
    and PCD-04 for the alarm raised, nothing for the replayed event; at shutdown the queue
    is sent, nothing dead-lettered."""
    import asyncio

    listener = MllpListener()
    dead = tmp_path / "dead.jsonl"
    chairs = station_cmd.chair_specs(["loop://a"], ["Bay A"])
    hl7 = station_cmd.Hl7Options(listener.url, dead, 60.0, "ward3")
    said: list[str] = []

    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(
            station_cmd.serve(
                chairs,
                tmp_path / "st.db",
                "127.0.0.1",
                0,
                open_link=PortLink,
                announce=said.append,
                stop=stop,
                hl7=hl7,
            )
        )
        end = time.monotonic() + 20
        while time.monotonic() < end and not (
            listener.texts("ORU^R40") and listener.texts("ORU^R01")
        ):
            await asyncio.sleep(0.05)
        stop.set()
        return await task

    try:
        assert asyncio.run(main()) == 0
    finally:
        listener.close()
    assert f"HL7 to {listener.url}" in said[0]
    assert all(g.problems == [] for g in listener.got), [g.problems for g in listener.got]
    r40 = listener.texts("ORU^R40")
    assert len(r40) == 1 and "SPO2_LOW" in r40[0] and "PR_LOW" not in r40[0]
    assert all("ward3^^Bay_A" in t for t in listener.texts())
    assert any("150021" in t and "131" in t for t in listener.texts("ORU^R01"))  # NIBP sys
    assert not dead.exists()


def test_station_status_names_problems_in_words() -> None:
    """REQ-STA-27: the station's status turns a record file it cannot write, a lost broker,
    dead-lettered HL7 messages, a receiver falling behind and messages it could not build
    into problems in words (shown in a red line on the page); a healthy station has none."""
    ok = {
        "store": {"file": "s.db", "error": ""},
        "mqtt": {"broker": "mqtt://station@b:1883", "connected": True, "last_error": ""},
        "hl7": {
            "url": "mllp://e:2575",
            "pending": 0,
            "dead_lettered": 0,
            "dead_letter_file": "d.jsonl",
            "last_error": "",
            "build_errors": 0,
        },
    }
    assert feeds.problems(ok) == []
    bad = {
        "store": {"file": "s.db", "error": "database is locked"},
        "mqtt": {"broker": "mqtt://station@b:1883", "connected": False, "last_error": "refused"},
        "hl7": dict(ok["hl7"], pending=25, dead_lettered=3, last_error="no ACK", build_errors=1),
    }
    got = feeds.problems(bad)
    assert got == [
        "record file not written yet: database is locked",
        "MQTT broker mqtt://station@b:1883 not connected: refused (its chairs show offline)",
        "HL7: 3 messages not delivered, kept in d.jsonl",
        "HL7: 25 messages waiting for mllp://e:2575 (no ACK)",
        "HL7: 1 messages could not be built",
    ]
