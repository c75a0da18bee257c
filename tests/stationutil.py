"""Shared by the station session tests: the station (serve) in a thread of the test process with
a fake device speaking the session protocol on a pty, and the steps to the infusion phase."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bedside_host.commands import station as station_cmd
from fakedevice import FakeDevice
from sessionutil import NO, wait_device_readings

BY = "RN Okafor"


class StationRun:
    """`bedside station` (serve) in a thread of this process, on a free port."""

    def __init__(self, db: Path, ports: list[str], names: list[str]) -> None:
        self.db = db
        self.said: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_ev: asyncio.Event | None = None
        self.rc: int | None = None
        chairs = station_cmd.chair_specs(ports, names)

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_ev = asyncio.Event()
            self.rc = await station_cmd.serve(
                chairs, db, "127.0.0.1", 0, announce=self.said.append, stop=self.stop_ev
            )

        self.thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self.thread.start()
        end = time.monotonic() + 20
        while not self.said and time.monotonic() < end:
            time.sleep(0.02)
        assert self.said, "the station did not start"
        self.url = self.said[0].split()[2].rstrip("/")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def step(self, chair: str, op: str, **body: Any) -> tuple[int, Any]:
        where = urllib.parse.quote(chair, safe="")
        return self.request("POST", f"/api/chairs/{where}/session/{op}", body)

    def tile(self, chair: str) -> dict[str, Any]:
        _, state = self.request("GET", "/api/state")
        return next(t for t in state["tiles"] if t["id"] == chair)

    def close(self) -> int | None:
        assert self.loop is not None and self.stop_ev is not None
        self.loop.call_soon_threadsafe(self.stop_ev.set)
        self.thread.join(30)
        return self.rc


@contextmanager
def station_with_device(tmp: Path) -> Iterator[tuple[StationRun, FakeDevice]]:
    dev = FakeDevice(tmp, report_s=0.25, nibp_s=0.3).start()
    run: StationRun | None = None
    try:
        run = StationRun(tmp / "station.db", [dev.path], ["Bay 1"])
        end = time.monotonic() + 10
        while time.monotonic() < end and run.tile("Bay 1")["link"] != "live":
            time.sleep(0.05)
        assert run.tile("Bay 1")["link"] == "live"
        yield run, dev
    finally:
        if run is not None:
            assert run.close() == 0
        dev.stop()


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def to_infusion(run: StationRun, dev: FakeDevice, chair: str = "Bay 1") -> None:
    """Open, screen, baseline (two readings, accept), start and a first dose, by API."""
    code, _ = run.step(chair, "open", by=BY, patient="P-0042", course_day=3, course_total=10)
    assert code == 200
    assert run.step(chair, "screen", by=BY, answers=NO, bp_sys=128, bp_dia=82)[0] == 200
    for n in (1, 2):
        assert run.step(chair, "baseline", by=BY, action="repeat")[0] == 200
        wait_device_readings(dev, n)
        time.sleep(dev.baseline_gap_s)
    assert run.step(chair, "baseline", by=BY, action="accept")[0] == 200
    assert run.step(chair, "start", by=BY)[0] == 200
    assert run.step(chair, "dose", by=BY, rate=20, units="mg/h", reason="start")[0] == 200
