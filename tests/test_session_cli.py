"""`bedside session` against the fake device (SESSION_PROTOCOL.md): help, a whole session step
by step, refusals with the device's reason, bad input, the clinic config (REQ-SES-60..65)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bedside_host.cli import main
from bedside_host.session.scores import ALDRETE, PADSS
from bedside_host.session.screening import CONTRAINDICATIONS
from bedside_host.store import Store
from fakedevice import FakeDevice


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BEDSIDE_OPERATOR", raising=False)
    monkeypatch.delenv("BEDSIDE_PORT", raising=False)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[FakeDevice]:
    d = FakeDevice(tmp_path, report_s=0.25, nibp_s=0.3).start()
    try:
        yield d
    finally:
        d.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def step(
    capsys: pytest.CaptureFixture[str], dev: FakeDevice, db: Path, action: str, *args: str
) -> tuple[int, str, str]:
    return run(capsys, "session", action, "--port", dev.path, "--db", str(db), "--by",
               "RN Mbeki", *args)  # fmt: skip


ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "host_tools"))
ALDRETE_OK = ",".join(f"{k}=2" for k in ALDRETE)
PADSS_OK = ",".join(f"{k}=2" for k in PADSS)


def _wait_nibp_idle(dev: FakeDevice, readings: int) -> None:
    end = time.monotonic() + 15  # an upper bound for a loaded machine
    while time.monotonic() < end:
        with dev.lock:
            if dev.sess and len(dev.sess["readings"]) >= readings and dev.nibp_state == "idle":
                return
        time.sleep(0.02)
    raise AssertionError("no baseline reading")


def test_help_lists_every_step_and_the_forms(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-SES-60: `bedside session --help` lists every step (open, screen, baseline, start,
    dose, o2, check, stop, discharge, close, cancel, show); `screen --help` asks every
    contraindication and the override; `discharge --help` names the Aldrete and PADSS items and
    says surgical bleeding is scored 2 by rule; the table of commands lists `session`; a step's
    --help imports neither transitions, pyserial, rich, matplotlib nor sqlite3."""
    with pytest.raises(SystemExit) as e:
        main(["session", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for a in ("open", "screen", "baseline", "start", "dose", "o2", "check", "stop",
              "discharge", "close", "cancel", "show"):  # fmt: skip
        assert a in out
    with pytest.raises(SystemExit):
        main(["session", "screen", "--help"])
    out = capsys.readouterr().out
    for k in CONTRAINDICATIONS:
        assert "--" + k.replace("_", "-") in out
    assert "--override-by" in out and "--override-reason" in out and "--bp" in out
    with pytest.raises(SystemExit):
        main(["session", "discharge", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(k in out for k in (*ALDRETE, *PADSS)) and "scored 2 by rule" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "session" in capsys.readouterr().out
    code = (
        "import sys\nfrom bedside_host import cli\ntry:\n    cli.main(['session', 'open', "
        "'--help'])\nexcept SystemExit:\n    pass\nheavy = ('rich', 'serial', 'transitions', "
        "'matplotlib', 'sqlite3')\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
        "heavy), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert res.stderr.strip().splitlines()[-1] == "[]"


def test_a_whole_session_step_by_step(
    capsys: pytest.CaptureFixture[str], dev: FakeDevice, tmp_path: Path
) -> None:
    """REQ-SES-61: every step of a session through `bedside session` exits 0 and prints the
    phase change; `show` prints the device's state and the record's steps; the record file
    holds one infusion session with every step by the operator; `discharge` prints which
    criteria hold; `bedside report --session ID` writes the session's report."""
    db = tmp_path / "rec.db"
    code, out, err = step(capsys, dev, db, "open", "--patient", "P-0100", "--course-day", "2",
                          "--course-total", "10")  # fmt: skip
    assert code == 0, err
    assert "idle -> screening" in out
    code, out, err = step(capsys, dev, db, "screen", "--all-no", "--bp", "126/84")
    assert code == 0 and "screening -> baseline" in out, err
    for n in (1, 2):
        assert step(capsys, dev, db, "baseline", "repeat")[0] == 0
        _wait_nibp_idle(dev, n)
        time.sleep(dev.baseline_gap_s)
    code, out, err = step(capsys, dev, db, "baseline", "accept")
    assert code == 0, err
    for args in (
        ("start",),
        ("dose", "--rate", "20", "--units", "mg/h", "--reason", "start"),
        ("o2", "on", "--flow", "2"),
        ("check", "--moaas", "4", "--rass", "-1", "--pain", "3", "--nausea", "mild"),
        ("o2", "off"),
        ("check", "--moaas", "5"),
        ("stop",),
    ):
        code, out, err = step(capsys, dev, db, *args)
        assert code == 0, (args, err)
    code, out, err = step(capsys, dev, db, "discharge", "--aldrete", ALDRETE_OK, "--padss",
                          PADSS_OK)  # fmt: skip
    assert code == 0, err
    assert "recovery -> discharge_ready" in out and "every device criterion holds" in out
    assert "ok   device_criteria" in out and "ok   aldrete_items" in out
    code, out, err = step(capsys, dev, db, "close", "--escort", "Sam Mbeki", "--relationship",
                          "brother", "--advice-given")  # fmt: skip
    assert code == 0 and "discharge_ready -> closed" in out, err
    code, out, err = run(capsys, "session", "show", "--port", dev.path, "--db", str(db))
    assert code == 0, err
    assert "phase closed" in out and "escort: Sam Mbeki (brother)" in out
    assert "no driving for 24 h" in out
    with Store(db) as st:
        (s,) = [x for x in st.sessions() if x.kind == "infusion"]
        rows = st.conn.execute("SELECT op, by, outcome FROM session_steps ORDER BY id").fetchall()
    assert len(rows) == 14 and {r[1] for r in rows} == {"RN Mbeki"}
    assert {r[2] for r in rows} == {"done"}
    html = tmp_path / "rep.html"
    code, out, err = run(capsys, "report", "--db", str(db), "--session", str(s.id), "-o",
                         str(html))  # fmt: skip
    assert code == 0, err
    text = html.read_text()
    assert "Infusion session" in text and "Sam Mbeki" in text and "20 mg/h" in text


def test_refusals_exit_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], dev: FakeDevice, tmp_path: Path
) -> None:
    """REQ-SES-62: a step the host rules refuse (start in screening; a screening with a "yes"
    and no override) or the device refuses (baseline accept without readings) exits 1 and
    prints who refused and why; a refused discharge prints each criterion that fails; the
    refusal is recorded (and `show` lists it); an accepted override prints the findings it
    overrode; `show` flags an overdue check and, in recovery, prints the discharge hints."""
    db = tmp_path / "rec.db"
    assert step(capsys, dev, db, "open", "--patient", "P-1", "--course-day", "1",
                "--course-total", "1")[0] == 0  # fmt: skip
    code, _out, err = step(capsys, dev, db, "start")
    assert code == 1
    assert "refused by the host rules: start is not allowed in phase screening" in err
    code, _out, err = step(capsys, dev, db, "screen", "--cardiovascular", "yes", "--hepatic",
                           "no", "--substance", "no", "--icp-iop", "no", "--psychosis", "no",
                           "--pregnancy", "no", "--bp", "150/95")  # fmt: skip
    assert code == 1 and "override" in err and "poorly controlled cardiovascular" in err
    assert "resting BP 150/95 above the clinic limit" in err
    code, _out, err = step(capsys, dev, db, "screen", "--cardiovascular", "yes", "--hepatic",
                           "no", "--substance", "no", "--icp-iop", "no", "--psychosis", "no",
                           "--pregnancy", "no", "--bp", "150/95", "--override-by", "Dr Chen",
                           "--override-reason", "cardiology cleared, usual BP")  # fmt: skip
    assert code == 0, err
    assert "findings overridden: poorly controlled cardiovascular disease; resting BP" in _out
    code, _out, err = step(capsys, dev, db, "baseline", "accept")
    assert code == 1 and "refused by the device: baseline needs 2 NIBP readings" in err
    with dev.lock:  # straight to recovery with an alarm active: discharge must fail
        assert dev.sess is not None
        dev.sess["phase"] = "recovery"
        dev.sess["recovery_t"] = time.monotonic()
        dev.sess["baseline"] = {"sys": 128, "dia": 82, "map": 97, "pr": 72, "spo2": 97}
    dev.raise_alarm("SPO2_LOW", "medium", value=89, limit=90)
    code, out, err = step(capsys, dev, db, "discharge", "--aldrete", ALDRETE_OK, "--padss",
                          PADSS_OK)  # fmt: skip
    assert code == 1 and "refused by the device: discharge criteria not met" in err
    assert "FAIL no_alarm" in out and "FAIL alert" in out and "ok   aldrete_items" in out
    code, out, err = step(capsys, dev, db, "discharge", "--aldrete",
                          ALDRETE_OK.replace("spo2=2", "spo2=0"), "--padss", PADSS_OK)  # fmt: skip
    assert code == 1 and "refused by the host rules" in err and "item scored 0: spo2" in err
    with dev.lock:
        dev.check_every_s = 0.0
    time.sleep(1.1)
    code, out, err = run(capsys, "session", "show", "--port", dev.path, "--db", str(db))
    assert code == 0 and "CHECK OVERDUE by" in out, err
    assert "discharge hints from device data (confirm at the bedside):" in out
    assert "aldrete spo2 = 2 (SpO2 97 % on room air)" in out
    assert "discharge  host_refused" in out and "item scored 0: spo2" in out
    conn = sqlite3.connect(db)
    outcomes = [r[0] for r in conn.execute("SELECT outcome FROM session_steps ORDER BY id")]
    conn.close()
    assert outcomes == ["done", "host_refused", "host_refused", "done", "refused", "refused",
                        "host_refused"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("open", "--patient", "P", "--course-day", "5", "--course-total", "3"),
         "course day 5 is after the course's end (3)"),
        (("screen", "--bp", "120/80"), "every screening item must be answered"),
        (("screen", "--all-no", "--pregnancy", "yes", "--bp", "120/80"), "--all-no contradicts"),
        (("o2", "on"), "O2 on needs the flow"),
        (("dose", "--rate", "-5", "--units", "mg/h", "--reason", "pain"), "rate must be"),
        (("check", "--moaas", "7"), "MOAA/S must be a whole number 0..5"),
        (("close", "--escort", "A", "--relationship", "x" * 40, "--advice-given"),
         "relationship is longer than 32"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
    dev: FakeDevice,
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    """REQ-SES-63: bad step input exits 2 with one line saying what is wrong; no session op is
    sent to the device and no step is recorded."""
    db = tmp_path / "rec.db"
    code, _out, err = step(capsys, dev, db, *args)
    assert code == 2 and message in err
    assert dev.commands_of("session") == []
    conn = sqlite3.connect(db)
    try:
        n = conn.execute("SELECT count(*) FROM session_steps").fetchone()[0]
    except sqlite3.OperationalError:
        n = 0
    conn.close()
    assert n == 0


def test_usage_errors(capsys: pytest.CaptureFixture[str], dev: FakeDevice,
                      tmp_path: Path) -> None:  # fmt: skip
    """REQ-SES-64: a step without an operator, a record file that is not one, a bad option
    value (BP not SYS/DIA, a score item not ITEM=N, a dose reason not in the list) exit 2 with
    the reason; a device whose firmware has no sessions and an unanswered port exit 1 with
    the reason."""
    db = tmp_path / "rec.db"
    code, _out, err = run(capsys, "session", "start", "--port", dev.path, "--db", str(db))
    assert code == 2 and "--by NAME" in err
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all " * 100)
    code, _out, err = step(capsys, dev, junk, "start")
    assert code == 2 and "not a record file" in err
    for args, msg in (
        (("screen", "--all-no", "--bp", "120"), "expected SYS/DIA"),
        (("discharge", "--aldrete", "activity2", "--padss", PADSS_OK), "ITEM=SCORE"),
        (("dose", "--rate", "1", "--units", "mg/h", "--reason", "fun"), "invalid choice"),
    ):
        with pytest.raises(SystemExit) as e:
            step(capsys, dev, db, *args)
        assert e.value.code == 2 and msg in capsys.readouterr().err
    with dev.lock:
        dev._cmd_get_session = None  # type: ignore[assignment]  # a firmware without sessions
    code, _out, err = step(capsys, dev, db, "start")
    assert code == 1 and "this device's firmware has no infusion sessions" in err
    with dev.lock:
        del dev._cmd_get_session
    dev.mute = True
    code, _out, err = step(capsys, dev, db, "start")
    assert code == 1 and "no answer" in err


def test_clinic_settings_from_the_config_file(
    capsys: pytest.CaptureFixture[str], dev: FakeDevice, tmp_path: Path
) -> None:
    """REQ-SES-65: the clinic settings come from the [session] table of the host config file
    (here a resting-BP limit of 160/100 and 8 h no-driving advice) and change what the steps
    decide and record; a bad value there exits 2 naming the setting."""
    cfg = tmp_path / "config" / "bedside"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text("[session]\nscreen_sys_max = 160\nscreen_dia_max = 100\n"
                                     "no_driving_h = 8\n")  # fmt: skip
    db = tmp_path / "rec.db"
    assert step(capsys, dev, db, "open", "--patient", "P-2", "--course-day", "1",
                "--course-total", "3")[0] == 0  # fmt: skip
    code, _out, err = step(capsys, dev, db, "screen", "--all-no", "--bp", "150/95", "--json")
    assert code == 0, err
    conn = sqlite3.connect(db)
    (findings,) = conn.execute("SELECT findings FROM screenings").fetchone()
    conn.close()
    assert json.loads(findings) == []
    (cfg / "config.toml").write_text("[session]\naldrete_min = 12\n")
    code, _out, err = run(capsys, "session", "show", "--port", dev.path, "--db", str(db))
    assert code == 2 and "aldrete_min must be a whole number 0..10" in err
