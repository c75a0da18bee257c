"""Shared by the session tests: a fake device with a link, a record file and the services, and
a walk through the session's steps to any phase."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bedside_host.link.client import DeviceLink
from bedside_host.session.scores import ALDRETE, PADSS, Check
from bedside_host.session.screening import CONTRAINDICATIONS, Screening
from bedside_host.session.service import SessionService
from bedside_host.store import Store
from fakedevice import FakeDevice

BY = "RN Okafor"
NO = dict.fromkeys(CONTRAINDICATIONS, False)
A_FULL = dict.fromkeys(ALDRETE, 2)
P_FULL = dict.fromkeys(PADSS, 2)


@dataclass
class Rig:
    dev: FakeDevice
    link: DeviceLink
    store: Store
    svc: SessionService
    db: Path


@contextmanager
def rig(tmp: Path) -> Iterator[Rig]:
    dev = FakeDevice(tmp, report_s=0.25, nibp_s=0.3).start()
    link = DeviceLink(dev.path, catch_up=False)
    store = Store(tmp / "record.db")
    try:
        assert link.wait_live(15.0)
        yield Rig(dev, link, store, SessionService(link, store), tmp / "record.db")
    finally:
        link.close()
        store.close()
        dev.stop()


def wait_device_readings(dev: FakeDevice, n: int, timeout: float = 15.0) -> None:
    """Until the fake device holds `n` baseline readings and its NIBP is idle (an upper bound
    for a loaded machine)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with dev.lock:
            ss = dev.sess
            if ss is not None and len(ss["readings"]) >= n and dev.nibp_state == "idle":
                return
        time.sleep(0.02)
    raise AssertionError(f"no {n} baseline readings")


def wait_readings(r: Rig, n: int) -> None:
    wait_device_readings(r.dev, n)


PATH = ("screening", "baseline", "infusion", "recovery", "discharge_ready", "closed")


def walk(r: Rig, to: str) -> None:
    """Take the session from idle through every step up to phase `to`."""
    s = r.svc
    assert s.open(BY, "P-0042", 3, 10).ok
    if to == "screening":
        return
    assert s.screen(BY, Screening(NO, 128, 82)).ok
    if to == "baseline":
        return
    for n in (1, 2):
        assert s.baseline(BY, "repeat").ok
        wait_readings(r, n)
        time.sleep(r.dev.baseline_gap_s)
    assert s.baseline(BY, "accept").ok
    assert s.start(BY).ok
    assert s.dose(BY, 20, "mg/h", "start").ok
    if to == "infusion":
        return
    assert s.check(BY, Check(moaas=5)).ok
    assert s.stop(BY).ok
    if to == "recovery":
        return
    assert s.discharge(BY, A_FULL, P_FULL).ok
    if to == "discharge_ready":
        return
    assert s.close(BY, "Ada Okafor", "daughter", True).ok
