"""Device message streams for the record tests: a protocol-v2 session as the link delivers it
(``Received`` and ``Gap`` are the link client's own types)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from typing import Any

from bedside_host.link.messages import Received

PORT = "/dev/ttyACM0"
T0 = 1_780_000_000.0  # UTC of device uptime 0 in these streams


class DeviceSim:
    """Builds the messages one device boot would send (seq, boot, t_ms as the firmware does)."""

    def __init__(self, boot: int = 7, port: str = PORT, t0: float = T0) -> None:
        self.boot = boot
        self.port = port
        self.t0 = t0
        self.seq = 0
        self.out: list[Received] = []

    def send(self, t_ms: int, mtype: str, **fields: Any) -> Received:
        self.seq += 1
        msg: dict[str, Any] = {"v": 2, "seq": self.seq, "boot": self.boot, "type": mtype}
        msg["t_ms"] = t_ms
        msg.update(fields)
        line = json.dumps(msg)
        wall: float | None = self.t0 + t_ms / 1000.0
        rx = self.t0 + t_ms / 1000.0 + 0.02
        rec = fields.get("rec")
        if mtype == "log" and isinstance(rec, dict):  # the link maps a record by its own boot
            wall = self.t0 + rec["u"] / 1000.0 if rec["b"] == self.boot else None
        item = Received(self.port, line, json.loads(line), rx, wall, False)
        self.out.append(item)
        return item


def alarm(
    sim: DeviceSim,
    t_ms: int,
    cond: str,
    prio: str,
    state: str,
    event: str,
    value: float | None = None,
    limit: float | None = None,
    **extra: Any,
) -> Received:
    kind = (
        "technical" if cond.startswith(("OXI_", "NIBP_F", "NIBP_C", "HOST")) else "physiological"
    )
    return sim.send(
        t_ms,
        "alarm",
        condition=cond,
        priority=prio,
        state=state,
        event=event,
        kind=kind,
        value=value,
        limit=limit,
        **extra,
    )


def session_stream(
    boot: int = 7, seconds: int = 600, port: str = PORT, t0: float = T0
) -> list[Received]:
    """A ten-minute boot: 1 Hz oxi + heartbeat, a desaturation (raise, ack by key, end), an NIBP
    reading, a BP alarm, a setting changed by a named operator, AUDIO OFF, a fault, a self-test,
    flash-log records of the previous boot and replies."""
    sim = DeviceSim(boot, port, t0)
    sim.send(
        0,
        "hello",
        fw="0.2.0",
        protocol=2,
        reset_cause="power_on",
        oxi_format="nonin2",
        nibp=True,
        settings_defaulted=False,
        settings_problems=[],
        log={"alarm": {"first": 0, "next": 3}, "event": {"first": 0, "next": 2}},
        history=64,
        id=None,
    )
    for k, rec in enumerate(
        [
            {
                "n": 0,
                "b": boot - 1,
                "u": 5000,
                "condition": "PR_HIGH",
                "priority": "medium",
                "state": "active",
                "event": "raise",
                "value": 131,
                "limit": 130,
            },
            {
                "n": 1,
                "b": boot - 1,
                "u": 9000,
                "condition": "PR_HIGH",
                "priority": "medium",
                "state": "inactive",
                "event": "end",
                "value": 120,
                "limit": 130,
            },
        ]
    ):
        sim.send(300 + k, "log", log="alarm", rec=rec)
    sim.send(302, "log", log="event", rec={"n": 0, "b": boot - 1, "u": 100, "event": "boot"})
    sim.send(
        303,
        "reply",
        cmd="log",
        id=1,
        ok=True,
        log="alarm",
        count=2,
        next=2,
        first=0,
        end=3,
        boot=boot,
    )
    rng = random.Random(boot)
    for s in range(1, seconds + 1):
        t = s * 1000
        spo2: float | None = 97 + rng.choice((-1, 0, 0, 1))
        if 120 <= s < 170:
            spo2 = 86
        if 400 <= s < 405:
            spo2 = None
        flags = ["sensor_off"] if spo2 is None else []
        sim.send(
            t,
            "oxi",
            spo2=spo2,
            pr=72 + rng.choice((-2, 0, 2)),
            spo2_age_s=0,
            flags=flags,
            quality="good",
            pi=2.5,
        )
        if s == 130:
            alarm(sim, t + 5, "SPO2_LOW", "medium", "active", "raise", 86, 90)
        if s == 140:
            alarm(sim, t + 5, "SPO2_LOW", "medium", "audio_paused", "ack", 86, 90, pause_s=120)
            sim.send(t + 5, "button", button="ack", affected=1)
        if s == 172:
            alarm(sim, t + 5, "SPO2_LOW", "medium", "inactive", "end", 95, 90)
        if s == 200:
            sim.send(t + 5, "nibp_state", state="starting", cuff=0)
        if s == 240:
            sim.send(t + 5, "nibp", sys=182, dia=95, map=124, pr=80, age_s=1)
            alarm(sim, t + 6, "NIBP_SYS_HIGH", "high", "latched", "raise", 182, 180)
        if s == 250:
            alarm(
                sim,
                t + 6,
                "NIBP_SYS_HIGH",
                "high",
                "latched_acknowledged",
                "ack",
                182,
                180,
                pause_s=120,
            )
            sim.send(t + 6, "button", button="ack", affected=1)
        if s == 300:
            sim.send(t + 7, "setting", name="spo2_low", value=88, old=90, by="nurse.kim")
            sim.send(
                t + 7,
                "reply",
                cmd="set",
                id=2,
                ok=True,
                name="spo2_low",
                value=88,
                old=90,
                changed=True,
            )
        if s == 320:
            sim.send(t + 7, "button", button="reset", affected=1)
            alarm(sim, t + 7, "NIBP_SYS_HIGH", "high", "inactive", "reset", 182, 180)
        if s == 350:
            sim.send(t + 8, "audio_off", on=True, reason="command", lease_s=60)
        if s == 410:
            sim.send(t + 8, "audio_off", on=False, reason="lease_expired", lease_s=60)
        if s == 401:
            alarm(sim, t + 9, "OXI_SENSOR_OFF", "low", "active", "raise")
        if s == 406:
            alarm(sim, t + 9, "OXI_SENSOR_OFF", "low", "inactive", "end")
        if s == 450:
            sim.send(t + 9, "fault", where="display", error="OSError: 5", count=1)
        if s == 500:
            sim.send(t + 9, "selftest", step="alarm_high", by="host")
        sim.send(
            t + 1,
            "heartbeat",
            priority="none",
            audible="none",
            top=None,
            alarms=[],
            active=[],
            audio_paused_s=0,
            audio_off=False,
            audio_off_left_s=None,
            phase="monitoring",
            rx_errors=0,
            tx_dropped=0,
            faults=0,
            storage_errors=0,
            display_errors=0,
            uptime_s=s,
        )
    # the device's own copy of the desaturation events, read back from the flash alarm log
    sim.send(
        seconds * 1000 + 50,
        "log",
        log="alarm",
        rec={
            "n": 3,
            "b": boot,
            "u": 130005,
            "condition": "SPO2_LOW",
            "priority": "medium",
            "state": "active",
            "event": "raise",
            "value": 86,
            "limit": 90,
        },
    )
    sim.send(
        seconds * 1000 + 51,
        "log",
        log="event",
        rec={
            "n": 2,
            "b": boot,
            "u": 300007,
            "event": "setting",
            "name": "spo2_low",
            "value": 88,
            "old": 90,
        },
    )
    return sim.out


def with_replays(stream: list[Received], seed: int = 1) -> list[Received]:
    """The same stream as a lossy link delivers it: some lines twice, some replayed later."""
    rng = random.Random(seed)
    out: list[Received] = []
    held: list[Received] = []
    for item in stream:
        r = rng.random()
        if r < 0.05:
            held.append(item)  # lost in transit, comes back by replay
            continue
        out.append(item)
        if r > 0.97:
            out.append(item)  # delivered twice
        if held and rng.random() < 0.2:
            out.extend(replace(h, replayed=True, rx_time=item.rx_time) for h in held)
            held.clear()
    out.extend(replace(h, replayed=True) for h in held)
    return out


BURST_CONDS = (("SPO2_LOW", "high"), ("PR_HIGH", "medium"), ("NIBP_SYS_HIGH", "medium"))


class LineSource:
    """A fake device line source with a DeviceLink's poll/close/state: ``per_poll`` fresh
    lines per poll (each received now), two alarm events for each oxi; ``paused`` until told
    (MQTT gateway and station tests)."""

    def __init__(
        self, sim: DeviceSim, count: int, per_poll: int = 5, paused: bool = False
    ) -> None:
        self.sim = sim
        self.left = count
        self.per_poll = per_poll
        self.state = "live"
        self.last_error = ""
        self.t_ms = 1000
        self.n = 0
        self.sent: list[Received] = []
        self.closed = False
        self.paused = paused

    def poll(self, timeout: float = 0.0) -> list[Received]:
        time.sleep(timeout)
        out: list[Received] = []
        for _ in range(0 if self.paused else min(self.per_poll, self.left)):
            self.left -= 1
            self.n += 1
            self.t_ms += 50
            if self.n % 3 == 0:
                r = self.sim.send(self.t_ms, "oxi", spo2=95, pr=70, flags=[], quality="good")
            else:
                cond, prio = BURST_CONDS[self.n % len(BURST_CONDS)]
                r = alarm(self.sim, self.t_ms, cond, prio, "active", "raise", 88, 90)
            now = time.time()
            item = Received(r.port, r.line, r.msg, now, now, False)
            out.append(item)
            self.sent.append(item)
        return out

    def close(self) -> None:
        self.closed = True
