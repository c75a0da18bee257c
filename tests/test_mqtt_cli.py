"""`bedside gateway`, `bedside record --mqtt`, `bedside hl7`: options, errors, and `bedside hl7
--db` following a record file (REQ-MQ, REQ-HL7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bedside_host.commands.hl7 import chair_of
from bedside_host.store import Store
from mllplistener import MllpListener
from recordsim import DeviceSim, alarm

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


def _bedside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bedside_host.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_bad_options_exit_2_with_one_line(tmp_path: Path) -> None:
    """REQ-MQ-01, REQ-HL7-06: a bad broker or MLLP URL, a site or chair name with MQTT
    wildcards or '/', a missing port, --port with --mqtt, and --site without --mqtt are exit 2
    with a readable line and no traceback; the help texts name the options."""
    db = str(tmp_path / "r.db")
    gw = ["gateway", "--port", "loop://", "--site", "clinic1", "--chair", "c1"]
    cases = [
        ([*gw, "--mqtt", "http://broker"], "bad broker URL"),
        ([*gw[:-1], "c/1", "--mqtt", "mqtt://127.0.0.1:1"], "bad chair"),
        (
            [
                "gateway",
                "--port",
                "loop://",
                "--site",
                "a+",
                "--chair",
                "c1",
                "--mqtt",
                "mqtt://h",
            ],
            "bad site",
        ),
        (
            [
                "gateway",
                "--port",
                str(tmp_path / "ttyNONE"),
                "--site",
                "s",
                "--chair",
                "c",
                "--mqtt",
                "mqtt://h",
            ],
            "no such port",
        ),
        (["record", "--mqtt", "mqtt://h", "--port", "loop://", "--db", db], "exclude"),
        (["record", "--site", "s1", "--db", db], "--site needs --mqtt"),
        (["record", "--mqtt", "mqtt://h", "--site", "#", "--db", db], "bad site"),
        (["record", "--db", db], "--port"),
        (["hl7", "--mqtt", "mqtt://h", "--hl7", "http://x"], "mllp://"),
        (["hl7", "--mqtt", "mqtt://h", "--hl7", "mllp://x"], "give the port"),
        (["hl7", "--db", str(tmp_path / "none.db"), "--hl7", "mllp://x:1"], "no record file"),
        (["hl7", "--mqtt", "mqtt://h", "--hl7", "mllp://x:1", "--period", "0"], "--period"),
    ]
    for args, text in cases:
        res = _bedside(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert text in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) <= 3
    assert not Path(db).exists()
    for cmd, opts in (
        ("gateway", ("--port", "--mqtt", "--site", "--chair", "--db", "--keepalive")),
        ("record", ("--mqtt", "--site")),
        ("hl7", ("--mqtt", "--db", "--hl7", "--dead-letter", "--period")),
    ):
        res = _bedside(cmd, "--help")
        assert res.returncode == 0 and all(o in res.stdout for o in opts), cmd


def test_chair_ids_of_record_devices() -> None:
    """REQ-HL7-06: a record file's device key becomes a chair id: kept when it is one
    (recorded from MQTT), else the site plus the port made safe."""
    assert chair_of("clinic1/c1", "x") == "clinic1/c1"
    assert chair_of("/dev/ttyACM0", "local") == "local/dev_ttyACM0"
    assert chair_of("socket://127.0.0.1:5000", "s") == "s/socket_127.0.0.1_5000"


def test_hl7_follows_a_record_file(tmp_path: Path) -> None:
    """REQ-HL7-06: `bedside hl7 --db FILE` sends what a recorder writes into the record file
    after it started (PCD-04 for the alarm events, PCD-01 for the NIBP result), not the
    history already in it; each message passes hl7apy at the listener."""
    db = tmp_path / "r.db"
    sim = DeviceSim(boot=4)
    st = Store(db)
    st.add(alarm(sim, 1000, "PR_HIGH", "medium", "active", "raise", 131, 130))  # history
    st.flush()
    listener = MllpListener()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "hl7",
            "--db",
            str(db),
            "--site",
            "clinic2",
            "--hl7",
            listener.url,
            "--dead-letter",
            str(tmp_path / "dead.jsonl"),
            "--quiet",
        ],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        now = time.time()
        for item in (
            alarm(sim, 2000, "SPO2_LOW", "high", "active", "raise", 86, 90),
            sim.send(2500, "nibp", sys=121, dia=79, map=93, pr=70, age_s=0),
            alarm(sim, 3000, "SPO2_LOW", "high", "inactive", "end", 93, 90),
        ):
            st.add(type(item)(item.port, item.line, item.msg, now, now, False))
        st.flush()
        end = time.monotonic() + 20
        while time.monotonic() < end and len(listener.got) < 3:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        listener.close()
        st.close()
    assert proc.returncode == 0, err
    r40 = listener.texts("ORU^R40")
    assert len(r40) == 2 and all("SPO2_LOW" in t for t in r40)
    assert not any("PR_HIGH" in g.text for g in listener.got)  # history is not re-sent
    r01 = listener.texts("ORU^R01")
    assert r01 and "150021^" in r01[0] and "clinic2^^dev_ttyACM0" in r01[0]
    assert all(g.problems == [] for g in listener.got)
    assert "2 PCD-04" in err
