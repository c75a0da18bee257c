"""Capture and replay (issue "Host tools"): `bedside sil --capture` and `bedside replay`.

One live SIL run with a desaturation is captured once (module fixture); the tests replay it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from bedside_host.cli import COMMANDS
from bedside_host.commands import replay as replay_cmd
from bedside_host.sil.capture import FORMAT, VERSION, read_capture
from silharness import BEDSIDE, ROOT, Sil

pytestmark = pytest.mark.slow


def bedside(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "host_tools")}
    return subprocess.run(
        [*BEDSIDE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **env),
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A capture of a SIL run: normal SpO2, then 80 % (below SPO2_DESAT 85 and SPO2_LOW 90),
    and the alarm messages the live device sent to the host."""
    tmp = tmp_path_factory.mktemp("capture")
    cap = tmp / "run.capture"
    sil = Sil(tmp, "--set", "spo2_low_delay_s=2", "--capture", str(cap))
    try:
        sil.feed_oximeter(2.0, 72, 97)
        sil.wait_for(
            lambda m: m["type"] == "alarm" and m["condition"] == "SPO2_LOW", 10, feed=(72, 80)
        )
        sil.feed_oximeter(1.0, 72, 80)
        sil.host_messages()
        code, _out = sil.stop()
        assert code == 0
    finally:
        sil.kill()
    return cap, [m for m in sil.messages if m["type"] == "alarm"]


def raises(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["condition"], e["priority"]) for e in events if e["event"] == "raise"}


def test_capture_file_format(live: tuple[Path, list[dict[str, Any]]]) -> None:
    """REQ-REP-01, REQ-HOST-30: the capture keeps each port's raw bytes with times, under a
    header naming the format version (2, source "sil"), the oximeter format and the settings
    in force; it ends with an end line when the SIL stops."""
    cap_path, _ = live
    lines = [json.loads(x) for x in cap_path.read_text().splitlines()]
    head = lines[0]
    assert head["format"] == FORMAT and head["version"] == VERSION == 2
    assert head["source"] == "sil"
    assert head["oximeter_format"] == "nonin2"
    assert head["settings"]["spo2_low_delay_s"] == 2
    assert head["changed"] == {"spo2_low_delay_s": 2}
    assert lines[-1]["end"] is True
    recs = lines[1:-1]
    assert recs and all(r["port"] == "oximeter" for r in recs)
    assert all(b["t_ms"] >= a["t_ms"] for a, b in itertools.pairwise(recs))
    cap = read_capture(cap_path)
    data = b"".join(d for _t, _p, d in cap.records)
    assert len(data) % 125 == 0 and len(data) >= 125 * 10  # whole Format #2 packets, unchanged
    assert cap.complete and cap.end_ms >= recs[-1]["t_ms"]


