"""MQTT: gateway -> real broker -> recorder and station feed (REQ-MQ). The broker is a real
Mosquitto started by the test (tests/mqttbroker.py), killed and restarted by process id."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mqttbroker
import pytest
from bedside_host.link.messages import Received
from bedside_host.mqtt import topics
from bedside_host.mqtt.connection import Connection, Will
from bedside_host.mqtt.gateway import Gateway
from bedside_host.mqtt.outbox import Outbox
from bedside_host.mqtt.recorder import MqttRecorder
from bedside_host.mqtt.subscriber import start_feed
from bedside_host.store import Store
from mqttbroker import Broker
from recordsim import DeviceSim, LineSource

ROOT = Path(__file__).resolve().parents[1]


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
    link.paused = True  # the burst starts once the station shows the chair online
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
        assert _until(lambda: feed.gateway_states("clinic1/c1") == [True], 10)
        link.paused = False
        assert _until(lambda: link.n >= 300, 30, lambda: rec.step(0.02))
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


def test_topics_payloads_and_names() -> None:
    """REQ-MQ-01: the topic tree is bedside/v1/<site>/<chair>/<leaf>; alarm, NIBP, session,
    events and gaps are QoS 1, the 1 Hz vitals and heartbeat QoS 0; a payload carries the
    device line verbatim and decodes back to it; bad broker URLs and site or chair names
    (wildcards, '/', empty) are refused with a readable error."""
    assert topics.topic("clinic1", "c1", "alarm") == "bedside/v1/clinic1/c1/alarm"
    assert topics.split("bedside/v1/clinic1/c1/alarm") == ("clinic1", "c1", "alarm")
    assert topics.split("other/v1/a/b/c") is None
    assert topics.subscription(None) == "bedside/v1/+/+/+"
    leaf_qos = {t: topics.QOS[topics.LEAVES[t]] for t in ("alarm", "nibp", "session", "setting")}
    assert leaf_qos == {"alarm": 1, "nibp": 1, "session": 1, "setting": 1}
    assert topics.QOS["vitals"] == topics.QOS["heartbeat"] == 0 and topics.QOS["gap"] == 1
    assert topics.leaf_of({"type": "reply"}) is None and topics.leaf_of({"type": "new"}) == "event"
    line = '{"v":2,"seq":5,"boot":3,"type":"alarm","t_ms":10,"condition":"SPO2_LOW"}'
    p = topics.decode(topics.device_payload("gw", line, 1.5, 1.25, False, "/dev/ttyACM0"))
    assert p["line"] == line and p["msg"]["condition"] == "SPO2_LOW" and p["rx"] == 1.5
    for bad in (b"not json", b'{"pv": 99}', b'{"pv": 1, "line": "[1]", "rx": 1}'):
        with pytest.raises(topics.PayloadError):
            topics.decode(bad)
    u = topics.parse_url("mqtts://gw%201:p%40ss@broker.lan")
    assert (u.host, u.port, u.tls, u.username, u.password) == (
        "broker.lan",
        8883,
        True,
        "gw 1",
        "p@ss",
    )
    assert "p@ss" not in str(u)
    for url in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/path"):
        with pytest.raises(topics.ConfigError):
            topics.parse_url(url)
    for name in ("", "a/b", "a+", "#", "x" * 33):
        with pytest.raises(topics.ConfigError):
            topics.check_name("chair", name)


def test_outbox_survives_a_gateway_restart(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-03: alarm events a gateway could not publish (broker unreachable) stay in the
    outbox table of its record file across a gateway restart, and the next gateway on that
    file publishes them; the outbox is empty once the broker acknowledged them."""
    dead = Broker(tmp_path / "nobroker")  # a port nothing listens on
    link = LineSource(DeviceSim(boot=9), count=30, per_poll=10)
    gw = _gateway(dead, link, tmp_path, chair="c3")
    for _ in range(5):
        gw.step(0.01)
    assert link.left == 0 and not gw.conn.connected
    gw.close()
    alarms = [i for i in link.sent if isinstance(i, Received) and i.msg["type"] == "alarm"]
    assert len(Outbox(tmp_path / "gw-c3.db")) == len(alarms) == 20
    feed = Feed(broker.url)
    assert feed.sub.wait_connected(10)
    gw2 = _gateway(broker, LineSource(DeviceSim(boot=9), count=0), tmp_path, chair="c3")
    try:
        assert _until(lambda: len(gw2.outbox) == 0, 20, lambda: gw2.step(0.02))
        assert _until(lambda: len(feed.alarms()) == 20, 10)
    finally:
        gw2.close()
        feed.sub.stop()
    assert sorted(feed.alarms()) == [(9, i.msg["seq"]) for i in alarms]


