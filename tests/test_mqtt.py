"""MQTT: gateway -> real broker -> recorder and station feed (REQ-MQ). The broker is a real
Mosquitto started by the test (tests/mqttbroker.py), killed and restarted by process id."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bedside_host.link.messages import Gap, Received
from bedside_host.mqtt import topics
from bedside_host.mqtt.connection import Connection, Will
from bedside_host.mqtt.gateway import Gateway
from bedside_host.mqtt.outbox import Outbox
from bedside_host.mqtt.recorder import MqttRecorder
from bedside_host.mqtt.subscriber import start_feed
from bedside_host.store import Store
from mqttbroker import Broker
from recordsim import DeviceSim, alarm

CONDS = [("SPO2_LOW", "high"), ("PR_HIGH", "medium"), ("NIBP_SYS_HIGH", "medium")]


class LineSource:
    """A fake device line source with a DeviceLink's poll/close/state: ``per_poll`` fresh
    lines per poll (each received now), alarms and vitals interleaved."""

    def __init__(self, sim: DeviceSim, count: int, per_poll: int = 5) -> None:
        self.sim = sim
        self.left = count
        self.per_poll = per_poll
        self.state = "live"
        self.t_ms = 1000
        self.n = 0
        self.sent: list[Received | Gap] = []
        self.closed = False

    def poll(self, timeout: float = 0.0) -> list[Received | Gap]:
        time.sleep(timeout)
        out: list[Received | Gap] = []
        for _ in range(min(self.per_poll, self.left)):
            self.left -= 1
            self.n += 1
            self.t_ms += 50
            if self.n % 3 == 0:
                r = self.sim.send(self.t_ms, "oxi", spo2=95, pr=70, flags=[], quality="good")
            else:
                cond, prio = CONDS[self.n % len(CONDS)]
                r = alarm(self.sim, self.t_ms, cond, prio, "active", "raise", 88, 90)
            now = time.time()
            item = Received(r.port, r.line, r.msg, now, now, False)
            out.append(item)
            self.sent.append(item)
        return out

    def close(self) -> None:
        self.closed = True


def _gateway(
    broker: Broker,
    link: Any,
    tmp: Path,
    chair: str = "c1",
    keepalive: int = 10,
    db: bool = True,
) -> Gateway:
    url = topics.parse_url(broker.url)

    def factory(will: Will) -> Connection:
        return Connection(url, f"gw-{chair}", will=will, keepalive=keepalive)

    path = tmp / f"gw-{chair}.db" if db else None
    return Gateway(
        link,
        factory,
        site="clinic1",
        chair=chair,
        port="/dev/ttyACM0",
        store=Store(path) if path else None,
        outbox=Outbox(path),
        gw_id=f"test-{chair}",
    )


def _until(
    cond: Callable[[], bool], timeout: float, step: Callable[[], Any] | None = None
) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if step is not None:
            step()
        else:
            time.sleep(0.02)
        if cond():
            return True
    return False


class Feed:
    def __init__(self, url: str) -> None:
        self.got: list[tuple[str, dict[str, Any], float]] = []
        self.lock = threading.Lock()
        self.sub = start_feed(url, self.on_message, site="clinic1", client_id="station-1")

    def on_message(self, chair_id: str, msg: dict[str, Any], rx: float) -> None:
        with self.lock:
            self.got.append((chair_id, msg, rx))

    def gateway_states(self, chair_id: str) -> list[bool]:
        """The chair's online/offline history (repeats of one state folded)."""
        with self.lock:
            seen = [
                m["online"] for c, m, _ in self.got if c == chair_id and m["type"] == "gateway"
            ]
        return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]

    def alarms(self) -> list[tuple[int, int]]:
        with self.lock:
            return [(m["boot"], m["seq"]) for _, m, _ in self.got if m.get("type") == "alarm"]


def test_broker_killed_during_alarm_burst_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-02, REQ-MQ-03, REQ-MQ-05: the broker is killed (SIGKILL) in the middle of a
    burst of alarm events and restarted: the recorder's database holds every alarm event of
    the burst exactly once, the gateway's outbox ends empty, and the station feed shows the
    chair offline while the broker is gone and online again after, each alarm once. (The
    broker keeps the recorder's persistent session in its persistence file, as the clinic
    configuration does: the test waits until the broker has saved it.)"""
    if not broker.persistent:
        pytest.skip("the amqtt fallback keeps no sessions across a restart: needs Mosquitto")
    rec = MqttRecorder(Store(tmp_path / "central.db"), broker.url, site="clinic1").start()
    feed = Feed(broker.url)  # a station with a persistent session
    assert rec.sub.wait_connected(10) and feed.sub.wait_connected(10)
    assert broker.wait_saved(time.time() + 0.1)  # the recorder's session is on disk
    link = LineSource(DeviceSim(boot=5), count=900, per_poll=6)
    stop = threading.Event()
    gws: list[Gateway] = []

    def gateway_loop() -> None:  # SQLite: the gateway lives in its own thread
        gw = _gateway(broker, link, tmp_path)
        gws.append(gw)
        try:
            while not stop.is_set():
                gw.step(0.02)
        finally:
            gw.close()

    t = threading.Thread(target=gateway_loop)
    t.start()
    assert _until(lambda: bool(gws), 10)
    gw = gws[0]
    try:
        assert _until(lambda: link.n >= 300, 30, lambda: rec.step(0.02))
        assert _until(lambda: feed.gateway_states("clinic1/c1") == [True], 5)
        broker.stop(kill=True)
        _until(lambda: False, 1.0, lambda: rec.step(0.02))
        assert 300 <= link.n < 900  # the burst goes on while the broker is away
        broker.start()
        sent = [i for i in link.sent if isinstance(i, Received) and i.msg["type"] == "alarm"]

        def all_recorded() -> bool:
            return link.left == 0 and rec.store.counts()["alarms"] >= 600 and len(gw.outbox) == 0

        assert _until(all_recorded, 60, lambda: rec.step(0.05)), (
            rec.store.counts(),
            rec.status(),
            gw.status(),
            broker.output(),
        )
        sent = [i for i in link.sent if isinstance(i, Received) and i.msg["type"] == "alarm"]
        assert len(sent) == 600
    finally:
        stop.set()
        t.join()
    rec.store.flush()
    rows = rec.store.conn.execute(
        "SELECT r.boot, r.seq FROM alarms a JOIN raw_lines r ON r.id = a.raw_id"
        " WHERE a.device = 'clinic1/c1' ORDER BY r.seq"
    ).fetchall()
    assert [tuple(r) for r in rows] == [(i.msg["boot"], i.msg["seq"]) for i in sent]
    # the gateway's own raw record holds every line too
    gwdb = Store(tmp_path / "gw-c1.db")
    assert gwdb.counts()["raw_lines"] == 900
    gwdb.close()
    # the station feed: offline while the broker was away, online again; each alarm once
    assert _until(lambda: len(feed.alarms()) == 600, 10)
    assert sorted(feed.alarms()) == sorted((i.msg["boot"], i.msg["seq"]) for i in sent)
    states = feed.gateway_states("clinic1/c1")
    assert states[:3] == [True, False, True], states
    rec.close()
    feed.sub.stop()
