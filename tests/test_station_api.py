"""The station's web interface through FastAPI's TestClient (HTTP and WebSocket), and the whole
one-process station (links in threads -> store -> model -> WebSocket) with fake links."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside_host.commands import station as station_cmd
from bedside_host.link.messages import Received
from bedside_host.station import history
from bedside_host.station.app import Hub, create_app
from bedside_host.station.model import StationModel
from bedside_host.store import SCHEMA_VERSION, Store
from fastapi.testclient import TestClient


def _line(mtype: str, seq: int, **f: Any) -> dict[str, Any]:
    return {"v": 2, "seq": seq, "boot": 1, "type": mtype, "t_ms": seq * 1000, **f}


def _item(port: str, m: dict[str, Any], rx: float) -> Received:
    return Received(port, json.dumps(m), m, rx, rx, False)


@pytest.fixture
def station(tmp_path: Path) -> Iterator[tuple[TestClient, StationModel, Path]]:
    db = tmp_path / "station.db"
    history.ensure_schema(db)
    model = StationModel()
    model.add_chair("bay1", "Bay 1", device="/dev/ttyACM0")
    model.add_chair("bay2", "Bay 2", device="/dev/ttyACM1")
    app = create_app(Hub(model, db, name="test"))
    with TestClient(app) as client:
        yield client, model, db


def _feed(client: TestClient, model: StationModel, chair: str, m: dict[str, Any]) -> None:
    """Model calls run in the app's event loop, as the link threads' deliveries do."""
    assert client.portal is not None
    client.portal.call(lambda: model.on_message(chair, m, time.time()))


def test_page_is_served_locally(station: tuple[TestClient, StationModel, Path]) -> None:
    """REQ-STA-07: the page is plain HTML/JS/CSS served by the station itself: no CDN, no
    external address, no build step."""
    client, _, _ = station
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith("/static/") for r in refs)
    for ref in refs:
        r = client.get(ref)
        assert r.status_code == 200
        assert not re.search(r"https?://", r.text.replace("http://www.w3.org", ""))
    assert client.get("/static/nothing.js").status_code == 404


def test_websocket_snapshot_then_deltas(station: tuple[TestClient, StationModel, Path]) -> None:
    """REQ-STA-06, REQ-STA-03: a browser gets a snapshot of every chair, then frames that carry
    only the chairs that changed (several messages of one chair within a frame: one tile, the
    latest), with the alarm list when it changed, ordered by priority then onset."""
    client, model, _ = station
    with client.websocket_connect("/ws") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and snap["order"] == ["bay1", "bay2"]
        assert [t["label"] for t in snap["tiles"]] == ["Bay 1", "Bay 2"]
        assert all(t["offline"] for t in snap["tiles"])  # nothing heard yet: never "normal"

        def burst() -> None:
            for seq in range(2, 6):
                model.on_message("bay2", _line("oxi", seq, spo2=90 + seq, pr=70), time.time())

        assert client.portal is not None
        client.portal.call(model.on_link_state, "bay2", "live")
        client.portal.call(burst)
        frame = ws.receive_json()
        while frame["type"] == "tick" or not frame["tiles"]:
            frame = ws.receive_json()
        tiles = {t["id"]: t for t in frame["tiles"]}
        assert list(tiles) == ["bay2"]
        assert (tiles["bay2"]["spo2"], tiles["bay2"]["seq"], tiles["bay2"]["offline"]) == (
            95,
            5,
            False,
        )
        client.portal.call(model.on_link_state, "bay1", "live")
        _feed(
            client,
            model,
            "bay1",
            _line(
                "heartbeat",
                7,
                alarms=[
                    {
                        "condition": "PR_HIGH",
                        "priority": "medium",
                        "state": "active",
                        "kind": "physiological",
                        "value": 149,
                        "limit": 130,
                        "age_s": 30,
                    }
                ],
            ),
        )
        _feed(
            client,
            model,
            "bay2",
            _line(
                "alarm",
                8,
                condition="SPO2_DESAT",
                priority="high",
                state="active",
                event="raise",
                kind="physiological",
                value=84,
                limit=85,
            ),
        )
        deadline = time.monotonic() + 15  # an upper bound for a loaded machine
        alarms: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(alarms) < 2:
            f = ws.receive_json()
            alarms = f.get("alarms", alarms)
        assert [(a["chair"], a["value_text"]) for a in alarms] == [
            ("bay2", "SpO2 84<85"),
            ("bay1", "PR 149>130"),
        ]


def test_audio_off_needs_a_named_user_and_is_audited(
    station: tuple[TestClient, StationModel, Path],
) -> None:
    """REQ-STA-05: switching the station audio off without a user name is refused with a
    readable error and changes nothing; with a name it is recorded in the station_audit table
    (user, action, reason) and pushed to every browser; switching it on is audited too; the
    120 s pause needs no name. Nothing is sent to a bedside device."""
    client, model, db = station
    for body in ({}, {"user": ""}, {"user": "   "}, {"user": "x" * 40}):
        r = client.post("/api/audio/off", json=body)
        assert r.status_code == 400 and "user name" in r.json()["error"]
    assert client.post("/api/audio/off", json={"user": 5}).status_code == 422
    assert (
        client.post(
            "/api/audio/off", content=b"not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert model.audio_state()["mode"] == "on" and client.get("/api/audit").json() == []
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        r = client.post("/api/audio/off", json={"user": " Charge RN Kim ", "reason": "drill"})
        assert r.status_code == 200 and r.json()["mode"] == "off"
        f = ws.receive_json()
        while "audio" not in f:
            f = ws.receive_json()
        assert (f["audio"]["mode"], f["audio"]["off_by"]) == ("off", "Charge RN Kim")
    r = client.post("/api/audio/on", json={})
    assert r.status_code == 400
    assert client.post("/api/audio/on", json={"user": "RN Lee"}).json()["mode"] == "on"
    p = client.post("/api/audio/pause", json={})
    assert p.status_code == 200 and p.json()["mode"] == "paused"
    rows = [(a["user"], a["action"], a["detail"]) for a in client.get("/api/audit").json()]
    assert rows[:3][::-1] == [
        ("Charge RN Kim", "audio_off", "drill"),
        ("RN Lee", "audio_on", None),
        ("", "audio_pause", rows[0][2]),
    ]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM station_audit").fetchone()[0] == 3
    conn.close()


def test_history_of_a_chair_from_the_record_file(
    station: tuple[TestClient, StationModel, Path],
) -> None:
    """REQ-STA-08: a chair's trends (SpO2 and pulse, NIBP) and alarm history come from the
    record file the station writes; unknown chairs and bad windows get a readable error."""
    client, _, db = station
    now = time.time()
    with Store(db) as st:
        for i in range(30):
            st.add(
                _item(
                    "/dev/ttyACM0",
                    _line("oxi", i + 1, spo2=97 - (i > 20) * 10, pr=70),
                    now - 30 + i,
                )
            )
        st.add(
            _item(
                "/dev/ttyACM0",
                _line("nibp", 40, sys=131, dia=84, map=100, pr=72, age_s=2),
                now - 5,
            )
        )
        st.add(
            _item(
                "/dev/ttyACM0",
                _line(
                    "alarm",
                    41,
                    condition="SPO2_DESAT",
                    priority="high",
                    state="active",
                    event="raise",
                    kind="physiological",
                    value=87,
                    limit=88,
                ),
                now - 8,
            )
        )
        st.add(_item("/dev/ttyACM1", _line("oxi", 1, spo2=99, pr=60), now - 3))
    h = client.get("/api/chairs/bay1/history", params={"minutes": 10}).json()
    assert h["label"] == "Bay 1" and len(h["vitals"]) == 30
    assert [v["spo2"] for v in h["vitals"]][-1] == 87 and h["vitals"][0]["pr"] == 70
    assert [(n["sys"], n["dia"]) for n in h["nibp"]] == [(131, 84)]
    assert [(a["condition"], a["event"], a["value"]) for a in h["alarms"]] == [
        ("SPO2_DESAT", "raise", 87)
    ]
    assert len(client.get("/api/chairs/bay2/history").json()["vitals"]) == 1
    r = client.get("/api/chairs/nobody/history")
    assert r.status_code == 404 and "nobody" in r.json()["error"]
    assert client.get("/api/chairs/bay1/history", params={"minutes": 0}).status_code == 422
    assert client.get("/api/chairs/bay1/history", params={"minutes": "x"}).status_code == 422


class FakeLink:
    """A DeviceLink stand-in: live, one oxi + heartbeat per poll step, as a device each second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.state = "live"
        self.last_error = ""
        self.seq = 0
        self.closed = False
        self.next_at = 0.0

    def poll(self, timeout: float = 0.0) -> list[Received]:
        time.sleep(timeout)
        now = time.time()
        if now < self.next_at:
            return []
        self.next_at = now + 0.2
        self.seq += 2
        return [
            _item(self.url, _line("oxi", self.seq - 1, spo2=96, pr=60 + self.seq % 20), now),
            _item(self.url, _line("heartbeat", self.seq, alarms=[], phase="MONITOR"), now),
        ]

    def close(self) -> None:
        self.closed = True


