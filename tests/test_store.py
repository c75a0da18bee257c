"""The flash store contract (bedside.alarmlog header) on every implementation, with real files:
board/rp2040.py FlashStore (fake machine module, CPython os), the SIL's DirStore, the tests'
FileStore and MemStore; and the logs on a real directory that holds a directory in place of a
segment, or that cannot be written.

REQ-LOG-06 one store interface (read, write, append, size, read_into) behaves the same in all.
REQ-LOG-07 write() is atomic and verified: a read-back mismatch raises OSError, old file kept.
REQ-LOG-04 / REQ-LOG-11 corrupt layout or an unwritable store never crash the log or the queue.
"""

from __future__ import annotations

import builtins
import os
import stat
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside.alarmlog import AlarmLog
from bedside.persist import RETRIES, Persist
from bedside_host.sil import pcboard
from bedside_host.sil.pcboard import DirStore
from fakes import MemStore
from filestore import FileStore


class _Dummy:
    OUT = IN = PULL_UP = PULL_DOWN = 0

    def __init__(self, *a: Any, **k: Any) -> None:
        pass


@pytest.fixture
def rp2040(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """board.rp2040 imported on CPython with stand-ins for the Pico-only modules."""
    machine = types.ModuleType("machine")
    for name in ("Pin", "PWM", "UART", "WDT", "I2C"):
        setattr(machine, name, _Dummy)
    framebuf = types.ModuleType("framebuf")
    framebuf.FrameBuffer = _Dummy  # type: ignore[attr-defined]
    framebuf.MONO_VLSB = 0  # type: ignore[attr-defined]
    micropython = types.ModuleType("micropython")
    micropython.kbd_intr = lambda c: None  # type: ignore[attr-defined]
    micropython.const = lambda x: x  # type: ignore[attr-defined]
    for name, mod in (("machine", machine), ("framebuf", framebuf), ("micropython", micropython)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "board.rp2040", raising=False)
    import board.rp2040 as mod

    yield mod
    sys.modules.pop("board.rp2040", None)


KINDS = ("flash", "dir", "file", "mem")


def _make(kind: str, root: Path, rp2040: Any) -> Any:
    if kind == "flash":
        return rp2040.FlashStore(str(root))
    if kind == "dir":
        return DirStore(root)
    if kind == "file":
        return FileStore(str(root))
    return MemStore()


@pytest.mark.parametrize("kind", KINDS)
def test_store_contract(kind: str, tmp_path: Path, rp2040: Any) -> None:
    """REQ-LOG-06: read/size/read_into of a missing file give None/None/0; write replaces
    atomically (no temp file left); append adds; read_into fills a buffer or a memoryview
    slice from any offset and gives 0 at and past the end."""
    s = _make(kind, tmp_path / "s", rp2040)
    assert s.read("a") is None and s.size("a") is None
    buf = bytearray(8)
    assert s.read_into("a", 0, buf) == 0
    s.write("a", b"hello")
    s.write("a", b"hello, world")
    assert s.read("a") == b"hello, world" and s.size("a") == 12
    s.append("a", b"!\n")
    s.append("b", b"new")
    assert s.read("a") == b"hello, world!\n" and s.read("b") == b"new" and s.size("a") == 14
    assert s.read_into("a", 0, buf) == 8 and buf == b"hello, w"
    assert s.read_into("a", 10, buf) == 4 and buf[:4] == b"ld!\n"
    mv = memoryview(buf)
    assert s.read_into("a", 7, mv[2:5]) == 3 and buf[2:5] == b"wor"
    assert s.read_into("a", 14, buf) == 0 and s.read_into("a", 99, buf) == 0
    s.write("c", b"")
    assert s.size("c") == 0 and s.read("c") == b""
    if kind != "mem":
        assert sorted(os.listdir(tmp_path / "s")) == ["a", "b", "c"]
    else:
        assert sorted(s.files.keys()) == ["a", "b", "c"]


class _BadFile:
    """A file opened "wb" whose first byte reaches the disk flipped (a bad flash page)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.first = True

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self.first and data:
            data = bytes([data[0] ^ 1]) + data[1:]
            self.first = False
        return int(self.f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _BadFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def _flip_writes(path: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
    f = builtins.open(path, mode, *a, **k)
    return _BadFile(f) if mode == "wb" else f


@pytest.mark.parametrize("kind", KINDS)
def test_write_is_verified(
    kind: str, tmp_path: Path, rp2040: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ-LOG-07: write() reads the temp file back before the rename: a mismatch raises
    OSError, the old file is unchanged and no temp file is left."""
    s = _make(kind, tmp_path / "s", rp2040)
    s.write("settings.json", b'{"spo2_low": 88}')
    with monkeypatch.context() as m:
        if kind == "mem":
            s.bad_writes = True
        else:
            module = {"flash": rp2040, "dir": pcboard, "file": sys.modules["filestore"]}[kind]
            m.setattr(module, "open", _flip_writes, raising=False)
        with pytest.raises(OSError):
            s.write("settings.json", b'{"spo2_low": 90}')
    assert s.read("settings.json") == b'{"spo2_low": 88}'
    names = sorted(s.files.keys()) if kind == "mem" else sorted(os.listdir(tmp_path / "s"))
    assert names == ["settings.json"]


@pytest.mark.parametrize("kind", ("flash", "dir", "file"))
def test_directory_in_place_of_a_segment_on_disk(kind: str, tmp_path: Path, rp2040: Any) -> None:
    """REQ-LOG-04: on a real filesystem a directory named alarmlog.0 (reads raise
    IsADirectoryError) is corrupt data: open() does not raise; the queue's one failed write
    sets fault, the record goes to the next segment, and everything reads back."""
    root = tmp_path / "s"
    (root / "alarmlog.0").mkdir(parents=True)
    s = _make(kind, root, rp2040)
    alog = AlarmLog(s)
    elog = AlarmLog(s, prefix="eventlog.")
    assert alog.open() == 1 and elog.open(boot=1) == 1
    p = Persist(s, alog, elog)
    for k in range(3):
        assert p.log_alarm(k, {"event": "raise", "k": k})
    assert p.step() and p.fault and "alarm log" in (p.last_error or "")
    while p.step():
        pass
    assert not p.fault and p.dropped == 0 and p.errors == 1
    again = AlarmLog(s)
    assert again.open() == 2 and again.seq == 3
    assert [r["k"] for r in again.read(0, 10)] == [0, 1, 2]
    assert (root / "alarmlog.0").is_dir() and (root / "alarmlog.1").is_file()


def _unprivileged(fn: Callable[[], None]) -> None:
    """Run fn as an ordinary user (root ignores file permissions): in a child process that
    drops to uid/gid 65534 when the tests run as root; assertion failures come back."""
    if os.geteuid() != 0:
        fn()
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        msg = b"ok"
        try:
            os.setgid(65534)
            os.setuid(65534)
            fn()
        except BaseException as e:  # everything goes back to the parent
            msg = repr(e).encode()[:4000]
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read()
    os.waitpid(pid, 0)
    assert msg == b"ok", msg.decode()


def test_read_only_directory_store() -> None:
    """REQ-LOG-11: a store that cannot be written (read-only directory and files): the log
    opens and reads all it holds; every write fails with an OSError that the queue reports
    (fault, last_error) without ever raising; records are retried, then dropped and counted."""
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        root = Path(top) / "state"
        s = DirStore(root)
        alog = AlarmLog(s, segments=2, per_segment=4)
        alog.open()
        for k in range(6):
            alog.append(k, {"event": "raise", "k": k})
        s.write("settings.json", b"{}")
        for path in root.iterdir():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        root.chmod(0o555)

        def check() -> None:
            ro = DirStore(root)
            alog = AlarmLog(ro, segments=2, per_segment=4)
            elog = AlarmLog(ro, prefix="eventlog.", segments=2, per_segment=4)
            assert alog.open() == 2 and alog.seq == 6
            assert elog.open(boot=2) == 2
            assert [r["k"] for r in alog.read(0, 10)] == list(range(6))
            p = Persist(ro, alog, elog)
            p.log_alarm(1, {"event": "raise"})
            p.log_event(2, {"event": "setting"})
            p.save("settings.json", b'{"spo2_low": 88}')
            for _ in range(3 * RETRIES + 3):
                p.step()
            assert p.fault and p.pending() == 0 and p.dropped == 3
            assert p.errors == 3 * RETRIES and "Permission" in (p.last_error or "")
            assert ro.read("settings.json") == b"{}"

        try:
            _unprivileged(check)
        finally:
            root.chmod(0o755)
