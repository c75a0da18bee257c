"""Helpers for the link tests: collect what a DeviceLink delivers; a bare pty peer."""

from __future__ import annotations

import json
import os
import time
import tty
from collections.abc import Callable
from typing import Any

from bedside_host.link import Gap, Received
from bedside_host.link.client import DeviceLink


class Collector:
    """Polls a DeviceLink and keeps everything it delivered."""

    def __init__(self, link: DeviceLink) -> None:
        self.link = link
        self.items: list[Received | Gap] = []

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.items += self.link.poll(0.05)

    def until(self, pred: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise AssertionError(
                    f"timed out waiting for {what}; state {self.link.state}, "
                    f"stats {self.link.stats}, last error {self.link.last_error!r}"
                )
            self.items += self.link.poll(0.05)

    @property
    def received(self) -> list[Received]:
        return [x for x in self.items if isinstance(x, Received)]

    @property
    def gaps(self) -> list[Gap]:
        return [x for x in self.items if isinstance(x, Gap)]

    def of(self, mtype: str, replayed: bool | None = None) -> list[Received]:
        return [
            x
            for x in self.received
            if x.msg["type"] == mtype and (replayed is None or x.replayed == replayed)
        ]

    def seqs(self, boot: int) -> list[int]:
        return [x.msg["seq"] for x in self.received if x.msg.get("boot", 0) == boot]


class PtyPeer:
    """The device side of a pty, written by hand (for exact protocol situations)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._rx = b""

    def send(self, **msg: Any) -> None:
        os.write(self.master, (json.dumps({"v": 2, **msg}) + "\n").encode())

    def raw(self, data: bytes) -> None:
        os.write(self.master, data)

    def commands(self) -> list[dict[str, Any]]:
        try:
            self._rx += os.read(self.master, 65536)
        except BlockingIOError:
            pass
        *lines, self._rx = self._rx.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
