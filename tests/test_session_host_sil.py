"""`bedside session` end to end against the real firmware core in `bedside sil`, with
`bedside simulate` as the patient's oximeter and NIBP module (REQ-SES-71).

Real time, not virtual: the SIL runs on the wall clock. With the organisation settings at their
shortest (baseline readings 1 min apart, 10 s stable SpO2) the path open, screen, baseline
repeat x2, accept, start, dose, O2, check, stop takes about 90 s; discharge is then refused by
the device (the recovery minimum is at least 30 min), which proves the criteria reach the host.
Discharge ready and close against the SIL are not covered here (the fake device covers them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside.settings import SPEC
from bedside_host.cli import main
from bedside_host.session.scores import ALDRETE, PADSS
from bedside_host.store import Store

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("baseline_gap_min" not in SPEC, reason="firmware without the session"),
]
PYTHONPATH = f"{ROOT / 'host_tools'}{os.pathsep}{ROOT / 'firmware'}"


def _spawn(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bedside_host.cli", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=PYTHONPATH),  # now: the SIL's key where main() looks
        cwd=cwd,
        start_new_session=True,
    )


def _stop(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


@pytest.fixture
def sil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BEDSIDE_OPERATOR", raising=False)
    dev = _spawn(
        "sil", "--state-dir", str(tmp_path / "state"), "--annunciator-log",
        str(tmp_path / "ann.jsonl"), "--set", "baseline_gap_min=1", "--set",
        "baseline_stable_s=10", cwd=tmp_path,
    )  # fmt: skip
    assert dev.stdout is not None
    ports: dict[str, str] = json.loads(dev.stdout.readline())
    sim = _spawn(
        "simulate", "--oximeter", ports["oximeter"], "--nibp", ports["nibp"], "--scenario",
        "normal", "--nibp-duration", "3", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    try:
        yield ports
    finally:
        _stop(sim)
        _stop(dev)


def _step(capsys: pytest.CaptureFixture[str], port: str, db: Path, *args: str
          ) -> tuple[int, str, str]:  # fmt: skip
    code = main(["session", *args, "--port", port, "--db", str(db), "--by", "RN Silva"])
    out, err = capsys.readouterr()
    return code, out, err


def _state(capsys: pytest.CaptureFixture[str], port: str, db: Path) -> dict[str, Any]:
    code = main(["session", "show", "--port", port, "--db", str(db), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    state: dict[str, Any] = json.loads(out)["state"]
    return state


def _until(capsys: pytest.CaptureFixture[str], port: str, db: Path, pred: Any,
           timeout: float, what: str) -> dict[str, Any]:  # fmt: skip
    end = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < end:
        st = _state(capsys, port, db)
        if pred(st):
            return st
        time.sleep(2.0)
    raise AssertionError(f"{what}: last state {st}")


def test_session_steps_against_the_sil(
    capsys: pytest.CaptureFixture[str], sil: dict[str, str], tmp_path: Path
) -> None:
    """REQ-SES-71: on the real firmware core (SIL with simulated oximeter and NIBP) the CLI
    opens a session, screens, takes two baseline readings a minute apart and accepts the
    baseline, starts, changes the dose, turns O2 on and off, records a check and stops; each
    step is accepted with the device's phase as the host rules expect and recorded; a start
    before the baseline is refused by the host, an early accept by the device with its reason,
    and discharge in early recovery by the device with its criteria."""
    port, db = sil["host"], tmp_path / "rec.db"
    code, out, err = _step(capsys, port, db, "open", "--patient", "P-SIL", "--course-day", "1",
                           "--course-total", "4")  # fmt: skip
    assert code == 0 and "idle -> screening" in out, err
    code, out, err = _step(capsys, port, db, "screen", "--all-no", "--bp", "124/80")
    assert code == 0 and "screening -> baseline" in out, err
    code, _out, err = _step(capsys, port, db, "start")
    assert code == 1 and "refused by the host rules" in err
    code, _out, err = _step(capsys, port, db, "baseline", "accept")
    assert code == 1 and "refused by the device" in err
    assert _step(capsys, port, db, "baseline", "repeat")[0] == 0
    _until(capsys, port, db, lambda s: s.get("baseline_readings", 0) >= 1, 40, "reading 1")
    time.sleep(61)
    assert _step(capsys, port, db, "baseline", "repeat")[0] == 0
    _until(capsys, port, db, lambda s: s.get("baseline_ready"), 40, "baseline ready")
    code, out, err = _step(capsys, port, db, "baseline", "accept")
    assert code == 0, err
    for args in (
        ("start",),
        ("dose", "--rate", "20", "--units", "mg/h", "--reason", "start"),
        ("o2", "on", "--flow", "2"),
        ("check", "--moaas", "5"),
        ("o2", "off"),
        ("stop",),
    ):
        code, out, err = _step(capsys, port, db, *args)
        assert code == 0, (args, err)
        assert "warning" not in err, err
    aldrete = ",".join(f"{k}=2" for k in ALDRETE)
    padss = ",".join(f"{k}=2" for k in PADSS)
    code, out, err = _step(capsys, port, db, "discharge", "--aldrete", aldrete, "--padss", padss)
    assert code == 1 and "refused by the device" in err
    assert "FAIL recovery_time" in out
    with Store(db) as st:
        (s,) = [x for x in st.sessions() if x.kind == "infusion"]
        rows = st.conn.execute(
            "SELECT op, outcome FROM session_steps WHERE session_id = ? ORDER BY id", (s.id,)
        ).fetchall()
        base = st.conn.execute("SELECT baseline FROM infusions").fetchone()[0]
    assert [r[1] for r in rows].count("done") == 11
    assert json.loads(base)["sys"] > 0