def test_late_station_gets_retained_state(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-04, REQ-MQ-05: a station that subscribes after the gateway started gets each
    chair at once from the retained state: online, the link state (on_link_state), the last
    vitals with the time the gateway received them; a cleanly stopped gateway leaves the
    retained status "offline"."""
    link = LineSource(DeviceSim(boot=2), count=12, per_poll=4)
    gw = _gateway(broker, link, tmp_path, chair="c4", db=False)
    assert _until(lambda: gw.conn.connected and link.left == 0, 10, lambda: gw.step(0.02))
    for _ in range(30):
        gw.step(0.05)  # the retained state is published (at most once a second)
    last_rx = max(i.rx_time for i in link.sent)
    feed = Feed(broker.url)
    links: list[tuple[str, str, str]] = []
    model: list[tuple[str, dict[str, Any], float]] = []
    station = start_feed(
        broker.url,
        lambda c, m, r: model.append((c, m, r)),
        site="clinic1",
        on_link_state=lambda c, st, why: links.append((c, st, why)),
    )
    try:
        assert _until(lambda: feed.gateway_states("clinic1/c4") == [True], 10)
        with feed.lock:
            kinds = {m.get("type") for c, m, _ in feed.got if c == "clinic1/c4"}
            gws = [m for c, m, _ in feed.got if m.get("type") == "gateway"]
        assert "oxi" in kinds and gws[-1]["link"] == "live" and gws[-1]["gw"] == "test-c4"
        # the station model's view: link live; the snapshot's vitals carry the time the
        # gateway received them, never the time the station subscribed (nothing looks fresh)
        assert _until(lambda: ("clinic1/c4", "live") in [(c, s) for c, s, _ in links], 10)
        oxi = [r for c, m, r in model if m.get("type") == "oxi"]
        assert oxi and all(r <= last_rx for r in oxi)
        assert all(m.get("type") != "gateway" for _, m, _ in model)
        gw.close()
        assert _until(lambda: feed.gateway_states("clinic1/c4") == [True, False], 10)
        assert _until(lambda: links[-1][:2] == ("clinic1/c4", "offline"), 10)
        assert "offline" in links[-1][2]
    finally:
        feed.sub.stop()
        station.stop()


def _tls_files(d: Path) -> None:
    """A test CA, a broker certificate for 127.0.0.1 and a password file."""
    import subprocess

    def run(*a: str) -> None:
        subprocess.run(a, cwd=d, check=True, capture_output=True)

    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=bedside-test-ca",
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "broker.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    run("mosquitto_passwd", "-c", "-b", "passwd", "c5", "gw-secret")
    run("mosquitto_passwd", "-b", "passwd", "station", "st-secret")


def test_clinic_config_tls_and_passwords(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-07: the repository's clinic configuration (docs/mosquitto/clinic.conf and
    bedside.acl) runs on Mosquitto with TLS and passwords: a gateway over mqtts:// with its
    chair's user and the CA file reaches the station user; a wrong password and an
    anonymous client are refused; the ACL keeps a gateway to its own chair's topics."""
    import shutil

    if broker.kind != "mosquitto" or not shutil.which("openssl"):
        pytest.skip("needs Mosquitto (mosquitto_passwd) and openssl")
    d = tmp_path / "clinic"
    d.mkdir()
    _tls_files(d)
    conf = (ROOT / "docs/mosquitto/clinic.conf").read_text()
    shutil.copy(ROOT / "docs/mosquitto/bedside.acl", d / "bedside.acl")
    port = mqttbroker.free_port()
    text = mqttbroker.rewrite(
        conf,
        {
            "listener": f"{port} 127.0.0.1",
            "cafile": str(d / "ca.crt"),
            "certfile": str(d / "broker.crt"),
            "keyfile": str(d / "broker.key"),
            "password_file": str(d / "passwd"),
            "acl_file": str(d / "bedside.acl"),
            "persistence_location": f"{d}/",
            "log_dest": f"file {d / 'broker.log'}",
        },
    )
    clinic = Broker(d / "run", port=port, conf=text).start()
    try:
        base = f"127.0.0.1:{port}"
        got: list[tuple[str, dict[str, Any]]] = []
        url = topics.parse_url(f"mqtts://station:st-secret@{base}")
        sub = Connection(
            url,
            "st",
            subscriptions=(("bedside/v1/#", 1),),
            ca_file=str(d / "ca.crt"),
            on_message=lambda m: got.append((m.topic, {})),
        )
        for bad in (f"mqtts://station:wrong@{base}", f"mqtts://{base}"):
            c = Connection(topics.parse_url(bad), "bad", ca_file=str(d / "ca.crt"))
            assert not _until(lambda c=c: c.connected, 2, c.step)
            assert "refused" in c.last_error or "disconnected" in c.last_error, c.last_error
            c.close()
        assert _until(lambda: sub.connected, 10, sub.step)
        link = LineSource(DeviceSim(boot=4), count=6, per_poll=3)
        gurl = topics.parse_url(f"mqtts://c5:gw-secret@{base}")
        gw = Gateway(
            link,
            lambda will: Connection(gurl, "gw-c5", will=will, ca_file=str(d / "ca.crt")),
            site="clinic1",
            chair="c5",
            port="/dev/ttyACM0",
            store=None,
            outbox=Outbox(None),
        )
        assert _until(lambda: len(got) >= 6 and len(gw.outbox) == 0, 15, lambda: gw.step(0.02))
        # the ACL: user c5 may not write another chair's topics (the broker drops it)
        gw.conn.publish("bedside/v1/clinic1/c6/alarm", b"x", 1)
        _until(lambda: False, 1.0, lambda: gw.step(0.02))
        gw.close()
        assert _until(lambda: any(t.endswith("c5/status") for t, _ in got), 5)
        assert all("/c5/" in t for t, _ in got), {t for t, _ in got}
        sub.close()
    finally:
        clinic.stop()


def test_bridge_clinic_to_hospital(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-08: with the repository's bridge configuration
    (docs/mosquitto/bridge-to-hospital.conf, address rewritten) a clinic broker forwards its
    chairs to the hospital broker: a station subscribed at the hospital sees the clinic's
    gateway online and its alarm events."""
    if broker.kind != "mosquitto":
        pytest.skip("the bridge is a Mosquitto feature")
    bridge = (ROOT / "docs/mosquitto/bridge-to-hospital.conf").read_text()
    port = mqttbroker.free_port()
    d = tmp_path / "clinicbroker"
    d.mkdir()
    text = mqttbroker.rewrite(
        bridge,
        {"address": f"127.0.0.1:{broker.port}"},
        extra=[
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            f"log_dest file {d / 'broker.log'}",
        ],
    )
    # the hospital test broker takes anonymous clients without TLS: no credentials or CA
    text = (
        "\n".join(
            line
            for line in text.splitlines()
            if not line.startswith(("remote_username", "remote_password", "bridge_cafile"))
        )
        + "\n"
    )
    clinic = Broker(d / "run", port=port, conf=text).start()
    hospital_feed = Feed(broker.url)
    try:
        assert hospital_feed.sub.wait_connected(10)
        link = LineSource(DeviceSim(boot=6), count=15, per_poll=5)
        clinic_url = Broker(d / "x", port=port)  # only for its url
        gw = _gateway(clinic_url, link, tmp_path, chair="c8", db=False)
        assert _until(lambda: len(hospital_feed.alarms()) == 10, 20, lambda: gw.step(0.02)), (
            clinic.output()
        )
        assert hospital_feed.gateway_states("clinic1/c8")[:1] == [True]
        gw.close()
    finally:
        hospital_feed.sub.stop()
        clinic.stop()


def test_faults_in_consumers_and_files_lose_nothing(broker: Broker, tmp_path: Path) -> None:
    """REQ-MQ-09: a station callback that raises does not stop the feed (the error is
    counted, later messages arrive); an outbox that cannot be written (the record file locked
    by another program) stops nothing: the gateway keeps the messages, says so in its status
    line, and publishes them once the file can be written."""
    import sqlite3

    got: list[int] = []

    def fragile(chair_id: str, msg: dict[str, Any], rx: float) -> None:
        if msg.get("type") == "alarm" and msg["seq"] % 2:
            raise ValueError("a bug in the station")
        if msg.get("type") == "alarm":
            got.append(msg["seq"])

    sub = start_feed(broker.url, fragile, site="clinic1")
    assert sub.wait_connected(10)
    path = tmp_path / "gw-c9.db"
    Store(path).close()
    url = topics.parse_url(broker.url)
    link = LineSource(DeviceSim(boot=1), count=0, per_poll=9)
    gw = Gateway(
        link,
        lambda will: Connection(url, "gw-c9", will=will),
        site="clinic1",
        chair="c9",
        port="/dev/ttyACM0",
        store=None,
        outbox=Outbox(path, busy_timeout_ms=50),
    )
    try:
        assert _until(lambda: gw.conn.connected, 10, lambda: gw.step(0.02))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        link.left = 9
        for _ in range(5):
            gw.step(0.02)
        assert link.left == 0 and "NOT WRITTEN YET" in gw.status() and not got
        other.execute("ROLLBACK")
        other.close()
        assert _until(lambda: len(got) == 3 and len(gw.outbox) == 0, 10, lambda: gw.step(0.02))
    finally:
        gw.close()
        sub.stop()
    assert "NOT WRITTEN" not in gw.status()
    assert sub.conn.callback_errors == 3 and "a bug" in sub.conn.last_callback_error
