"""The station answers only to its own names (Host header check against DNS rebinding)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from bedside_host.station import history
from bedside_host.station.app import Hub, create_app
from bedside_host.station.hosts import host_of, station_hosts
from bedside_host.station.model import StationModel
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

ROOT = Path(__file__).resolve().parents[1]


def test_host_header_parsing() -> None:
    """REQ-STA-40: the host part of a Host header: port and IPv6 brackets taken off, lower
    case, a trailing dot ignored; an empty header names no host."""
    assert host_of("[::1]:8080") == "::1"
    assert host_of("Station.Clinic:8080") == "station.clinic"
    assert host_of("station.clinic.") == "station.clinic"
    assert host_of("127.0.0.1") == "127.0.0.1"
    assert host_of("") == "" and host_of("[") == ""


def test_station_names() -> None:
    """REQ-STA-40: a station bound to loopback answers to the loopback names only; bound to one
    address, to that address too; bound to all interfaces, to this PC's name; --allow-host adds
    names."""
    assert station_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert "10.1.2.3" in station_hosts("10.1.2.3")
    wide = station_hosts("0.0.0.0", ["Ward3.Clinic"])
    assert socket.gethostname().lower() in wide and "ward3.clinic" in wide
    assert "evil.example" not in wide


def test_requests_for_another_host_are_refused(tmp_path: Path) -> None:
    """REQ-STA-40: with its names given, the app answers a request naming another host with a
    readable 400 and refuses such a WebSocket handshake, before any page, data or audio action;
    requests naming the station are served."""
    db = tmp_path / "station.db"
    history.ensure_schema(db)
    model = StationModel()
    model.add_chair("bay1", "Bay 1", device="/dev/ttyACM0")
    app = create_app(Hub(model, db, name="t"), station_hosts("127.0.0.1"))
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        assert client.get("/api/state").status_code == 200
        assert client.get("/", headers={"host": "localhost:8080"}).status_code == 200
        for path in ("/", "/api/state", "/api/audit"):
            r = client.get(path, headers={"host": "evil.example:8080"})
            assert r.status_code == 400 and "--allow-host" in r.text
        r = client.post(
            "/api/audio/off", json={"user": "Mallory"}, headers={"host": "evil.example"}
        )
        assert r.status_code == 400 and model.audio_state()["mode"] == "on"
        with client.websocket_connect("/ws", headers={"host": "127.0.0.1:8080"}) as ws:
            assert ws.receive_json()["type"] == "snapshot"
        with (
            pytest.raises(WebSocketDisconnect),
            client.websocket_connect("/ws", headers={"host": "evil.example"}) as ws,
        ):
            ws.receive_json()


def _get(port: int, host: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/api/state", headers={"Host": host})
        return c.getresponse().status
    finally:
        c.close()


@pytest.mark.slow
def test_bedside_station_checks_the_host(tmp_path: Path) -> None:
    """REQ-STA-40: `bedside station` always checks the Host header: its loopback names and the
    names given with --allow-host are served, any other is refused; a malformed --allow-host is a
    usage error (exit 2, one line)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    base = [sys.executable, "-m", "bedside_host.cli", "station", "--db", str(tmp_path / "s.db")]
    bad = subprocess.run(
        [*base, "--port", "loop://", "--allow-host", "a/b"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "--allow-host 'a/b'" in bad.stderr
    proc = subprocess.Popen(
        [*base, "--port", "loop://", "--http", "127.0.0.1:0", "--allow-host", "ward3.clinic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Bedside station: http://127.0.0.1:"), first
        port = int(first.split()[2].rstrip("/").rsplit(":", 1)[1])
        assert _get(port, f"127.0.0.1:{port}") == 200
        assert _get(port, f"localhost:{port}") == 200
        assert _get(port, f"ward3.clinic:{port}") == 200
        assert _get(port, f"evil.example:{port}") == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)
