"""The station page in a real headless browser: Playwright driving Debian's chromium against
`bedside station` on 127.0.0.1 with two SIL chairs (tests/silharness.py). PNG screenshots are
kept under the test's tmp dir and copied to build/artifacts/."""

from __future__ import annotations

import asyncio
import json
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

pytestmark = pytest.mark.slow
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
    alarm list, and recovers when the device runs again; when the station itself stops, every
    tile shows STATION LINK LOST and the page sounds."""
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
    # the station itself stops: the page cannot know the chairs' state, so none looks normal
    station = running["station"]
    os.kill(station.pid, signal.SIGSTOP)
    try:
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=tile]')]"
            ".every(e => e.dataset.colour === 'offline')",
            timeout=10_000,
        )
        assert "STATION LINK LOST" in page.locator("#conn").inner_text()
        assert "STATION LINK LOST" in _tile(page, "Chair A").locator(".offline-label").inner_text()
        page.wait_for_function("() => window.station.audio().playing === 'medium'", timeout=5_000)
        _shot(page, running["tmp"], "station-link-lost")
    finally:
        os.kill(station.pid, signal.SIGCONT)
    assert running["errors"] == []


class ScriptedLink:
    """A DeviceLink stand-in for layout tests: live, oxi + heartbeat every 0.5 s, some chairs
    with an alarm (what a real chair reports, without 16 SIL processes)."""

    ALARMS: tuple[dict[str, Any] | None, ...] = (
        {
            "condition": "SPO2_DESAT",
            "priority": "high",
            "kind": "physiological",
            "value": 83,
            "limit": 85,
        },
        {
            "condition": "PR_HIGH",
            "priority": "medium",
            "kind": "physiological",
            "value": 149,
            "limit": 130,
        },
        {
            "condition": "OXI_SENSOR_OFF",
            "priority": "medium",
            "kind": "technical",
            "value": None,
            "limit": None,
        },
        {
            "condition": "BP_RISE",
            "priority": "low",
            "kind": "physiological",
            "value": 168,
            "limit": 160,
        },
        None,
        None,
        None,
        None,
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.n = int(url.rsplit("/", 1)[1])
        self.state = "live"
        self.last_error = ""
        self.seq = 0
        self.next_at = 0.0

    def poll(self, timeout: float = 0.0) -> list[Any]:
        from bedside_host.link.messages import Received

        time.sleep(timeout)
        now = time.time()
        if now < self.next_at:
            return []
        self.next_at = now + 0.5
        alarm = self.ALARMS[self.n % len(self.ALARMS)]
        rows = [] if alarm is None else [dict(alarm, state="active", age_s=40 + self.n)]
        out = []
        for mtype, f in (
            (
                "oxi",
                {
                    "spo2": 83 if self.n % 8 == 0 else 97,
                    "pr": 60 + self.n,
                    "spo2_age_s": 0,
                    "flags": [],
                    "quality": "good",
                },
            ),
            ("nibp", {"sys": 118 + self.n, "dia": 76, "map": 90, "pr": 70, "age_s": 30}),
            (
                "heartbeat",
                {
                    "priority": alarm["priority"] if alarm else "none",
                    "alarms": rows,
                    "phase": "MONITOR",
                    "audio_paused_s": 0,
                    "audio_off": False,
                },
            ),
        ):
            self.seq += 1
            m = {"v": 2, "seq": self.seq, "boot": 1, "type": mtype, "t_ms": self.seq * 100, **f}
            out.append(Received(self.url, json.dumps(m), m, now, now, False))
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def sixteen(tmp_path: Path) -> Iterator[str]:
    """`bedside station` (in-process, its own thread and event loop) with 16 scripted chairs."""
    from bedside_host.commands import station

    chairs = station.chair_specs([f"fake://chair/{i}" for i in range(16)], [])
    said: list[str] = []
    box: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = asyncio.Event()
            await station.serve(
                chairs,
                tmp_path / "st.db",
                "127.0.0.1",
                0,
                open_link=ScriptedLink,
                announce=said.append,
                stop=box["stop"],
            )

        asyncio.run(main())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    end = time.monotonic() + 10
    while not said and time.monotonic() < end:
        time.sleep(0.05)
    assert said, "the station did not start"
    try:
        yield said[0].split()[2]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(timeout=15)


def test_sixteen_chairs_fit_a_1080p_screen(sixteen: str, tmp_path: Path) -> None:
    """REQ-STA-12: 16 chairs fit one 1920x1080 screen beside the alarm list: every tile wholly
    visible, none overlapping, the SpO2 figures at least 24 px high; the alarm list leads with
    the HIGH alarm."""
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(sixteen)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=tile]')]"
            ".filter(e => e.dataset.colour !== 'offline').length === 16",
            timeout=15_000,
        )
        boxes = [page.locator("[data-testid=tile]").nth(i).bounding_box() for i in range(16)]
        for b in boxes:
            assert b is not None and b["x"] >= 0 and b["y"] >= 0
            assert b["x"] + b["width"] <= 1920 and b["y"] + b["height"] <= 1080
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a is not None and b is not None
                apart = (
                    a["x"] + a["width"] <= b["x"]
                    or b["x"] + b["width"] <= a["x"]
                    or a["y"] + a["height"] <= b["y"]
                    or b["y"] + b["height"] <= a["y"]
                )
                assert apart
        clipped = page.evaluate(
            "() => [...document.querySelectorAll('[data-testid=tile] .vitals')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).length"
        )
        assert clipped == 0  # every figure wholly shown
        size = page.locator("[data-testid=tile] .spo2 .num").first.evaluate(
            "e => parseFloat(getComputedStyle(e).fontSize)"
        )
        assert size >= 24
        colours = [
            page.locator("[data-testid=tile]").nth(i).get_attribute("data-colour")
            for i in range(16)
        ]
        assert colours.count("high") == 2 and colours.count("tech-medium") == 2
        first = page.locator("[data-testid=alarm-list] tbody tr").first
        assert first.get_attribute("data-priority") == "high"
        _shot(page, tmp_path, "station-16-chairs")
        browser.close()


def test_audio_off_in_the_page_needs_a_name(sixteen: str, tmp_path: Path) -> None:
    """REQ-STA-05: in the page, station audio off without a name is refused with the reason
    shown; with a name the header shows who switched it off, and the station stops playing;
    switching it on again needs a name too."""
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(sixteen)
        page.wait_for_function("() => window.station.audio().playing === 'high'", timeout=15_000)
        page.click("#audio-off")
        page.fill("#dialog-user", "   ")
        page.click("#dialog-ok")
        page.wait_for_function(
            "() => document.querySelector('#dialog-error').textContent.includes('user name')",
            timeout=5_000,
        )
        assert page.locator("#audio-state").inner_text().startswith("station audio on")
        page.fill("#dialog-user", "Charge RN Kim")
        page.fill("#dialog-reason", "drill")
        page.click("#dialog-ok")
        page.wait_for_function(
            "() => document.querySelector('#audio-state').textContent"
            ".includes('STATION AUDIO OFF by Charge RN Kim')",
            timeout=5_000,
        )
        page.wait_for_function("() => window.station.audio().playing === 'none'", timeout=5_000)
        _shot(page, tmp_path, "station-audio-off")
        page.click("#audio-on")
        page.fill("#dialog-user", "RN Lee")
        page.click("#dialog-ok")
        page.wait_for_function("() => window.station.audio().playing === 'high'", timeout=5_000)
        browser.close()


def test_sedation_score_entered_in_the_form_reaches_the_database(tmp_path: Path) -> None:
    """REQ-STA-33: in a real browser, the charge nurse opens a chair in infusion, opens its
    session forms, enters her name and a sedation score (MOAA/S 3, RASS -1, mild
    dissociation) and sends it: the form shows it done, the station's record file holds the
    check with those values and her name, and the tile shows the phase with its time and the
    next check due; a step the rules refuse (stop, then discharge too early) shows who
    refused and what still fails."""
    from playwright.sync_api import sync_playwright
    from stationutil import rows, station_with_device, to_infusion

    chromium = _chromium()
    with station_with_device(tmp_path) as (run, dev):
        to_infusion(run, dev)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(run.url + "/")
                tile = _tile(page, "Bay 1")
                tile.locator(".phase").filter(has_text="infusion").wait_for(timeout=10_000)
                assert "in " in tile.locator(".check").inner_text()  # next check due
                tile.click()
                page.locator("[data-testid=session-open]").click()
                page.locator("[data-testid=session-panel]").wait_for(state="visible")
                page.locator("[data-testid=session-state]").filter(
                    has_text="infusion"
                ).wait_for(timeout=10_000)
                page.locator("[data-testid=session-by]").fill("RN Browser")
                page.locator("[data-testid=session-op-check]").click()
                form = page.locator("[data-testid=session-form]")
                form.locator("select[name=moaas]").select_option("3")
                form.locator("select[name=rass]").select_option("-1")
                form.locator("select[name=dissociation]").select_option("mild")
                page.locator("[data-testid=session-submit]").click()
                result = page.locator("[data-testid=session-result]")
                result.filter(has_text="check: done by RN Browser").wait_for(timeout=15_000)
                _shot(page, tmp_path, "station-session-check")
                page.locator("[data-testid=session-op-stop]").click()
                page.locator("[data-testid=session-submit]").click()
                result.filter(has_text="stop: done").wait_for(timeout=15_000)
                page.locator("[data-testid=session-op-discharge]").click()
                form.locator("select[name='aldrete.spo2']").select_option("0")
                page.locator("[data-testid=session-submit]").click()
                result.filter(has_text="refused").wait_for(timeout=15_000)
                assert "aldrete_items" in result.inner_text() and "FAILS" in result.inner_text()
                _shot(page, tmp_path, "station-session-refused")
                assert errors == []
            finally:
                browser.close()
    got = rows(
        tmp_path / "station.db",
        "SELECT c.score, c.rass, c.dissociation, c.by, s.op, s.outcome FROM checks c"
        " JOIN session_steps s ON s.id = c.step_id",
    )
    assert got == [(3, -1, "mild", "RN Browser", "check", "done")], got