def test_one_process_station_records_and_pushes(tmp_path: Path) -> None:
    """REQ-STA-09: `bedside station` runs the links in threads, records every item in the
    record file (as `bedside record` does) and pushes the chairs to a WebSocket client from one
    event loop; stopping closes the links and commits the last batch; a bad option is exit 2."""
    import websockets

    db = tmp_path / "st.db"
    links: list[FakeLink] = []

    def open_link(url: str) -> FakeLink:
        links.append(FakeLink(url))
        return links[-1]

    chairs = station_cmd.chair_specs(["loop://a", "loop://b"], ["Bay A"])
    assert [c.label for c in chairs] == ["Bay A", "Chair 2"]
    said: list[str] = []
    got: dict[str, Any] = {}

    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(
            station_cmd.serve(
                chairs, db, "127.0.0.1", 0, open_link=open_link, announce=said.append, stop=stop
            )
        )
        while not said:
            await asyncio.sleep(0.02)
        url = re.search(r"http://([^/]+)/", said[0])
        assert url is not None
        async with websockets.connect(f"ws://{url.group(1)}/ws") as ws:
            snap = json.loads(await ws.recv())
            got["snapshot"] = snap
            seen: dict[str, int] = {}
            end = time.monotonic() + 10
            while time.monotonic() < end and (len(seen) < 2 or min(seen.values()) < 10):
                f = json.loads(await ws.recv())
                for t in f.get("tiles", ()):
                    seen[t["id"]] = t["seq"] or 0
            got["seen"] = seen
        stop.set()
        return await task

    assert asyncio.run(main()) == 0
    assert got["snapshot"]["order"] == ["Bay A", "Chair 2"]
    assert set(got["seen"]) == {"Bay A", "Chair 2"} and min(got["seen"].values()) >= 10
    assert all(link.closed for link in links)
    conn = sqlite3.connect(db)
    recorded = dict(conn.execute("SELECT device, count(*) FROM raw_lines GROUP BY device"))
    actions = [r[0] for r in conn.execute("SELECT action FROM station_audit ORDER BY id")]
    conn.close()
    assert recorded == {"loop://a": links[0].seq, "loop://b": links[1].seq}  # every line
    assert actions == ["start", "stop"]
    assert station_cmd.run(_args(port=[], db=db)) == 2
    assert station_cmd.run(_args(port=["loop://a", "loop://a"], db=db)) == 2
    assert station_cmd.run(_args(port=["loop://a"], db=db, http="localhost")) == 2
    assert station_cmd.run(_args(port=["loop://a"], db=db, chair=["a", "b"])) == 2
    notdb = tmp_path / "not.db"
    notdb.write_text("hello, not a database\n" * 100)
    assert station_cmd.run(_args(port=["loop://a"], db=notdb)) == 2