def test_replay_reproduces_the_live_raise_events(
    live: tuple[Path, list[dict[str, Any]]],
) -> None:
    """REQ-REP-02: replaying a capture through the same firmware gives an alarm timeline
    with the same raise events as the live SIL run, and reports hours replayed per second."""
    cap_path, live_alarms = live
    assert ("SPO2_DESAT", "high") in raises(live_alarms)
    assert ("SPO2_LOW", "medium") in raises(live_alarms)
    r = bedside("replay", str(cap_path), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert raises(out["timeline"]) == raises(live_alarms)
    desat = next(e for e in out["timeline"] if e["condition"] == "SPO2_DESAT")
    assert desat["value"] == 80 and desat["limit"] == 85 and desat["priority"] == "high"
    assert out["hours_per_s"] > 0
    text = bedside("replay", str(cap_path))
    assert text.returncode == 0, text.stderr
    assert re.search(r"SPO2_DESAT\s+high\s+raise\s+value\s+80\s+limit\s+85", text.stdout)
    assert "h of capture per second" in text.stdout


def test_version_1_capture_still_replays(
    live: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """REQ-HOST-30: a version 1 capture (sensor ports only, no "source") written before the
    host port and keys were captured replays to the same alarm timeline."""
    cap_path, _ = live
    lines = cap_path.read_text().splitlines()
    head = json.loads(lines[0])
    recs = [json.loads(x) for x in lines[1:]]
    assert all(r.get("port") in (None, "oximeter", "nibp") and "keys" not in r for r in recs)
    del head["source"]
    head["version"] = 1
    old = tmp_path / "v1.capture"
    old.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    a = bedside("replay", str(cap_path), "--json")
    b = bedside("replay", str(old), "--json")
    assert a.returncode == b.returncode == 0, b.stderr
    assert json.loads(a.stdout)["timeline"] == json.loads(b.stdout)["timeline"]


def test_compare_reports_a_changed_default_limit(
    live: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """REQ-REP-03: `--compare` runs two builds over the same capture: identical builds exit
    0; a build whose default SPO2_DESAT limit is 75 instead of 85 differs (exit 1), and the
    difference names the DESAT raise only the first build has."""
    cap_path, _ = live
    fw = ROOT / "firmware"
    same = tmp_path / "same"
    shutil.copytree(fw, same / "firmware")
    r = bedside("replay", str(cap_path), "--compare", str(same))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "identical" in r.stdout
    changed = tmp_path / "changed" / "firmware"
    shutil.copytree(fw, changed)
    settings = changed / "bedside" / "settings.py"
    text = settings.read_text()
    new = text.replace('"spo2_desat": (85,', '"spo2_desat": (75,', 1)
    assert new != text
    settings.write_text(new)
    r = bedside("replay", str(cap_path), "--firmware", str(fw), "--compare", str(changed))
    assert r.returncode == 1, r.stdout + r.stderr
    minus = [x for x in r.stdout.splitlines() if x.startswith("-") and "SPO2_DESAT" in x]
    assert minus and "raise" in minus[0]
    assert not [x for x in r.stdout.splitlines() if x.startswith("+") and "SPO2_DESAT" in x]
    rj = bedside("replay", str(cap_path), "--compare", str(changed), "--json")
    assert rj.returncode == 1
    out = json.loads(rj.stdout)
    assert not out["identical"]
    assert ("SPO2_DESAT", "high") in raises(out["a"]["timeline"])
    assert ("SPO2_DESAT", "high") not in raises(out["b"]["timeline"])


@pytest.mark.parametrize(
    "content, why",
    [
        ("", "empty file"),
        ("hello\n", "line 1: not JSON"),
        ('{"format": "other"}\n', "line 1: not a bedside-capture header"),
        (
            '{"format": "bedside-capture", "version": 1, "oximeter_format": "nonin2",'
            ' "settings": {}, "changed": {}}\n{"t_ms": 5, "port": "oximeter", "hex": "zz"}\n',
            "line 2: 'hex'",
        ),
        (
            '{"format": "bedside-capture", "version": 1, "oximeter_format": "nonin2",'
            ' "settings": {}, "changed": {}}\n{"t_ms": 5, "port": "host", "hex": "00"}\n',
            "line 2: 'port'",
        ),
        (
            '{"format": "bedside-capture", "version": 1, "oximeter_format": "nonin2",'
            ' "settings": {}, "changed": {}}\n{"t_ms": 9, "port": "nibp", "hex": "00"}\n'
            '{"t_ms": 5, "port": "nibp", "hex": "00"}\n',
            "line 3: time goes backwards",
        ),
    ],
)
def test_bad_capture_is_exit_2_with_one_line(tmp_path: Path, content: str, why: str) -> None:
    """REQ-REP-04, REQ-HOST-30: a bad capture file (or a missing one, or a bad --firmware
    directory) is exit 2 with one clear line naming the file and the line, no traceback;
    version 1 files are read by version 1's rules (no host port)."""
    bad = tmp_path / "bad.capture"
    bad.write_text(content)
    r = bedside("replay", str(bad))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bedside replay: ") and why in lines[0]
    assert str(bad) in lines[0] and not r.stdout
    r = bedside("replay", str(tmp_path / "missing.capture"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    good = tmp_path / "ok.capture"
    good.write_text(content.splitlines()[0] + "\n" if content.startswith('{"format": "b') else "")
    if good.read_text():
        r = bedside("replay", str(good), "--firmware", str(tmp_path))
        assert r.returncode == 2 and "no firmware core" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_replay_help_matches_the_command_table() -> None:
    """REQ-REP-02: `bedside replay` is in the lazy command table with its module's HELP."""
    assert COMMANDS["replay"] == ("replay", replay_cmd.HELP)
