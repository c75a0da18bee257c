"""The `bedside` command: subcommands, monitor --json and the live view (REQ-CLI-01,
REQ-HOST-18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bedside_host.cli import COMMANDS, build_parser
from bedside_host.commands.monitor import LinkView, View, render, value_text
from bedside_host.link import Gap, LinkStats, Received
from bedside_host.link.client import DeviceLink
from fakedevice import FakeDevice
from linkutil import PtyPeer
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


def _bedside(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bedside_host.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        **kw,
    )  # type: ignore[call-overload]


def test_help_lists_every_command() -> None:
    """REQ-CLI-01: `bedside --help` names every subcommand."""
    res = _bedside("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout
    assert set(COMMANDS) >= {"sil", "simulate", "monitor", "demo"}
    build_parser()  # every subcommand's options build


def test_monitor_json_prints_each_message() -> None:
    """REQ-CLI-01: --json prints each received message as one line; it greets and pings."""
    peer = PtyPeer()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "monitor",
            "--port",
            peer.path,
            "--json",
            "--duration",
            "3",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    peer.send(seq=1, boot=4, type="hello", t_ms=0, fw="x", log=None, id=None)
    peer.send(seq=2, boot=4, type="oxi", t_ms=1000, spo2=97, pr=72)
    peer.send(
        seq=3,
        boot=4,
        type="alarm",
        t_ms=1100,
        condition="SPO2_LOW",
        priority="medium",
        state="active",
        event="raise",
    )
    peer.raw(b"garbage\n")
    out, err = proc.communicate(timeout=10)
    sent = peer.commands()
    peer.close()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["seq"] for m in lines] == [1, 2, 3]
    assert lines[2]["condition"] == "SPO2_LOW"
    cmds = [c["cmd"] for c in sent]
    assert "hello" in cmds and "ping" in cmds


def test_monitor_bad_port_exit_2() -> None:
    """REQ-CLI-01: a port that cannot be opened gives exit 2 and a clear message."""
    res = _bedside("monitor", "--port", "/dev/does-not-exist", "--json", "--duration", "1")
    assert res.returncode == 2 and "cannot open" in res.stderr
    assert "Traceback" not in res.stderr


def test_monitor_db_needs_the_store(tmp_path: Path) -> None:
    """REQ-HOST-18: --db records into SQLite through bedside_host.store; where that module is
    missing the monitor says so and exits 2."""
    import importlib.util

    if importlib.util.find_spec("bedside_host.store") is not None:
        pytest.skip("the records store is present (its own tests cover --db)")
    peer = PtyPeer()
    res = _bedside("monitor", "--port", peer.path, "--db", str(tmp_path / "x.db"), "--json")
    peer.close()
    assert res.returncode == 2 and "bedside_host.store" in res.stderr


def _text(view: View, now: float | None = None) -> str:
    console = Console(record=True, width=120)
    console.print(render(view, time.time() if now is None else now))
    return console.export_text()


def _rx(msg: dict[str, object], replayed: bool = False, rx: float | None = None) -> Received:
    t = time.time() if rx is None else rx
    return Received("/dev/x", json.dumps(msg), dict(msg), t, t, replayed)


def test_value_text_direction_from_the_condition() -> None:
    """REQ-HOST-18: value against limit with the direction the condition implies."""
    assert value_text("PR_HIGH", 149, 130) == "PR 149 > 130"
    assert value_text("SPO2_LOW", 86, 90) == "SpO2 86 < 90"
    assert value_text("SPO2_DESAT", 80, 85) == "SpO2 80 < 85"
    assert value_text("NIBP_MAP_LOW", 60, 65) == "MAP 60 < 65"
    assert value_text("NIBP_SYS_HIGH", 190, 180) == "SYS 190 > 180"
    assert value_text("OXI_SENSOR_OFF", None, None) == ""


def test_live_view_shows_values_ages_sounding_and_alarms() -> None:
    """REQ-CLI-01, REQ-HOST-18: vitals with their age, the alarm list highest priority first
    with value and limit, what is sounding (audio paused with its countdown), NIBP with its
    time and the cuff, link state and errors; replayed history only in the events."""
    view = View()
    view.update_link(LinkView(url="/dev/x", state="live", boot=3, last_seq=9))
    now = time.time()
    view.apply(_rx({"type": "oxi", "seq": 2, "spo2": 86, "pr": 149, "flags": []}, rx=now - 1))
    view.apply(
        _rx(
            {
                "type": "heartbeat",
                "seq": 5,
                "priority": "high",
                "audible": "high",
                "alarms": [
                    {
                        "condition": "PR_HIGH",
                        "priority": "medium",
                        "state": "active",
                        "value": 149,
                        "limit": 130,
                        "age_s": 30,
                    },
                    {
                        "condition": "SPO2_DESAT",
                        "priority": "high",
                        "state": "active",
                        "value": 84,
                        "limit": 85,
                        "age_s": 5,
                    },
                ],
                "active": ["SPO2_DESAT", "PR_HIGH"],
                "audio_paused_s": 95,
                "audio_off": False,
                "nibp": {"sys": 150, "dia": 95, "map": 113, "pr": 80, "age_s": 300},
                "nibp_state": "measuring",
                "cuff": 142,
                "rx_errors": 2,
                "tx_dropped": 0,
            },
            rx=now - 1,
        )
    )
    view.apply(
        _rx(
            {
                "type": "alarm",
                "seq": 1,
                "condition": "PR_LOW",
                "priority": "medium",
                "state": "active",
                "event": "raise",
                "value": 40,
                "limit": 50,
            },
            replayed=True,
        )
    )
    text = _text(view, now)
    for s in (
        "LIVE",
        "86 %",
        "149 /min",
        "1 s ago",
        "SpO2 84 < 85",
        "PR 149 > 130",
        "AUDIO PAUSED 94 s",
        "150/95 (113) mmHg",
        "5 min ago",
        "cuff 142 mmHg",
        "device rx errors 2",
        "(earlier) PR_LOW",
    ):
        assert s in text, s
    assert text.index("SpO2 DESAT") < text.index("PULSE HIGH")  # highest priority first
    assert "PULSE LOW" not in text  # replayed history is not a current alarm


def test_live_view_marks_stale_values_and_audio_off() -> None:
    """REQ-HOST-18: values older than 3 s are marked STALE; AUDIO OFF shows its lease left."""
    view = View()
    view.update_link(LinkView(url="/dev/x", state="live"))
    now = time.time()
    view.apply(_rx({"type": "oxi", "seq": 2, "spo2": 97, "pr": 70, "flags": []}, rx=now - 10))
    view.apply(
        _rx(
            {
                "type": "heartbeat",
                "seq": 3,
                "priority": "none",
                "audible": "none",
                "alarms": [],
                "audio_off": True,
                "audio_off_left_s": 50,
                "audio_paused_s": 0,
            },
            rx=now - 2,
        )
    )
    text = _text(view, now)
    assert "10 s ago  STALE" in text and "AUDIO OFF (lease 48 s left)" in text


def test_live_view_never_says_live_when_down() -> None:
    """REQ-HOST-18: disconnected shows DISCONNECTED with the reason and the retry, and the last
    values as stale; a gap is shown in the events."""
    view = View()
    view.update_link(LinkView(url="/dev/x", state="live"))
    view.apply(_rx({"type": "oxi", "seq": 2, "spo2": 97, "pr": 70, "flags": []}))
    view.update_link(
        LinkView(
            url="/dev/x",
            state="disconnected",
            retry_in=1.6,
            last_error="port vanished",
            stats=LinkStats(gaps=1),
        )
    )
    view.apply(Gap("/dev/x", 3, 10, 20, "lost in transit; not held for replay", time.time()))
    text = _text(view)
    assert "DISCONNECTED: reconnecting in 1.6 s" in text and "port vanished" in text
    assert "LIVE" not in text and "LINK OK" not in text
    assert "STALE" in text and "GAP boot 3 seq 10..20" in text
    assert "link live -> disconnected" in text


def test_monitor_view_follows_the_device_away_and_back(tmp_path: Path) -> None:
    """REQ-HOST-18: on a real link the view goes DISCONNECTED when the port vanishes and LIVE
    again when it is back."""
    with FakeDevice(tmp_path, report_s=0.25) as dev:
        link = DeviceLink(dev.path)
        view = View()

        def step(until: str, timeout: float) -> str:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                for item in link.poll(0.05):
                    view.apply(item)
                view.update_link(LinkView.of(link, time.monotonic()))
                if link.state == until:
                    return _text(view)
            raise AssertionError(f"no {until}: {link.state}")

        assert "LIVE" in step("live", 10)
        dev.unplug()
        text = step("disconnected", 5)
        assert "DISCONNECTED" in text and " LIVE " not in text
        dev.plug()
        assert " LIVE " in step("live", 10)
        link.close()


def test_monitor_db_records_every_item_into_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-HOST-18: --db FILE hands every delivered message and gap to
    bedside_host.store.Store(FILE).add() and closes the store at the end; a failing write is
    reported and the monitor goes on."""
    import types

    from bedside_host.cli import main

    made: list[object] = []

    class Store:
        def __init__(self, path: str) -> None:
            self.path, self.items, self.closed, self.fail = path, [], False, True
            made.append(self)

        def add(self, item: object) -> None:
            if self.fail:
                self.fail = False
                raise OSError("disk full")
            self.items.append(item)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(sys.modules, "bedside_host.store", types.SimpleNamespace(Store=Store))
    with FakeDevice(tmp_path, report_s=0.25) as dev:
        code = main(
            [
                "monitor",
                "--port",
                dev.path,
                "--json",
                "--duration",
                "2",
                "--db",
                str(tmp_path / "r.db"),
            ]
        )
    out, err = capsys.readouterr()
    assert code == 0 and "recording to the database failed: disk full" in err
    (store,) = made
    assert store.path == str(tmp_path / "r.db") and store.closed
    printed = [json.loads(line) for line in out.splitlines()]
    assert len(store.items) >= len(printed) - 1 >= 4
    assert all(isinstance(x, (Received, Gap)) for x in store.items)