def _args(**kw: Any) -> Any:
    import argparse

    base = {"port": [], "chair": [], "db": Path("x.db"), "http": "127.0.0.1:0", "duration": 0.0}
    base.update(kw)
    return argparse.Namespace(**base)


def test_link_thread_hands_states_to_the_loop() -> None:
    """REQ-STA-04: a link that stops being live reaches the model as a link state (the tile
    goes offline at once), delivered on the event loop thread."""
    from bedside_host.station.links import LinkThread

    class Dying(FakeLink):
        def poll(self, timeout: float = 0.0) -> list[Received]:
            out = super().poll(timeout)
            if self.seq >= 6:
                self.state, self.last_error = "disconnected", "the device went away"
            return out

    got: list[tuple[str, str | None, str, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        main_thread = threading.get_ident()

        def deliver(chair: str, msgs: list[Any], state: str | None, detail: str) -> None:
            assert threading.get_ident() == main_thread
            got.append((chair, state, detail, ",".join(str(m["seq"]) for m, _ in msgs)))

        t = LinkThread("c", Dying("loop://"), loop, deliver, None)
        t.start()
        while not any(s == "disconnected" for _, s, _, _ in got):
            await asyncio.sleep(0.05)
        t.stop()
        await asyncio.to_thread(t.join, 5)

    asyncio.run(main())
    assert got[0][1] == "live"
    dead = next(g for g in got if g[1] == "disconnected")
    assert dead[2] == "the device went away"


def test_busy_address_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-STA-09: an address the station cannot serve on is exit 1 with one line naming it (no
    traceback), and nothing is started."""
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        rc = station_cmd.run(
            _args(port=["loop://"], db=tmp_path / "b.db", http=f"127.0.0.1:{port}"),
            open_link=FakeLink,
        )
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert rc == 1 and f"cannot serve on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_station_sends_only_allowed_commands_through_the_link_thread() -> None:
    """REQ-STA-13: the station sends a device command only through the chair's link thread
    (DeviceLink.request, never a second writer) and only from its allow-list (get_session,
    get_settings, session): acknowledge, reset, audio off, NIBP, settings, self-test and
    provisioning are refused before anything is sent, also on the session forms' path; a
    link problem comes back to the caller."""
    from bedside_host.link.messages import LinkTimeout
    from bedside_host.station.links import LinkThread, StoreThread
    from bedside_host.station.sessions import ChairLink

    class Answering(FakeLink):
        def __init__(self, url: str) -> None:
            super().__init__(url)
            self.requests: list[tuple[str, dict[str, Any], int]] = []

        def request(self, cmd: str, timeout: float = 3.0, **fields: Any) -> dict[str, Any]:
            self.requests.append((cmd, fields, threading.get_ident()))
            if fields.get("slow"):
                raise LinkTimeout(f"no reply to {cmd} within {timeout:g} s")
            return {"type": "reply", "cmd": cmd, "ok": True, "session": {"phase": "idle"}}

    link = Answering("loop://")
    got: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        hub = Hub(StationModel(), None)
        t = LinkThread("c", link, loop, lambda *a: None, None)
        hub.commanders["c"] = t.submit
        t.start()
        try:
            got["reply"] = await hub.command("c", "get_session", {})
            chair_link = ChairLink("loop://", t, StoreThread(Path("unused.db")), hub.allowed)
            for cmd in ("ack", "reset", "audio_off", "nibp", "set", "selftest", "provision"):
                with pytest.raises(PermissionError):
                    await hub.command("c", cmd, {"on": True})
                with pytest.raises(PermissionError):  # the session forms' path, too
                    chair_link.request(cmd, 1.0, on=True)
            assert hub.allowed == {"get_session", "get_settings", "session"}
            with pytest.raises(LinkTimeout):
                await hub.command("c", "get_session", {"slow": True})
            with pytest.raises(KeyError):
                await hub.command("nobody", "get_session", {})
        finally:
            t.stop()
            await asyncio.to_thread(t.join, 5)
        got["thread"] = t.ident

    asyncio.run(main())
    assert got["reply"]["session"] == {"phase": "idle"}
    assert [(c, f) for c, f, _ in link.requests] == [
        ("get_session", {}),
        ("get_session", {"slow": True}),
    ]
    assert {ident for *_, ident in link.requests} == {got["thread"]}


def test_websocket_from_another_site_is_refused(
    station: tuple[TestClient, StationModel, Path],
) -> None:
    """REQ-STA-07: a WebSocket opened by another site's page (its Origin is not the station's
    address) is closed before any chair data is sent; the station's own page is served."""
    from starlette.websockets import WebSocketDisconnect

    client, _, _ = station
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"origin": "http://evil.example"}) as ws,
    ):
        ws.receive_json()
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "snapshot"
