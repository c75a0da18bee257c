"""`bedside record`: links to store, clean stop, CLI help and errors (REQ-REC)."""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from bedside_host.commands import record
from bedside_host.link.messages import Gap
from bedside_host.sil.capture import read_capture
from bedside_host.store import Store
from recordsim import PORT, DeviceSim, alarm, session_stream, with_replays

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


def _bedside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bedside_host.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


class FakeLink:
    """Hands out a prepared stream a few items per poll, like a DeviceLink."""

    def __init__(self, items: Sequence[Any], per_poll: int = 7) -> None:
        self.items = list(items)
        self.per_poll = per_poll
        self.closed = False

    def poll(self, timeout: float = 0.0) -> list[Any]:
        out, self.items = self.items[: self.per_poll], self.items[self.per_poll :]
        return out

    def close(self) -> None:
        self.closed = True


def test_recorder_stores_every_port(tmp_path: Path) -> None:
    """REQ-REC-14: one link per port; every item of every port reaches the store; closing
    closes the links and commits the last batch."""
    a = with_replays(session_stream(boot=3, seconds=120))
    b: list[Any] = session_stream(boot=9, seconds=60, port="/dev/ttyACM1")
    top = max(i.msg["seq"] for i in b if i.msg["boot"] == 9)
    b.append(Gap("/dev/ttyACM1", 9, top + 1, top + 2, "lost in transit", 1.0))  # not stored
    links = {PORT: FakeLink(a), "/dev/ttyACM1": FakeLink(b)}
    rec = record.Recorder(Store(tmp_path / "r.db"), links)  # type: ignore[arg-type]
    while any(link.items for link in links.values()):
        rec.step(0.0)
    assert rec.items == {PORT: len(a), "/dev/ttyACM1": len(b)}
    rec.close()
    assert all(link.closed for link in links.values())
    st = Store(tmp_path / "r.db")
    assert st.counts()["raw_lines"] == len({i.line for i in a}) + len(b) - 1
    assert st.counts()["link_gaps"] == 1
    # each stream also carries flash-log records of the boot before it: two sessions a port
    assert sorted(s.device for s in st.sessions()) == [PORT, PORT] + ["/dev/ttyACM1"] * 2
    st.close()


def test_run_stops_on_flag_and_flushes(tmp_path: Path) -> None:
    """REQ-REC-14: a stop request (what SIGINT/SIGTERM set) ends run(); what was buffered is
    committed by close()."""
    items = session_stream(seconds=10)
    st = Store(tmp_path / "s.db", batch_items=10_000, batch_ms=1e9)
    link = FakeLink(items, per_poll=5)
    rec = record.Recorder(st, {PORT: link})  # type: ignore[dict-item]
    polls = [0]
    orig = link.poll

    def poll(timeout: float = 0.0) -> list[Any]:
        polls[0] += 1
        if polls[0] == 4:
            rec.stopping = True  # the signal handler's effect
        return orig(timeout)

    link.poll = poll  # type: ignore[method-assign]
    rec.run()
    assert polls[0] == 4 and st.pending == 20
    rec.close()
    st = Store(tmp_path / "s.db")
    assert st.counts()["raw_lines"] == 20
    st.close()


def test_record_help_and_errors_exit_2(tmp_path: Path) -> None:
    """REQ-REC-11: `bedside record --help` documents the options; a missing port, a port
    given twice, a file that is not a record file and a missing --db exit 2 with one line."""
    res = _bedside("record", "--help")
    assert res.returncode == 0
    for opt in ("--port", "--db", "--duration"):
        assert opt in res.stdout
    db = tmp_path / "r.db"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 200)
    cases = [
        (["--port", str(tmp_path / "ttyNONE"), "--db", str(db)], "no such port"),
        (["--port", "loop://", "--port", "loop://", "--db", str(db)], "given twice"),
        (["--port", "loop://", "--db", str(junk)], "not a record file"),
        (["--port", "loop://"], "--db"),
    ]
    for args, text in cases:
        res = _bedside("record", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert text in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) <= 3
    assert not db.exists()


