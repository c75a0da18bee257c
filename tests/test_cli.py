"""The `bedside` command: subcommands, monitor --json and the live view (REQ-CLI-01)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tty
from pathlib import Path

from bedside_host.cli import COMMANDS, build_parser
from bedside_host.commands.monitor import View, render
from bedside_host.linkclient import LinkClient
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


def test_monitor_json_prints_each_message(tmp_path: Path) -> None:
    """REQ-CLI-01: --json prints each received message as one line; it greets and pings."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "monitor",
            "--port",
            path,
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
    msgs = [
        {"v": 1, "seq": 1, "type": "hello", "t_ms": 0, "fw": "x"},
        {"v": 1, "seq": 2, "type": "oxi", "t_ms": 1000, "spo2": 97, "pr": 72},
        {
            "v": 1,
            "seq": 3,
            "type": "alarm",
            "t_ms": 1100,
            "condition": "SPO2_LOW",
            "priority": "medium",
            "state": "active",
        },
    ]
    os.write(master, b"".join((json.dumps(m) + "\n").encode() for m in msgs) + b"garbage\n")
    out, err = proc.communicate(timeout=10)
    sent = os.read(master, 4096).decode()
    os.close(master)
    os.close(slave)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["seq"] for m in lines] == [1, 2, 3]
    assert lines[2]["condition"] == "SPO2_LOW"
    cmds = [json.loads(line)["cmd"] for line in sent.splitlines()]
    assert "hello" in cmds and "ping" in cmds


def test_monitor_bad_port_exit_2() -> None:
    """REQ-CLI-01: a port that cannot be opened gives exit 2 and a clear message."""
    res = _bedside("monitor", "--port", "/dev/does-not-exist", "--json", "--duration", "1")
    assert res.returncode == 2 and "cannot open" in res.stderr


def test_live_view_shows_alarm_with_priority_and_vitals() -> None:
    """REQ-CLI-01: the live view shows vitals, the alarm with its priority and link health."""
    view = View()
    view.apply({"type": "oxi", "seq": 2, "spo2": 86, "pr": 91, "flags": []})
    view.apply(
        {
            "type": "alarm",
            "seq": 3,
            "condition": "SPO2_LOW",
            "priority": "medium",
            "state": "active",
            "event": "raise",
            "value": 86,
            "limit": 90,
        }
    )
    view.apply({"type": "nibp", "seq": 4, "sys": 150, "dia": 95, "map": 113, "age_s": 300})
    view.apply(
        {
            "type": "heartbeat",
            "seq": 5,
            "priority": "medium",
            "active": ["SPO2_LOW"],
            "audio_paused_s": 95,
        }
    )
    view.apply(
        {
            "type": "alarm",
            "seq": 1,
            "replayed": True,
            "condition": "PR_HIGH",
            "priority": "medium",
            "state": "active",
            "event": "raise",
        }
    )

    class _Port:
        def close(self) -> None:
            pass

    console = Console(record=True, width=100)
    console.print(render(view, LinkClient(_Port()), "/dev/x"))
    text = console.export_text()
    for s in (
        "86 %",
        "91 /min",
        "SPO2_LOW",
        "MEDIUM",
        "86 / 90",
        "150/95 (113)",
        "5 min ago",
        "AUDIO PAUSED 95 s",
        "NO LINK",
    ):
        assert s in text, s
    assert "PR_HIGH" in text and "(earlier)" in text  # replayed history goes to events only
    assert "PR_HIGH" not in view.alarms
