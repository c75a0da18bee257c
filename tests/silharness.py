"""Start `bedside sil` as a peer would (the SIL contract), for tests and the bench harness."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bedside_host.keys import load_key
from mputil import nonin2_packet

ROOT = Path(__file__).resolve().parents[1]
BEDSIDE = [sys.executable, "-m", "bedside_host.cli"]


def start_bedside(*args: str, log: Path, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """`bedside ARGS` in its own process (this tree's host tools), stdout (unless piped) and
    stderr appended to `log`."""
    out = open(log, "ab")
    try:
        return subprocess.Popen(
            [*BEDSIDE, *args],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "host_tools")),
            stdout=stdout if stdout is not None else out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    finally:
        out.close()


def stop_process(p: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Signal a process and wait for its exit code (SIGKILL after 30 s)."""
    if p.poll() is None:
        os.kill(p.pid, sig)
    try:
        return p.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        return p.wait(10)


class Sil:
    """A running `bedside sil` with its ports opened from the peer side."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.ann = tmp / "annunciator.jsonl"
        self.state = tmp / "state"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
        self.proc = subprocess.Popen(
            [
                *BEDSIDE,
                "sil",
                "--annunciator-log",
                str(self.ann),
                "--state-dir",
                str(self.state),
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        self.ports: dict[str, str] = json.loads(first)
        self.fds = {
            k: os.open(v, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK) for k, v in self.ports.items()
        }
        self._host_buf = b""
        self._ctr = 0
        self.messages: list[dict[str, Any]] = []

    def signed(self, obj: dict[str, Any]) -> bytes:
        """A state-changing command line signed as DeviceLink signs it, with the key the SIL
        provisioned itself with (found by its board id, as DeviceLink finds it)."""
        if self._ctr == 0:
            end = time.monotonic() + 30  # a SIL starting on a loaded 2-core machine
            while True:
                self.host_messages()
                hello = [m for m in self.messages if m["type"] == "hello"]
                if hello:
                    self._ctr = hello[-1]["auth"]["ctr"]
                    break
                assert time.monotonic() < end, "the SIL sent no hello in 30 s"
                time.sleep(0.05)
        self._ctr += 1
        key = load_key((self.state / "board.id").read_text().strip())
        assert key is not None, "the SIL provisioned no host key"
        body = json.dumps({"by": "test", **obj, "ctr": self._ctr}, separators=(",", ":"))
        prefix = body[:-1].encode()
        mac = hmac.new(key, prefix, hashlib.sha256).hexdigest().encode()
        return prefix + b',"mac":"' + mac + b'"}\n'

    def write(self, port: str, data: bytes) -> None:
        os.write(self.fds[port], data)

    def read(self, port: str) -> bytes:
        try:
            return os.read(self.fds[port], 65536)
        except BlockingIOError:
            return b""

    def host_messages(self) -> list[dict[str, Any]]:
        self._host_buf += self.read("host")
        *lines, self._host_buf = self._host_buf.split(b"\n")
        new = [json.loads(line) for line in lines if line.strip()]
        self.messages += new
        return new

    def button(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def annunciator(self) -> list[dict[str, Any]]:
        if not self.ann.exists():
            return []
        return [json.loads(line) for line in self.ann.read_text().splitlines() if line.strip()]

    def feed_oximeter(self, seconds: float, hr: int, spo2: int, status: int = 0x82) -> None:
        """Send Format #2 at its real rate (3 packets a second) for `seconds`, reading the host."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.write("oximeter", nonin2_packet(hr, spo2, status))
            self.host_messages()
            time.sleep(1 / 3)

    def wait_for(
        self, pred: Any, timeout: float, feed: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.host_messages():
                if pred(m):
                    return m
            if feed:
                self.write("oximeter", nonin2_packet(*feed))
            time.sleep(0.1 if not feed else 1 / 3)
        raise AssertionError(f"timed out; last messages: {self.messages[-5:]}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        out, _err = self.proc.communicate(timeout=10)
        for fd in self.fds.values():
            os.close(fd)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def sil_running(tmp: Path, *args: str) -> Iterator[Sil]:
    s = Sil(tmp, *args)
    try:
        yield s
    finally:
        s.kill()


class Oximeter(threading.Thread):
    """Feeds the SIL's oximeter port at the real rate; ``spo2`` can be changed."""

    def __init__(self, sil: Sil) -> None:
        super().__init__(daemon=True)
        self.sil = sil
        self.spo2 = 97
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sil.write("oximeter", nonin2_packet(72, self.spo2))
            time.sleep(1 / 3)