def test_every_records_command_has_help() -> None:
    """REQ-REC-11: record, export and report are in the command table with their help."""
    res = _bedside("--help")
    assert res.returncode == 0
    for name in ("record", "export", "report"):
        assert name in res.stdout
        sub = _bedside(name, "--help")
        assert sub.returncode == 0 and "--db" in sub.stdout


def _wait_for(fd: int, text: bytes, timeout: float) -> bytes:
    """Read the pty master until `text` shows up (what the recorder's link wrote)."""
    got = b""
    end = time.monotonic() + timeout
    while text not in got and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            got += os.read(fd, 4096)
    return got


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_keeping_every_line(tmp_path: Path, sig: int) -> None:
    """REQ-REC-14: `bedside record` on a pty records every line the device wrote, and on
    SIGTERM or SIGINT exits 0 with the record committed."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    db = tmp_path / "rec.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bedside_host.cli", "record", "--port", port, "--db", str(db)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert b"hello" in _wait_for(master, b"hello", 20.0)  # the link opened the port
        sim = DeviceSim(boot=5, port=port)
        sim.send(0, "hello", fw="0.2.0", protocol=2, reset_cause="power_on", log=None, id=None)
        for s in range(1, 16):
            sim.send(s * 1000, "oxi", spo2=96, pr=70, spo2_age_s=0, flags=[], quality="good")
            sim.send(s * 1000 + 1, "heartbeat", priority="none", alarms=[], active=[])
            if s == 9:
                alarm(sim, s * 1000 + 2, "PR_LOW", "high", "active", "raise", 39, 40)
        items = sim.out
        for i in range(0, len(items), 5):
            os.write(master, b"".join(it.line.encode() + b"\n" for it in items[i : i + 5]))
            _wait_for(master, b"\x00", 0.02)  # drain what the link sends meanwhile
        _wait_for(master, b"\x00", 1.5)  # let the recorder read everything
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert "recorded" in err and "Traceback" not in err
    st = Store(db)
    lines = [r.line for r in st.raw_lines()]
    assert sorted(lines) == sorted(it.line for it in items)
    assert st.counts()["vitals"] == 15 and st.counts()["alarms"] == 1
    st.close()


def test_raw_capture_per_port_never_overwritten(tmp_path: Path) -> None:
    """REQ-HOST-38: `record --raw DIR` writes one host-link capture per port and run, named
    after the port and the UTC start, never over an existing one; each holds what the link's
    byte hook was given (the device's bytes with their receive times, the host's commands)
    and ends with its end line; a --raw that is not a directory is exit 2 with one line."""

    class HookLink(FakeLink):
        on_bytes: Any = None

        def poll(self, timeout: float = 0.0) -> list[Any]:
            out = super().poll(timeout)
            for item in out:
                self.on_bytes("device", (item.line + "\n").encode(), item.rx_time)
            if out:
                self.on_bytes("host", b'{"cmd":"ping","id":1}\n', 1.0)
            return out

    raw = tmp_path / "raw"
    stream = session_stream(boot=3, seconds=20)
    for _run in range(2):
        link = HookLink(stream)
        args = argparse.Namespace(
            port=["loop://ttyACM0"],
            db=tmp_path / "r.db",
            duration=0.5,
            quiet=True,
            raw=raw,
            mqtt=None,
            site=None,
        )
        assert record.run(args, lambda _url, link=link: link) == 0  # type: ignore[misc]
        assert link.closed
    caps = sorted(raw.glob("ttyACM0-*.capture"))
    assert len(caps) == 2  # the second run did not overwrite the first
    for path in caps:
        cap = read_capture(path)
        assert cap.complete and cap.source == "link" and cap.header["url"] == "loop://ttyACM0"
        dev = [
            (d, rx) for (_t, p, d), rx in zip(cap.records, cap.rx, strict=True) if p == "device"
        ]
        assert b"".join(d for d, _rx in dev) == b"".join((i.line + "\n").encode() for i in stream)
        assert [rx for _d, rx in dev] == [round(i.rx_time, 3) for i in stream]
        assert any(p == "host" for _t, p, _d in cap.records)
    notdir = tmp_path / "file"
    notdir.write_text("x")
    res = _bedside(
        "record", "--port", "loop://", "--db", str(tmp_path / "x.db"), "--raw", str(notdir)
    )
    assert res.returncode == 2 and "is not a directory" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
