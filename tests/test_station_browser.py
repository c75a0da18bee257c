"""The station page in a real headless browser: Playwright driving Debian's chromium against
`bedside station` on 127.0.0.1 with two SIL chairs (tests/silharness.py). PNG screenshots are
kept under the test's tmp dir and copied to build/artifacts/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mputil import nonin2_packet
from silharness import Sil

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "artifacts"
CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
# never a browser download: Debian's chromium, headless, nothing fetched from outside
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _chromium() -> str:
    for path in CHROMIUM:
        if os.access(path, os.X_OK):
            return path
    pytest.skip("no chromium: install Debian's `chromium` (make test does, as root)")


class Feeder(threading.Thread):
    """Each chair's oximeter: Nonin format #2 at its real rate, values changeable at any time."""

    def __init__(self, sils: dict[str, Sil]) -> None:
        super().__init__(daemon=True)
        self.sils = sils
        self.values = dict.fromkeys(sils, (72, 97))
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for k, sil in self.sils.items():
                try:
                    sil.write("oximeter", nonin2_packet(*self.values[k]))
                except OSError:
                    pass  # a stopped SIL's pty is full
            time.sleep(1 / 3)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict[str, Any]]:
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (requirements-dev.txt)")
    sils: dict[str, Sil] = {}
    procs: list[subprocess.Popen[str]] = []
    feeder: Feeder | None = None
    try:
        for name in ("A", "B"):
            d = tmp_path / f"chair{name}"
            d.mkdir()
            sils[name] = Sil(d)
        feeder = Feeder(sils)
        feeder.start()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
        st = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bedside_host.cli",
                "station",
                "--port",
                sils["A"].ports["host"],
                "--chair",
                "Chair A",
                "--port",
                sils["B"].ports["host"],
                "--chair",
                "Chair B",
                "--db",
                str(tmp_path / "station.db"),
                "--http",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=open(tmp_path / "station.log", "w"),
            text=True,
            env=env,
            start_new_session=True,
        )
        procs.append(st)
        assert st.stdout is not None
        first = st.stdout.readline()
        assert first.startswith("Bedside station: http://127.0.0.1:"), first
        url = first.split()[2]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            yield {
                "page": page,
                "sils": sils,
                "feeder": feeder,
                "tmp": tmp_path,
                "errors": errors,
                "station": st,
            }
            browser.close()
    finally:
        if feeder is not None:
            feeder.stopping.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for s in sils.values():
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGCONT)
            s.kill()


def _shot(page: Any, tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    assert path.stat().st_size > 10_000
    return path


def _tile(page: Any, chair: str) -> Any:
    return page.locator(f'[data-testid=tile][data-chair="{chair}"]')


def test_desaturation_turns_tile_red_and_leads_the_list(running: dict[str, Any]) -> None:
    """REQ-STA-10: in a real browser, a desaturation at one chair (SIL firmware, SpO2 80 %)
    turns its tile red (flashing, IEC high priority) and puts SPO2_DESAT first in the alarm
    list with value and limit; the other chair stays shown."""
    page, feeder = running["page"], running["feeder"]
    for chair in ("Chair A", "Chair B"):
        page.wait_for_function(
            'c => { const e = document.querySelector(`[data-chair="${c}"]`);'
            " return e && e.dataset.colour !== 'offline'; }",
            arg=chair,
            timeout=15_000,
        )
    assert _tile(page, "Chair A").locator(".spo2 .num").inner_text() in ("96", "97", "98")
    feeder.values["A"] = (88, 80)
    _tile(page, "Chair A").and_(page.locator('[data-colour="high"]')).wait_for(timeout=10_000)
    first = page.locator("[data-testid=alarm-list] tbody tr").first
    assert first.get_attribute("data-chair") == "Chair A"
    assert first.get_attribute("data-condition") == "SPO2_DESAT"
    assert "SpO2 80<85" in first.inner_text()
    anim = _tile(page, "Chair A").evaluate("e => getComputedStyle(e).animationName")
    assert anim == "flash-high"
    assert _tile(page, "Chair B").get_attribute("data-colour") != "high"
    page.wait_for_function("() => window.station.audio().playing === 'high'", timeout=5_000)
    _shot(page, running["tmp"], "station-desaturation")
    _tile(page, "Chair A").click()
    page.locator("#detail").wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelectorAll('#detail-alarms tbody tr').length > 0", timeout=12_000
    )
    assert "SPO2_DESAT" in page.locator("#detail-alarms").inner_text()
    _shot(page, running["tmp"], "station-trends")
    assert running["errors"] == []


def test_stopped_chair_shows_offline(running: dict[str, Any]) -> None:
    """REQ-STA-04: a chair whose device stops (SIL process stopped with SIGSTOP) is shown
    OFFLINE in the browser (hatched, values '—', never its normal look) with NO DATA in the
    alarm list, and recovers when the device runs again."""
    page, sils = running["page"], running["sils"]
    tile_b = _tile(page, "Chair B")
    page.wait_for_function(
        "() => { const e = document.querySelector('[data-chair=\"Chair B\"]');"
        " return e && e.dataset.colour !== 'offline'; }",
        timeout=15_000,
    )
    os.kill(sils["B"].proc.pid, signal.SIGSTOP)
    tile_b.and_(page.locator('[data-colour="offline"]')).wait_for(timeout=15_000)
    assert tile_b.locator(".spo2 .num").inner_text() == "—"
    assert tile_b.locator(".offline-label").is_visible()
    rows = page.locator('[data-testid=alarm-list] tbody tr[data-chair="Chair B"]')
    assert "NO_DATA" in [rows.nth(i).get_attribute("data-condition") for i in range(rows.count())]
    assert _tile(page, "Chair A").get_attribute("data-colour") != "offline"
    _shot(page, running["tmp"], "station-offline")
    os.kill(sils["B"].proc.pid, signal.SIGCONT)
    page.wait_for_function(
        "() => document.querySelector('[data-chair=\"Chair B\"]').dataset.colour !== 'offline'",
        timeout=20_000,
    )
    assert running["errors"] == []
