"""Device commands against the fake protocol-v2 device: ports, settings, log, nibp, audio-off;
the lazy command table and --version (REQ-HOST-10..17)."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from bedside_host import __version__
from bedside_host.cli import COMMANDS, main
from fakedevice import FakeDevice
from linkutil import PtyPeer

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BEDSIDE_OPERATOR", raising=False)
    monkeypatch.delenv("BEDSIDE_PORT", raising=False)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[FakeDevice]:
    d = FakeDevice(tmp_path, report_s=0.25).start()
    try:
        yield d
    finally:
        d.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- the command table -----------------------------------------------------------------
def _modules_after(*argv: str) -> list[str]:
    code = (
        "import sys\n"
        "from bedside_host import cli\n"
        "try:\n"
        f"    cli.main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('rich', 'serial', 'transitions')\n"
        "mods = [m for m in sys.modules if m.split('.')[0] in heavy\n"
        "        or m.startswith('bedside_host.commands.')]\n"
        "print('MODULES', sorted(mods), file=sys.stderr)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True
    )
    line = next(x for x in res.stderr.splitlines() if x.startswith("MODULES"))
    return list(eval(line.split(" ", 1)[1]))


def test_help_imports_no_command_module_rich_or_serial() -> None:
    """REQ-HOST-10: `bedside --help` imports no command module, nor rich, pyserial or
    transitions; a command's --help imports that command's module only."""
    assert _modules_after("--help") == []
    mods = _modules_after("settings", "--help")
    assert "bedside_host.commands.settings" in mods
    assert not [m for m in mods if m.split(".")[0] in ("rich", "serial", "transitions")]
    assert "bedside_host.commands.monitor" not in mods


def test_help_importtime_has_no_rich_or_serial() -> None:
    """REQ-HOST-10: the same seen by `python -X importtime`."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bedside_host.cli", "--help"],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines()]
    assert not [m for m in imported if m.split(".")[0] in ("rich", "serial")]
    assert "usage: bedside" in res.stdout


def test_table_help_is_each_modules_help_and_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """REQ-HOST-10: the static table's help line is each module's HELP; --version prints the
    host tools' version (= pyproject) and the firmware's."""
    for name, (modname, help_line) in COMMANDS.items():
        mod = importlib.import_module(f"bedside_host.commands.{modname}")
        assert mod.HELP == help_line, name
    project = tomllib.loads((ROOT / "host_tools" / "pyproject.toml").read_text())
    assert __version__ == project["project"]["version"]
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    from bedside import VERSION

    assert f"host tools {__version__}" in out and f"firmware {VERSION}" in out


