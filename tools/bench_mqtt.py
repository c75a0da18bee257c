"""Benchmark: device line at the gateway -> Mosquitto -> subscriber (the station feed), p50/p99.

Starts its own Mosquitto on 127.0.0.1 (tests/mqttbroker.py, the tests' broker), runs
``--chairs`` gateways (bedside_host.mqtt.gateway, in threads of this process, each with its
own paced device line source: 1 Hz vitals and heartbeat plus ``--alarm-hz`` alarm events) and
one subscriber (bedside_host.mqtt.subscriber.start_feed). The latency of a message is the
subscriber's receive time minus the time the gateway received the line (both
``time.time()`` on this machine): gateway processing (record outbox commit for QoS 1) +
broker + subscriber. Writes bench/parts/mqtt.json. Usage:
    .venv/bin/python tools/bench_mqtt.py [--chairs 16] [--seconds 20] [--alarm-hz 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "host_tools"), str(ROOT / "tests")]

from bedside_host.link.messages import Received  # noqa: E402
from bedside_host.mqtt import topics  # noqa: E402
from bedside_host.mqtt.connection import Connection, Will  # noqa: E402
from bedside_host.mqtt.gateway import Gateway  # noqa: E402
from bedside_host.mqtt.outbox import Outbox  # noqa: E402
from bedside_host.mqtt.subscriber import start_feed  # noqa: E402

TARGET_P99_MS = 1000.0  # the MonitorMe 1 s end-to-end target (reference station.md §4.9)


class PacedSource:
    """Device lines at real rates: oxi and heartbeat each second, alarms at ``alarm_hz``."""

    def __init__(self, port: str, alarm_hz: float) -> None:
        self.port = port
        self.seq = 0
        self.t0 = time.monotonic()
        self.next_vitals = self.t0
        self.next_alarm = self.t0 + 0.5 / max(alarm_hz, 1e-9)
        self.alarm_every = 1.0 / alarm_hz if alarm_hz > 0 else float("inf")
        self.state = "live"

    def _line(self, mtype: str, **f: Any) -> Received:
        self.seq += 1
        now = time.time()
        t_ms = int((time.monotonic() - self.t0) * 1000)
        msg = {"v": 2, "seq": self.seq, "boot": 1, "type": mtype, "t_ms": t_ms, **f}
        line = json.dumps(msg, separators=(",", ":"))
        return Received(self.port, line, msg, now, now, False)

    def poll(self, timeout: float = 0.0) -> list[Received]:
        nxt = min(self.next_vitals, self.next_alarm)
        wait = nxt - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
        now = time.monotonic()
        out = []
        if now >= self.next_vitals:
            self.next_vitals += 1.0
            out.append(self._line("oxi", spo2=97, pr=72, flags=[], quality="good"))
            out.append(self._line("heartbeat", priority=None, alarms=[], active=[]))
        if now >= self.next_alarm:
            self.next_alarm += self.alarm_every
            out.append(
                self._line(
                    "alarm",
                    condition="SPO2_LOW",
                    priority="high",
                    state="active",
                    event="raise",
                    kind="physiological",
                    value=88,
                    limit=90,
                )
            )
        return out

    def close(self) -> None:
        pass


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chairs", type=int, default=16)
    quick = os.environ.get("BEDSIDE_BENCH_QUICK") == "1"  # tools/benchlib.py: a short run
    ap.add_argument("--seconds", type=float, default=3.0 if quick else 20.0)
    ap.add_argument("--alarm-hz", type=float, default=2.0)
    parts = Path(os.environ.get("BEDSIDE_BENCH_PARTS", ROOT / "bench" / "parts"))
    ap.add_argument("--out", type=Path, default=parts / "mqtt.json")
    args = ap.parse_args()

    import mqttbroker

    why = mqttbroker.available()
    if why:
        print(f"bench_mqtt: {why}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    broker = mqttbroker.Broker(tmp / "broker").start()
    lat: dict[str, list[float]] = {"vitals": [], "alarm": []}
    lock = threading.Lock()

    def on_message(chair_id: str, msg: dict[str, Any], rx: float) -> None:
        t = msg.get("type")
        sent = sent_at.get((chair_id, msg.get("seq")))
        if sent is None or t not in ("oxi", "alarm"):
            return
        with lock:
            lat["vitals" if t == "oxi" else "alarm"].append((rx - sent) * 1000.0)

    sent_at: dict[tuple[str, Any], float] = {}
    feed = start_feed(broker.url, on_message, site="bench")
    if not feed.wait_connected(10):
        print("bench_mqtt: the subscriber did not connect", file=sys.stderr)
        return 1
    stop = threading.Event()
    url = topics.parse_url(broker.url)

    def run_gateway(i: int) -> None:
        src = PacedSource(f"/dev/bench{i}", args.alarm_hz)
        chair = f"c{i}"
        orig = src._line

        def stamped(mtype: str, **f: Any) -> Received:
            r = orig(mtype, **f)
            sent_at[(f"bench/{chair}", r.msg["seq"])] = r.rx_time
            return r

        src._line = stamped  # type: ignore[method-assign]

        def conn(will: Will) -> Connection:
            return Connection(url, f"bench-gw-{i}", will=will)

        gw = Gateway(
            src,
            conn,
            site="bench",
            chair=chair,
            port=src.port,
            store=None,
            outbox=Outbox(None),
            gw_id=f"bench-{i}",
        )
        try:
            while not stop.is_set():
                gw.step(0.02)
        finally:
            gw.close()

    threads = [threading.Thread(target=run_gateway, args=(i,)) for i in range(args.chairs)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # connects and retained state
    with lock:
        lat["vitals"].clear()
        lat["alarm"].clear()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    feed.stop()
    broker.stop()
    method = (
        f"tools/bench_mqtt.py: {args.chairs} gateways (threads, 1 Hz vitals + heartbeat, "
        f"{args.alarm_hz} alarm events/s each) -> broker ({broker.kind}) on 127.0.0.1 -> "
        f"one subscriber, {args.seconds:.0f} s; latency = subscriber receive - gateway line "
        "receive (same clock)"
    )
    figures = []
    for kind, label in (("vitals", "QoS 0 vitals"), ("alarm", "QoS 1 alarm events")):
        v = lat[kind]
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            val = _pct(v, q)
            figures.append(
                {
                    "name": f"MQTT gateway -> broker -> subscriber latency {name}, {label}",
                    "value": None if val is None else round(val, 2),
                    "unit": "ms",
                    "target": f"p99 < {TARGET_P99_MS:.0f} ms" if name == "p99" else None,
                    "method": f"{method}; n={len(v)}",
                }
            )
    part = {"section": "mqtt", "figures": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(part, indent=2) + "\n")
    for f in figures:
        print(f"{f['name']}: {f['value']} {f['unit']}")
    mean = statistics.mean(lat["alarm"]) if lat["alarm"] else float("nan")
    print(f"(alarm mean {mean:.2f} ms) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
