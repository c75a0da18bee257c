"""DeviceLink against the real `bedside sil` (REQ-HOST-01, REQ-HOST-06): the SIL's host port is
a socket:// URL into a TCP relay that stands for the USB cable, so the test can pull the cable
while the firmware runs on, and kill and restart the SIL with the same flash (a power cut)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bedside_host.link import UNKNOWN_END
from bedside_host.link.client import DeviceLink
from linkutil import Collector

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _listener() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


class Cable:
    """A relay: the device side (the SIL connects) and the host side (the DeviceLink connects).
    unplug() drops the host side and refuses it until plug(); the device's bytes meanwhile go
    nowhere, as with a pulled USB cable."""

    def __init__(self) -> None:
        self.dev_srv = _listener()
        self.host_srv: socket.socket | None = _listener()
        self.dev_port = self.dev_srv.getsockname()[1]
        self.host_port = self.host_srv.getsockname()[1]
        self.dev: socket.socket | None = None
        self.host: socket.socket | None = None
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def unplug(self) -> None:
        with self.lock:
            for s in (self.host, self.host_srv):
                if s is not None:
                    s.close()
            self.host = self.host_srv = None

    def plug(self) -> None:
        with self.lock:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.host_port))
            s.listen(1)
            self.host_srv = s

    def _run(self) -> None:
        while not self.stop:
            with self.lock:
                socks = [x for x in (self.dev_srv, self.host_srv, self.dev, self.host) if x]
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue
            with self.lock:
                for s in ready:
                    if s is self.dev_srv:
                        if self.dev is not None:
                            self.dev.close()
                        self.dev, _ = s.accept()
                    elif s is self.host_srv:
                        if self.host is not None:
                            self.host.close()
                        self.host, _ = s.accept()
                    elif s is self.dev or s is self.host:
                        try:
                            data = s.recv(65536)
                        except OSError:
                            data = b""
                        other = self.host if s is self.dev else self.dev
                        if not data:
                            s.close()
                            if s is self.dev:
                                self.dev = None
                            else:
                                self.host = None
                        elif other is not None:
                            try:
                                other.sendall(data)
                            except OSError:
                                pass

    def close(self) -> None:
        self.stop = True
        self.thread.join(timeout=2)
        for s in (self.dev, self.host, self.dev_srv, self.host_srv):
            if s is not None:
                s.close()


def _sil(tmp: Path, cable: Cable) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "sil",
            "--host",
            f"socket://127.0.0.1:{cable.dev_port}",
            "--state-dir",
            str(tmp / "state"),
            "--annunciator-log",
            str(tmp / "ann.jsonl"),
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "host_tools")),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp,
    )
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())  # the ports line: it is running
    return proc


def test_device_link_with_the_real_sil(tmp_path: Path) -> None:
    """REQ-HOST-01, REQ-HOST-06: on the real firmware core: live; a pulled and re-plugged
    cable loses nothing the device still holds; a power cut and restart is detected, the
    old boot's tail reported as a gap, and the new boot followed from its start."""
    cable = Cable()
    sil = _sil(tmp_path, cable)
    link = DeviceLink(f"socket://127.0.0.1:{cable.host_port}", catch_up=False)
    c = Collector(link)
    try:
        c.until(lambda: link.state == "live", 15, "live")
        assert link.request("get_settings")["settings"]["spo2_low"] == 90
        boot = link.boot
        c.run(1.5)
        first = link.last_seq
        cable.unplug()
        c.until(lambda: link.state == "disconnected", 10, "disconnected")
        time.sleep(1.2)  # the firmware runs on: a few lines go nowhere
        cable.plug()
        c.until(lambda: link.state == "live" and not link.catching_up, 15, "back")
        c.run(1.0)
        assert link.stats.reconnects >= 1
        seqs = [s for s in c.seqs(boot or 0) if s >= first]
        assert set(range(first, link.last_seq + 1)) <= set(seqs)
        assert not [g for g in c.gaps if g.first_seq >= first]
        sil.send_signal(signal.SIGKILL)  # a power cut
        sil.communicate(timeout=10)
        sil = _sil(tmp_path, cable)
        c.until(lambda: link.stats.restarts == 1 and link.state == "live", 20, "restart")
        c.until(lambda: not link.catching_up, 15, "fill")
        tail = [g for g in c.gaps if g.last_seq == UNKNOWN_END]
        assert tail and "restarted" in tail[0].reason
        hello = [x for x in c.of("hello") if x.msg["seq"] <= 3 or x.msg.get("id") is not None]
        assert hello[-1].msg["reset_cause"] == "unclean"
    finally:
        link.close()
        if sil.poll() is None:
            sil.send_signal(signal.SIGTERM)
            try:
                sil.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                sil.kill()
        cable.close()