# --- ports -----------------------------------------------------------------------------
def test_ports_marks_a_pico_running_micropython(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ-HOST-11: `bedside ports` lists every port and marks the Pico running MicroPython
    (VID:PID 2E8A:0005, from the one table) as likely a Bedside device."""
    from serial.tools import list_ports

    fake = [
        SimpleNamespace(
            device="/dev/ttyUSB0", vid=0x0403, pid=0x6001, description="FT232R", serial_number="A1"
        ),
        SimpleNamespace(
            device="/dev/ttyACM0",
            vid=0x2E8A,
            pid=0x0005,
            description="Board in FS mode",
            serial_number="E66",
        ),
        SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, description="n/a"),
    ]
    monkeypatch.setattr(list_ports, "comports", lambda: fake)
    code, out, _ = run(capsys, "ports")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("* /dev/ttyACM0") and "2E8A:0005" in lines[0]
    assert "Raspberry Pi Pico running MicroPython" in lines[0]
    assert any(x.startswith("  /dev/ttyUSB0") for x in lines)
    code, out, _ = run(capsys, "ports", "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["likely_bedside"] for r in rows] == [True, False, False]


def test_port_takes_a_pyserial_url(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-HOST-11, REQ-HOST-17: --port takes a pyserial URL; one that cannot be opened is
    exit 2 with one line, no traceback."""
    code, _out, err = run(capsys, "settings", "get", "--port", "socket://127.0.0.1:1")
    assert code == 2 and "cannot open socket://127.0.0.1:1" in err
    assert len(err.strip().splitlines()) == 1
    code, _out, err = run(capsys, "nibp", "start", "--port", "/dev/no-such-port")
    assert code == 2 and "cannot open" in err


def test_silent_port_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-HOST-17: a port with no Bedside device answering: exit 1, one line."""
    peer = PtyPeer()
    try:
        code, _out, err = run(capsys, "settings", "get", "--port", peer.path)
    finally:
        peer.close()
    assert code == 1 and "no answer from a Bedside device" in err


# --- settings --------------------------------------------------------------------------
def test_settings_get_and_json(dev: FakeDevice, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-HOST-12: `settings get` shows every setting with default, unit and who may set it;
    --json gives name: value."""
    code, out, _ = run(capsys, "settings", "get", "--port", dev.path)
    assert code == 0
    assert any(x.split()[:2] == ["spo2_low", "90"] and "operator" in x for x in out.splitlines())
    assert any(x.split()[0] == "latch_high" and "organisation" in x for x in out.splitlines())
    code, out, _ = run(
        capsys, "settings", "get", "spo2_low", "pr_high", "--json", "--port", dev.path
    )
    assert json.loads(out) == {"spo2_low": 90, "pr_high": 130}
    code, _out, err = run(capsys, "settings", "get", "nope", "--port", dev.path)
    assert code == 2 and "unknown setting" in err


def test_settings_set_shows_each_change_with_operator(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-HOST-12, REQ-HOST-13: `settings set` changes the values, shows old -> new, and the
    device records the operator as `by`."""
    code, out, _ = run(
        capsys,
        "settings",
        "set",
        "spo2_low=88",
        "pr_high=140",
        "--operator",
        "Ada",
        "--port",
        dev.path,
    )
    assert code == 0, out
    assert "spo2_low: 90 -> 88" in out and "pr_high: 130 -> 140" in out
    assert [m["by"] for m in dev.sent_of("setting")] == ["Ada", "Ada"]
    assert dev.settings["spo2_low"] == 88
    code, out, _ = run(capsys, "settings", "set", "spo2_low=88", "--port", dev.path)
    assert code == 0 and "already 88" in out


def test_settings_set_bad_input_exit_2_before_the_device(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """REQ-HOST-12, REQ-HOST-17: a value outside the firmware table's range, a wrong choice,
    an unknown name or a malformed assignment: exit 2 with one line, no port opened."""
    for args, text in (
        (["spo2_low=200"], "spo2_low must be within 80..98"),
        (["spo2_delay_mode=sometimes"], "spo2_delay_mode must be one of fixed, integral"),
        (["nope=1"], "unknown setting 'nope'"),
        (["spo2_low"], "expected NAME=VALUE"),
        (["spo2_low=abc"], "spo2_low must be a whole number"),
    ):
        code, _out, err = run(capsys, "settings", "set", *args, "--port", "/dev/no-such-port")
        assert code == 2 and text in err, (args, err)
        assert "cannot open" not in err


def test_settings_set_refused_by_the_device_exit_1(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-HOST-12, REQ-HOST-17: what the device refuses (an organisation setting) is exit 1
    with the device's reason."""
    code, _out, err = run(capsys, "settings", "set", "latch_high=0", "--port", dev.path)
    assert code == 1 and "responsible organisation" in err
    assert dev.settings["latch_high"] == 1
    code, _out, err = run(capsys, "settings", "set", "spo2_desat=92", "--port", dev.path)
    assert code == 1 and "spo2_desat=92: spo2_desat must stay below spo2_low" in err
    assert len(err.strip().splitlines()) == 1


def test_operator_name_order(
    dev: FakeDevice,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """REQ-HOST-13: --operator, then $BEDSIDE_OPERATOR, then the config file's operator; a
    name longer than 32 characters is refused (exit 2)."""
    cfg = tmp_path / "config" / "bedside" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('operator = "From Config"\n')
    run(capsys, "settings", "set", "pr_low=45", "--port", dev.path)
    monkeypatch.setenv("BEDSIDE_OPERATOR", "From Env")
    run(capsys, "settings", "set", "pr_low=46", "--port", dev.path)
    run(capsys, "settings", "set", "pr_low=47", "--operator", "From Flag", "--port", dev.path)
    assert [m["by"] for m in dev.sent_of("setting")] == ["From Config", "From Env", "From Flag"]
    code, _out, err = run(
        capsys, "settings", "set", "pr_low=48", "--operator", "x" * 33, "--port", dev.path
    )
    assert code == 2 and "longer than 32" in err


def test_settings_diff_against_defaults_and_a_file(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ-HOST-12: `settings diff` lists what differs from the defaults, or from a file."""
    code, out, _ = run(capsys, "settings", "diff", "--port", dev.path)
    assert code == 0 and "no differences" in out
    run(capsys, "settings", "set", "spo2_low=92", "--port", dev.path)
    code, out, _ = run(capsys, "settings", "diff", "--json", "--port", dev.path)
    assert [json.loads(x) for x in out.splitlines()] == [
        {"name": "spo2_low", "device": 92, "default": 90}
    ]
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"spo2_low": 92, "pr_high": 120}))
    code, out, _ = run(capsys, "settings", "diff", "--against", str(f), "--port", dev.path)
    assert code == 0 and "pr_high" in out and "spo2_low" not in out


def test_settings_export_then_import_sets_only_changes(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ-HOST-12: export writes every setting; import sets only the values that differ and
    shows each change; the same file again changes nothing."""
    f = tmp_path / "settings.json"
    run(capsys, "settings", "set", "spo2_low=93", "pr_low=55", "--port", dev.path)
    code, out, _ = run(capsys, "settings", "export", "-o", str(f), "--port", dev.path)
    assert code == 0
    doc = json.loads(f.read_text())
    assert doc["format"] == "bedside-settings" and doc["settings"]["spo2_low"] == 93
    run(capsys, "settings", "set", "spo2_low=90", "pr_low=50", "pr_high=150", "--port", dev.path)
    n_sets = len(dev.commands_of("set"))
    code, out, _ = run(capsys, "settings", "import", str(f), "--dry-run", "--port", dev.path)
    assert code == 0 and "(dry run)" in out and len(dev.commands_of("set")) == n_sets
    code, out, _ = run(capsys, "settings", "import", str(f), "--port", dev.path)
    assert code == 0, out
    lines = out.splitlines()
    assert lines == ["pr_high: 150 -> 130", "pr_low: 50 -> 55", "spo2_low: 90 -> 93"]
    assert len(dev.commands_of("set")) == n_sets + 3
    code, out, _ = run(capsys, "settings", "import", str(f), "--port", dev.path)
    assert code == 0 and "nothing to change" in out


def test_settings_import_refuses_an_invalid_file_whole(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ-HOST-12, REQ-HOST-17: one invalid value (or an unknown name, or not JSON) refuses
    the whole file with a clear error, exit 2, and nothing is changed."""
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"spo2_low": 88, "pr_high": 999, "colour": "red"}))
    code, _out, err = run(capsys, "settings", "import", str(f), "--port", dev.path)
    assert code == 2 and "nothing changed" in err
    assert "pr_high must be within 80..220" in err and "unknown setting 'colour'" in err
    f.write_text("{not json")
    code, _out, err = run(capsys, "settings", "import", str(f), "--port", dev.path)
    assert code == 2 and "not valid JSON" in err
    code, _out, err = run(capsys, "settings", "import", str(tmp_path / "none.json"))
    assert code == 2 and "cannot read" in err
    assert dev.commands_of("set") == []


def test_settings_import_orders_limits_that_must_stay_apart(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ-HOST-12: raising both SpO2 limits needs the low limit first (desat must stay below
    it): a refused change is retried after the others."""
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"spo2_desat": 92, "spo2_low": 95}))
    code, out, err = run(capsys, "settings", "import", str(f), "--port", dev.path)
    assert code == 0, err
    assert out.splitlines() == ["spo2_low: 90 -> 95", "spo2_desat: 85 -> 92"]
    assert dev.settings["spo2_desat"] == 92


def test_settings_import_organisation_values(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ-HOST-12: a file that changes organisation settings is refused before anything is
    set, unless --operator-settings-only skips them."""
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"spo2_low": 88, "audio_pause_s": 60}))
    code, _out, err = run(capsys, "settings", "import", str(f), "--port", dev.path)
    assert code == 2 and "audio_pause_s" in err and dev.commands_of("set") == []
    code, out, _ = run(
        capsys, "settings", "import", str(f), "--operator-settings-only", "--port", dev.path
    )
    assert code == 0 and "audio_pause_s: skipped" in out and "spo2_low: 90 -> 88" in out


# --- log -------------------------------------------------------------------------------
def test_log_reads_every_page_with_times_where_known(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-HOST-14: `bedside log` reads every page (16 records each) of the flash alarm log;
    records of the current boot have a wall-clock time, older boots their uptime only."""
    with FakeDevice(tmp_path, report_s=0.25) as dev:
        for i in range(20):
            with dev.lock:
                dev.alarm(
                    "PR_HIGH",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "medium",
                    140,
                    130,
                )
        dev.restart("soft")
        for i in range(20):
            with dev.lock:
                dev.alarm(
                    "SPO2_LOW",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "medium",
                    86,
                    90,
                )
        time.sleep(0.3)
        code, out, err = run(capsys, "log", "--port", dev.path)
        assert code == 0, err
        rows = [x for x in out.splitlines() if x.startswith("#")]
        assert len(rows) == 40
        assert all("(time unknown)" in x and "boot 1" in x for x in rows[:20])
        assert all("(time unknown)" not in x and "boot 2" in x for x in rows[20:])
        assert "SPO2_LOW medium raise -> active  value 86 limit 90" in rows[20]
        assert len(dev.commands_of("log")) >= 3  # pages of 16
        code, out, _ = run(capsys, "log", "--json", "--from", "30", "--port", dev.path)
        recs = [json.loads(x) for x in out.splitlines()]
        assert [r["n"] for r in recs] == list(range(30, 40))
        assert all(r["wall_time"] is not None for r in recs)
        code, out, _ = run(capsys, "log", "--which", "event", "--port", dev.path)
        assert code == 0 and "boot reset_cause=power_on" in out
        code, _out, err = run(capsys, "log", "--from", "-1", "--port", dev.path)
        assert code == 2


# --- nibp ------------------------------------------------------------------------------
def test_nibp_start_stop_and_refusals(dev: FakeDevice, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-HOST-15, REQ-HOST-17: start and stop are sent; what cannot apply is refused by the
    device with its reason (exit 1)."""
    code, out, _ = run(capsys, "nibp", "start", "--port", dev.path)
    assert code == 0 and "started" in out and dev.nibp_state == "measuring"
    code, _out, err = run(capsys, "nibp", "start", "--port", dev.path)
    assert code == 1 and "a measurement is already running" in err
    code, out, _ = run(capsys, "nibp", "stop", "--port", dev.path)
    assert code == 0 and dev.nibp_state == "idle"
    code, _out, err = run(capsys, "nibp", "stop", "--port", dev.path)
    assert code == 1 and "no measurement is running" in err
    code, out, _ = run(capsys, "nibp", "start", "--wait", "--port", dev.path)
    assert code == 0 and "NIBP 128/82 mmHg (mean 97), pulse 71/min" in out


def test_nibp_without_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-HOST-15: a device without an NIBP module refuses; exit 1 with the reason."""
    with FakeDevice(tmp_path, nibp=False) as dev:
        code, _out, err = run(capsys, "nibp", "start", "--port", dev.path)
    assert code == 1 and "no NIBP module" in err


# --- audio off -------------------------------------------------------------------------
def test_audio_off_refused_unless_the_organisation_allows(
    dev: FakeDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ-HOST-16, REQ-HOST-17: refused cleanly (exit 1, the device's reason) when
    audio_off_allowed is 0; a lease outside 10..300 s is bad input (exit 2)."""
    code, _out, err = run(capsys, "audio-off", "--port", dev.path, "--duration", "1")
    assert code == 1 and "audio_off_allowed" in err and "Traceback" not in err
    code, _out, err = run(capsys, "audio-off", "--lease", "5", "--port", dev.path)
    assert code == 2 and "10..300" in err


def test_audio_off_ended_by_the_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REQ-HOST-16: when the device ends AUDIO OFF (withdrawn, lease, link lost) the command
    says so and exits 1; it does not enter AUDIO OFF again by itself."""
    with FakeDevice(tmp_path, report_s=0.25, org={"audio_off_allowed": 1}) as dev:

        def withdraw() -> None:
            time.sleep(1.0)
            with dev.lock:
                dev._end_audio_off("withdrawn")

        threading.Thread(target=withdraw, daemon=True).start()
        code, _out, err = run(capsys, "audio-off", "--port", dev.path, "--duration", "8")
        assert code == 1 and "the device ended AUDIO OFF (withdrawn)" in err
        assert len([c for c in dev.commands_of("audio_off") if c["on"]]) == 1


def test_audio_off_renews_the_lease_until_interrupted(tmp_path: Path) -> None:
    """REQ-HOST-16: `bedside audio-off` enters AUDIO OFF, renews the lease before it runs out
    until Ctrl-C, then leaves AUDIO OFF (exit 0)."""
    with FakeDevice(tmp_path, report_s=0.25, org={"audio_off_allowed": 1}) as dev:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bedside_host.cli",
                "audio-off",
                "--lease",
                "10",
                "--port",
                dev.path,
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(8.0)  # renewed every 10/3 s: at least twice
            with dev.lock:
                assert dev.audio_off_until is not None
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        ons = [c for c in dev.commands_of("audio_off") if c["on"]]
        assert len(ons) >= 3 and all(c["lease_s"] == 10 for c in ons)
        assert dev.commands_of("audio_off")[-1]["on"] is False
        assert dev.audio_off_until is None
        assert not [m for m in dev.sent_of("audio_off") if m["reason"] == "lease_expired"]
        assert "AUDIO OFF ended" in out


def test_log_line_names_only_the_values_an_event_has() -> None:
    """REQ-HOST-40: `bedside log` shows an alarm event's value and limit only where the
    event has them (a communication loss has a timeout limit and no value: no "None")."""
    from bedside_host.commands.log import describe

    comm = {
        "condition": "OXI_COMM_LOST",
        "priority": "medium",
        "event": "raise",
        "state": "active",
        "value": None,
        "limit": 5,
    }
    assert describe(comm) == "OXI_COMM_LOST medium raise -> active  limit 5"
    low = dict(comm, condition="SPO2_LOW", value=86, limit=90)
    assert describe(low).endswith("  value 86 limit 90")
    assert "None" not in describe(dict(comm, limit=None))
