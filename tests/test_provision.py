"""`bedside provision`, DeviceLink signing and key secrecy against the real `bedside sil`
(REQ-SEC-08, REQ-SEC-09): the SIL provisions itself; `bedside provision` replaces the key using
the old one; DeviceLink signs transparently; the key never shows in output, logs, the records
database, the state files other than the device's key file, or any process's command line."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bedside_host import keys
from bedside_host.link.client import DeviceLink
from bedside_host.link.messages import LinkError
from silharness import ROOT, Sil, sil_running

BEDSIDE = [sys.executable, "-m", "bedside_host.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


@pytest.fixture
def sil(tmp_path: Path) -> Iterator[Sil]:
    yield from sil_running(tmp_path)


def _bedside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BEDSIDE, *args], capture_output=True, text=True, env=ENV, timeout=60, check=False
    )


def _cmdlines() -> str:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                pass
    return "\n".join(out)


def test_sil_provisions_itself_and_devicelink_signs(sil: Sil) -> None:
    """REQ-SEC-08: the SIL makes its board id and key on first start (device copy on its
    flash, host copy in the key directory: file 0600, directory 0700); DeviceLink finds the key
    by the id in hello and signs; without the key the same command is refused."""
    dev_id = (sil.state / "board.id").read_text().strip()
    path = keys.key_dir() / f"{dev_id}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    link = DeviceLink(sil.ports["host"], operator="nurse a", catch_up=False)
    try:
        assert link.wait_live(15)
        assert link.hello is not None and link.hello["device"] == dev_id
        assert link.hello["auth"]["state"] == "provisioned" and link.has_key
        r = link.request("set", name="spo2_low", value=91)
        assert r["ok"] and r["value"] == 91
        link.use_key(None)  # as a host without the key
        with pytest.raises(LinkError) as e:
            link.request("set", name="spo2_low", value=92)
        assert "authentication required" in e.value.error
    finally:
        link.close()


def test_provision_replaces_the_key_and_it_never_leaks(sil: Sil, tmp_path: Path) -> None:
    """REQ-SEC-09: `bedside provision` replaces the key with the old one's authority; the
    new key is on the device's flash and in the host's key file only: never in the command's
    output, the SIL's output or logs, the records database, other state files or argv."""
    dev_id = (sil.state / "board.id").read_text().strip()
    old = keys.load_key(dev_id)
    assert old is not None
    port = sil.ports["host"]
    db = tmp_path / "rec.sqlite"
    p = _bedside("provision", "--port", port, "--operator", "biomed")
    assert p.returncode == 0, p.stderr
    new = keys.load_key(dev_id)
    assert new is not None and new != old
    argv = _cmdlines()
    s = _bedside("settings", "set", "spo2_low=92", "--port", port, "--operator", "nurse b")
    assert s.returncode == 0, s.stderr
    # one client on the port at a time (a USB port's way): the recorder catches up after
    rec = _bedside("record", "--port", port, "--db", str(db), "--duration", "4", "--quiet")
    rec_out, rec_err = rec.stdout, rec.stderr
    assert (sil.state / "auth.key").read_bytes().find(new.hex().encode()) > 0
    _rc, sil_out = sil.stop()
    texts = [p.stdout, p.stderr, s.stdout, s.stderr, rec_out, rec_err, sil_out, argv]
    for f in [*sil.state.iterdir(), sil.ann]:
        if f.is_file() and f.name != "auth.key":
            texts.append(f.read_bytes().decode(errors="replace"))
    con = sqlite3.connect(db)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        texts.append(repr(con.execute(f'SELECT * FROM "{name}"').fetchall()))
    assert con.execute("SELECT count(*) FROM raw_lines").fetchone()[0] > 0
    con.close()
    blob = "\n".join(texts)
    for k in (old, new):
        assert k.hex() not in blob and k.hex().upper() not in blob


def test_key_files_owner_only_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQ-SEC-08: host key files are 0600 in a 0700 directory, written atomically; a file
    that is not 64 hex characters is an error, an id that cannot name a file has no key."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    key = keys.new_key()
    path = keys.save_key("e6614103e7", key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert keys.load_key("e6614103e7") == key and keys.load_key("other") is None
    assert not list(path.parent.glob("*.tmp"))
    path.write_text("not a key\n")
    with pytest.raises(keys.KeyFileError):
        keys.load_key("e6614103e7")
    assert keys.load_key("../../etc/passwd") is None
    with pytest.raises(keys.KeyFileError):
        keys.save_key("../x", key)
