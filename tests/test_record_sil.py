"""`bedside record` against the real SIL (issue 10 "Tests"): the recorder is killed (SIGKILL)
at random instants during a burst of alarms and restarted on the same record file; the SIL is
frozen (SIGSTOP, the "cable" going quiet) and thawed; the file then holds every message the
device sent exactly once, and what the device could no longer give is a recorded gap, never
a silent hole. `--raw` keeps the port's bytes with host receive times."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bedside_host.sil.capture import read_capture
from bedside_host.store import BATCH_MS
from mputil import nonin2_packet
from silharness import BEDSIDE, ROOT, Sil

pytestmark = pytest.mark.slow
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


class Patient:
    """Feeds the SIL's oximeter at its real rate: SpO2 alternating 97 % / 80 % every `swing`
    seconds (SPO2_DESAT raised and ended: a burst of alarm events); `checks` presses of the
    CHECK key (a `button` line each) may be asked for, one every 0.3 s."""

    def __init__(self, sil: Sil, swing: float = 2.0) -> None:
        self.sil = sil
        self.swing = swing
        self.checks = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        next_check = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            low = int((now - t0) / self.swing) % 2 == 1
            try:
                self.sil.write("oximeter", nonin2_packet(72, 80 if low else 97))
                if self.checks and now >= next_check:
                    self.sil.button("check")
                    self.checks -= 1
                    next_check = now + 0.3
            except (OSError, ValueError):
                return
            self.stop.wait(1 / 3)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def recorder(port: str, db: Path, raw: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BEDSIDE, "record", "--port", port, "--db", str(db), "--raw", str(raw), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.fixture
def sil(tmp_path: Path) -> Iterator[Sil]:
    s = Sil(tmp_path)
    os.close(s.fds.pop("host"))  # the recorder is the host port's one reader
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGCONT)
        s.kill()


def device_log(port: str) -> list[dict[str, Any]]:
    """Every record of the device's flash alarm log (`bedside log --json`)."""
    r = subprocess.run(
        [*BEDSIDE, "log", "--port", port, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def check_exactly_once(db: Path, boot: int) -> tuple[set[int], list[tuple[int, int, str]]]:
    """Each seq of the boot is stored once or lies in exactly one recorded gap, never both;
    returns the stored seqs and the gaps."""
    conn = sqlite3.connect(db)
    try:
        dup = conn.execute(
            "SELECT seq, count(*) FROM raw_lines WHERE boot = ? GROUP BY seq HAVING count(*) > 1",
            (boot,),
        ).fetchall()
        assert not dup
        seqs = {r[0] for r in conn.execute("SELECT seq FROM raw_lines WHERE boot = ?", (boot,))}
        gaps = conn.execute(
            "SELECT first_seq, last_seq, reason FROM link_gaps WHERE boot = ? ORDER BY first_seq",
            (boot,),
        ).fetchall()
    finally:
        conn.close()
    top = max(seqs)
    covered: dict[int, int] = {}
    for first, last, _why in gaps:
        assert last != -1 and first <= last  # the device did not restart
        for s in range(first, last + 1):
            covered[s] = covered.get(s, 0) + 1
    assert all(n == 1 for n in covered.values())  # gaps never overlap
    assert not seqs & set(covered), "a stored message also inside a recorded gap"
    assert set(range(1, top + 1)) == seqs | set(covered), "a silent hole"
    return seqs, gaps


def test_kill_the_recorder_at_random_instants(sil: Sil, tmp_path: Path) -> None:
    """REQ-HOST-33, REQ-HOST-38: SIGKILL `bedside record` at random instants during a burst
    of alarms and restart it on the same file (one restart after a long outage in which the
    device sends more than it keeps for replay): every message is stored once, every other
    seq of the boot lies in exactly one recorded gap, every line the raw captures saw is
    stored verbatim, and every alarm event of the device's flash alarm log is in the alarms
    table exactly once."""
    db, raw = tmp_path / "rec.sqlite", tmp_path / "raw"
    port = sil.ports["host"]
    rng = random.Random(int(os.environ.get("BEDSIDE_TEST_SEED", "10")))
    patient = Patient(sil)
    try:
        rec = recorder(port, db, raw)
        for i in range(4):
            time.sleep(rng.uniform(1.5, 4.0))  # start-up, catch-up or steady recording
            rec.send_signal(signal.SIGKILL)
            rec.communicate(timeout=10)
            if i == 2:  # a long outage: the device's replay ring overflows
                patient.checks = 40
                time.sleep(12.0)
            rec = recorder(port, db, raw)
        time.sleep(5.0)
    finally:
        patient.close()
    time.sleep(2.0)  # let the last lines in and the catch-up finish
    err = stop(rec)
    assert "recorded" in err
    entries = device_log(port)
    conn = sqlite3.connect(db)
    boot = conn.execute("SELECT max(boot) FROM raw_lines").fetchone()[0]
    seqs, gaps = check_exactly_once(db, boot)
    assert gaps, "the long outage lost lines the device no longer held: a gap must say so"
    assert len(seqs) > 40
    # every line a raw capture saw the device send is stored verbatim, except a killed run's
    # last uncommitted batch that the device no longer held for the next run: in a gap
    stored = {r[0]: r[1] for r in conn.execute("SELECT seq, line FROM raw_lines")}
    in_gap = {s for f, e, _w in gaps for s in range(f, e + 1)}
    captures = sorted(raw.glob("*.capture"))
    assert len(captures) == 5
    seen = lost = 0
    for path in captures:
        cap = read_capture(path)
        assert cap.source == "link" and cap.header["url"] == port
        assert cap.complete == (path == captures[-1])  # only the last run stopped cleanly
        t_end = cap.records[-1][0] if cap.records else 0
        buf = bytearray()
        for t, p, d in cap.records:
            if p != "device":
                continue
            buf += d
            *lines, rest = bytes(buf).split(b"\n")
            buf = bytearray(rest)
            for line in lines:
                msg = json.loads(line)
                if msg.get("boot") != boot or "seq" not in msg:
                    continue
                seen += 1
                if msg["seq"] in stored:
                    assert stored[msg["seq"]] == line.decode(), msg
                else:  # uncommitted when killed: within the last batch time of the run
                    assert msg["seq"] in in_gap and not cap.complete, msg
                    assert t_end - t <= 2 * BATCH_MS + 500, (msg, t_end - t)
                    lost += 1
    assert seen >= len(seqs) and lost < 30
    # every alarm event of the device's flash log, once
    rows = conn.execute(
        "SELECT t_ms, condition, event, count(*) FROM alarms WHERE boot = ?"
        " GROUP BY t_ms, condition, event",
        (boot,),
    ).fetchall()
    conn.close()
    by_key = {(t, c, e): n for t, c, e, n in rows}
    flash = [r for r in entries if r.get("b") == boot and "condition" in r]
    assert len([r for r in flash if r["condition"] == "SPO2_DESAT"]) >= 4
    for r in flash:
        assert by_key.get((r["u"], r["condition"], r["event"])) == 1, r


def test_frozen_device_mid_burst_then_thawed(sil: Sil, tmp_path: Path) -> None:
    """REQ-HOST-35: the device side goes silent in the middle of a burst of alarms (the SIL
    is frozen with SIGSTOP, as a pulled cable looks to the host) and comes back (SIGCONT);
    the recorder, running throughout, ends with every message of the boot once and no
    silent hole; its raw capture shows the silence in its receive times."""
    db, raw = tmp_path / "rec.sqlite", tmp_path / "raw"
    port = sil.ports["host"]
    patient = Patient(sil, swing=1.5)
    try:
        rec = recorder(port, db, raw)
        time.sleep(5.0)
        os.kill(sil.proc.pid, signal.SIGSTOP)
        time.sleep(4.5)  # longer than the link's stale time
        os.kill(sil.proc.pid, signal.SIGCONT)
        time.sleep(5.0)
    finally:
        patient.close()
    time.sleep(1.5)
    stop(rec)
    conn = sqlite3.connect(db)
    boot = conn.execute("SELECT max(boot) FROM raw_lines").fetchone()[0]
    conn.close()
    seqs, _gaps = check_exactly_once(db, boot)
    assert len(seqs) > 15
    (cap_path,) = raw.glob("*.capture")
    cap = read_capture(cap_path)
    assert cap.complete  # a clean stop writes the end line
    rx = [t for t in cap.rx if t is not None]
    assert max(b - a for a, b in itertools.pairwise(rx)) >= 3.0  # the silence is seen
    # `bedside replay` of a host-link capture: the timeline it recorded, no firmware run
    r = subprocess.run(
        [*BEDSIDE, "replay", str(cap_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["timeline"]
    raised = [x for x in rows if x.get("condition") == "SPO2_DESAT" and x["event"] == "raise"]
    assert len(raised) >= 2 and all(x["boot"] == boot and x["uptime_ms"] > 0 for x in raised)
    r = subprocess.run(
        [*BEDSIDE, "replay", str(cap_path), "--compare", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert r.returncode == 2 and "holds no sensor bytes" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
