"""`bedside record`: links to store, clean stop, CLI help and errors (REQ-REC)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bedside_host.commands import record
from bedside_host.store import Store
from recordsim import PORT, Gap, session_stream, with_replays

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
    b.append(Gap("/dev/ttyACM1", 9, 70, 71, "lost in transit", 1.0))
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
