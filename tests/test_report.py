"""`bedside report`: one self-contained HTML page per session, PDF on request (REQ-REC)."""

from __future__ import annotations

import base64
import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bedside_host.link.messages import Gap
from bedside_host.report import alarm_episodes, alarm_rows, collect, write_report
from bedside_host.store import Store
from recordsim import PORT, T0, DeviceSim, alarm, session_stream, with_replays

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
PNG = b"\x89PNG\r\n\x1a\n"


def _bedside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bedside_host.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "rec.db"
    st = Store(path)
    items: list[Any] = with_replays(session_stream(boot=7, seconds=600))
    # a real gap: these lines never arrive (the store keeps a gap only where it lacks lines)
    items = [i for i in items if i.msg["boot"] != 7 or i.msg.get("seq") not in (410, 411, 412)]
    items.append(Gap(PORT, 7, 410, 412, "lost in transit; the alarm log had none", T0 + 420))
    sim = DeviceSim(boot=8, t0=T0 + 1000)  # another session: must not leak into boot 7's
    alarm(sim, 5000, "CHECK_OVERDUE", "low", "active", "raise")
    for it in items + sim.out:
        st.add(it)
    st.close()
    return path


def _images(page: str) -> list[bytes]:
    return [
        base64.b64decode(b)
        for b in re.findall(
            r'<img [^>]*src="data:image/png;base64,'
            r'([A-Za-z0-9+/=]+)"',
            page,
        )
    ]


def test_report_holds_plots_and_every_alarm(db: Path, tmp_path: Path) -> None:
    """REQ-REC-12: the HTML report is one self-contained page: PNG plots embedded as base64,
    the "Not a certified medical device" header, every alarm condition of the session with
    duration and who acknowledged, setting changes with who, events and link gaps; nothing of
    other sessions and no external resource."""
    out = tmp_path / "r.html"
    res = _bedside("report", "--db", str(db), "--session", "1", "-o", str(out))
    assert res.returncode == 0, res.stderr
    page = out.read_text(encoding="utf-8")
    imgs = _images(page)
    assert len(imgs) >= 2 and all(i.startswith(PNG) and len(i) > 10_000 for i in imgs)
    assert "Not a certified medical device" in page[: page.index("<h1>")]
    assert not re.search(r'(src|href)="(?!data:)', page)  # mailable: nothing to fetch
    st = Store(db)
    s = st.session(1)
    for a in st.alarms(s):
        assert f"<td>{a['condition']}</td>" in page
    assert "CHECK_OVERDUE" not in page
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "ACK key at the bedside" in text
    assert "nurse.kim" in text and "90 -> 88" in text
    assert "410-412" in text and "lost in transit" in text
    assert "fault in display" in text
    st.close()


def test_alarm_durations_and_acknowledgements(db: Path) -> None:
    """REQ-REC-12: an episode runs from raise to the event that makes it inactive (end or
    reset); acks name the key event recorded with them; an alarm still active at the end of
    the record says so."""
    st = Store(db)
    d = collect(st, st.session(1))
    ep = {e.condition: e for e in d.episodes}
    spo2 = ep["SPO2_LOW"]
    assert spo2.duration(d.end) == (pytest.approx(42.0), True)
    assert [a.by for a in spo2.acks] == ["ACK key at the bedside"]
    assert spo2.acks[0].t == pytest.approx(T0 + 140.005)
    bp = ep["NIBP_SYS_HIGH"]
    assert bp.priority == "high" and bp.end_event == "reset"
    assert bp.duration(d.end) == (pytest.approx(80.001), True)
    old = alarm_rows(collect(st, st.session(2)))  # boot 6: only its flash-log records, no clock
    assert [r[:6] for r in old] == [
        [
            "PR_HIGH",
            "medium",
            "",
            "uptime 0:05 (clock not known)",
            "uptime 0:09 (clock not known)",
            "0:04",
        ]
    ]
    st.close()
    sim = DeviceSim(boot=1)
    alarm(sim, 1000, "PR_HIGH", "medium", "active", "raise", 131, 130)
    alarm(sim, 2000, "PR_HIGH", "high", "active", "escalate", 150, 130)
    alarm(sim, 3000, "SPO2_LOW", "medium", "inactive", "end", 95, 90)  # raised before record
    rows = [
        {
            **i.msg,
            "wall_time": i.wall_time,
            "rx_time": i.rx_time,
            "source": "live",
            "limit": i.msg["limit"],
        }
        for i in sim.out
    ]
    eps = alarm_episodes(rows, [])
    first = eps[0]
    assert first.condition == "SPO2_LOW" and first.raised is None
    pr = eps[1]
    assert pr.priority == "high" and pr.ended is None
    assert pr.duration(T0 + 10) == (pytest.approx(9.0), False)
    assert pr.acks == []


def test_device_text_is_escaped(tmp_path: Path) -> None:
    """REQ-REC-12: text from the device (a fault message) cannot inject markup."""
    sim = DeviceSim(boot=2)
    sim.send(0, "hello", fw="<b>x</b>", reset_cause="soft", id=None)
    sim.send(500, "oxi", spo2=97, pr=70, flags=[], quality="good")
    sim.send(1000, "fault", where="tick", error="<script>alert(1)</script>", count=1)
    st = Store(tmp_path / "e.db")
    for it in sim.out:
        st.add(it)
    st.flush()
    out = tmp_path / "e.html"
    write_report(st, st.session(1), out)
    page = out.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>x</b>" not in page
    st.close()


def test_pdf_written_beside_the_html(db: Path, tmp_path: Path) -> None:
    """REQ-REC-13: --pdf writes the same report as a PDF (plots, then the tables)."""
    out = tmp_path / "r.html"
    res = _bedside("report", "--db", str(db), "--session", "1", "-o", str(out), "--pdf")
    assert res.returncode == 0, res.stderr
    pdf = out.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 3
    assert b"Not a certified medical device" in pdf


def test_report_errors_exit_2_with_one_line(db: Path, tmp_path: Path) -> None:
    """REQ-REC-11: a missing record file or an unknown session exits 2 with one clear line;
    --session is required; nothing is written."""
    out = tmp_path / "r.html"
    res = _bedside("report", "--db", str(tmp_path / "none.db"), "--session", "1", "-o", str(out))
    assert res.returncode == 2
    assert res.stderr.strip() == f"bedside report: error: no record file {tmp_path / 'none.db'}"
    res = _bedside("report", "--db", str(db), "--session", "42", "-o", str(out))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"bedside report: error: no session 42 in {db} (sessions 1-3)"
    ]
    res = _bedside("report", "--db", str(db), "-o", str(out))
    assert res.returncode == 2 and "--session" in res.stderr
    assert not out.exists() and not (tmp_path / "none.db").exists()
