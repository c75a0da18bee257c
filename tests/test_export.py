"""`bedside export`: JSON round trip, CSV tables, VitalDB .vital read back (REQ-REC)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from bedside_host.export import export, export_vital
from bedside_host.link.messages import Gap
from bedside_host.store import Store
from recordsim import PORT, T0, DeviceSim, session_stream, with_replays

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))


def _bedside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bedside_host.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


LOST = {250, 251, 252}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two boots of one device (boot 7 with replays and a gap, boot 8) and a second device."""
    path = tmp_path / "rec.db"
    st = Store(path)
    items: list[Any] = with_replays(session_stream(boot=7, seconds=300))
    # a real gap: these lines never arrive (the store keeps a gap only where it lacks lines)
    items = [i for i in items if i.msg["boot"] != 7 or i.msg.get("seq") not in LOST]
    items.append(Gap(PORT, 7, 250, 252, "lost in transit", T0 + 299))
    items += session_stream(boot=8, seconds=60, t0=T0 + 400)
    items += session_stream(boot=2, seconds=30, port="/dev/ttyACM1", t0=T0 + 10)
    for it in items:
        st.add(it)
    st.close()
    return path


def test_json_round_trips_every_stored_line(db: Path, tmp_path: Path) -> None:
    """REQ-REC-08: the JSON export is one document holding every stored message with device,
    boot, seq and receive time; its lines equal the stored lines, verbatim and in order."""
    out = tmp_path / "all.json"
    res = _bedside("export", "--db", str(db), "--format", "json", "-o", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    st = Store(db)
    stored = list(st.raw_lines())
    assert doc["format"] == "bedside-record" and "Not a certified medical device" in doc["note"]
    assert [m["line"] for m in doc["messages"]] == [r.line for r in stored]
    for m, r in zip(doc["messages"], stored):
        assert (m["device"], m["boot"], m["seq"], m["rx_time"]) == (
            r.device,
            r.boot,
            r.seq,
            r.rx_time,
        )
        assert m["msg"] == json.loads(r.line) and m["replayed"] == r.replayed
    assert len(doc["sessions"]) == len(st.sessions())
    assert doc["gaps"][0]["first_seq"] == 250
    one = tmp_path / "one.json"
    s = st.sessions()[0]
    export(st, "json", one, s)
    part = json.loads(one.read_text())
    assert [m["line"] for m in part["messages"]] == [r.line for r in st.raw_lines(s)]
    assert {(m["device"], m["boot"]) for m in part["messages"]} == {(s.device, s.boot)}
    st.close()


def test_csv_tables_in_a_directory_and_a_zip(db: Path, tmp_path: Path) -> None:
    """REQ-REC-09: csv writes vitals, nibp and alarms (and events, settings, gaps) per table,
    into a directory or a zip, with the session number and an ISO UTC time on each row."""
    st = Store(db)
    s = st.sessions()[0]
    d = tmp_path / "csvdir"
    assert (
        _bedside(
            "export", "--db", str(db), "--session", str(s.id), "--format", "csv", "-o", str(d)
        ).returncode
        == 0
    )
    alarms = list(csv.DictReader((d / "alarms.csv").open()))
    assert len(alarms) == len(st.alarms(s))
    assert alarms[0]["session"] == str(s.id) and alarms[0]["wall_time_utc"].endswith("+00:00")
    assert {a["condition"] for a in alarms} >= {"SPO2_LOW", "NIBP_SYS_HIGH"}
    vitals = list(csv.DictReader((d / "vitals.csv").open()))
    sent = session_stream(boot=7, seconds=300)
    n_oxi = len([i for i in sent if i.msg["type"] == "oxi" and i.msg["seq"] not in LOST])
    assert n_oxi == 298 and len(vitals) == n_oxi and vitals[0]["spo2"]
    z = tmp_path / "tables.zip"
    assert _bedside("export", "--db", str(db), "--format", "csv", "-o", str(z)).returncode == 0
    with zipfile.ZipFile(z) as zf:
        assert set(zf.namelist()) >= {"vitals.csv", "nibp.csv", "alarms.csv", "events.csv"}
        allv = list(csv.DictReader(io.StringIO(zf.read("vitals.csv").decode())))
    assert len(allv) == n_oxi + 60 + 30
    nibp = list(csv.DictReader((d / "nibp.csv").open()))
    assert [(n["sys"], n["dia"], n["map"]) for n in nibp] == [("182.0", "95.0", "124.0")]
    st.close()


def _read_vital(path: Path) -> dict[str, Any]:
    """An independent reader of the documented layout (header, DEVINFO, TRKINFO, REC)."""
    data = gzip.decompress(path.read_bytes())
    assert data[:4] == b"VITA"
    ver, hlen = struct.unpack_from("<IH", data, 4)
    _tzbias, _inst, _prog, dtstart, dtend, packed = struct.unpack_from("<hIIddB", data, 10)
    pos = 10 + hlen
    out: dict[str, Any] = {"ver": ver, "hlen": hlen, "dtstart": dtstart, "dtend": dtend}
    out.update(packed=packed, devs={}, trks={}, recs=[])

    def vstr(p: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<I", data, p)
        return data[p + 4 : p + 4 + n].decode(), p + 4 + n

    while pos < len(data):
        ptype, dlen = struct.unpack_from("<BI", data, pos)
        body = pos + 5
        if ptype == 9:
            (devid,) = struct.unpack_from("<I", data, body)
            typename, p = vstr(body + 4)
            name, p = vstr(p)
            port, p = vstr(p)
            out["devs"][devid] = (typename, name, port)
        elif ptype == 0:
            tid, rtype, fmt = struct.unpack_from("<HBB", data, body)
            name, p = vstr(body + 4)
            unit, p = vstr(p)
            *_, montype, devid = struct.unpack_from("<ffIfddBI", data, p)
            out["trks"][tid] = (name, rtype, fmt, unit, montype, devid)
        elif ptype == 1:
            infolen, dt, tid = struct.unpack_from("<HdH", data, body)
            p = body + 2 + infolen
            if out["trks"][tid][1] == 2:
                (val,) = struct.unpack_from("<f", data, p)
            else:
                val, _ = vstr(p + 4)
            out["recs"].append((dt, out["trks"][tid][0], val))
        pos = body + dlen
    assert pos == len(data)
    return out


def test_vital_file_reads_back_with_vitaldb(db: Path, tmp_path: Path) -> None:
    """REQ-REC-10: the .vital export follows VitalDB's documented format and opens with the
    `vitaldb` package: SpO2, pulse, NIBP with their montypes and units, alarm messages, and
    events on the EVENT bar, at the device's UTC times."""
    vitaldb = pytest.importorskip("vitaldb")
    st = Store(db)
    s = st.sessions()[0]
    out = tmp_path / "s.vital"
    res = _bedside(
        "export", "--db", str(db), "--session", str(s.id), "--format", "vital", "-o", str(out)
    )
    assert res.returncode == 0, res.stderr
    vf = vitaldb.VitalFile(str(out))
    names = vf.get_track_names()
    assert set(names) >= {
        "Bedside/PLETH_SPO2",
        "Bedside/PLETH_HR",
        "Bedside/NIBP_SBP",
        "Bedside/NIBP_DBP",
        "Bedside/NIBP_MBP",
        "Bedside/ALARM_MSG",
        "Bedside/ALARM_LEVEL",
        "EVENT",
    }
    spo2 = vf.find_track("Bedside/PLETH_SPO2")
    assert spo2.montype == 10 and spo2.unit == "%"
    vit = [r for r in st.vitals(s) if r["spo2"] is not None]
    assert [(r["dt"], r["val"]) for r in spo2.recs] == [
        (pytest.approx(v["wall_time"]), pytest.approx(v["spo2"])) for v in vit
    ]
    sbp = vf.find_track("Bedside/NIBP_SBP")
    assert sbp.montype == 16 and [r["val"] for r in sbp.recs] == [182.0]
    assert sbp.recs[0]["dt"] == pytest.approx(T0 + 240.005 - 1)  # when it was taken
    msgs = [r["val"] for r in vf.find_track("Bedside/ALARM_MSG").recs]
    assert any(m.startswith("SPO2_LOW medium raise") for m in msgs)
    assert len(msgs) == len(st.alarms(s))
    events = [r["val"] for r in vf.find_track("EVENT").recs]
    assert any("nurse.kim" in e for e in events) and any("link gap" in e for e in events)
    assert vf.dtstart == pytest.approx(T0) and vf.dtend > T0 + 299
    mine = _read_vital(out)
    assert (mine["ver"], mine["hlen"], mine["packed"]) == (3, 27, 0)
    assert mine["devs"][1] == ("Bedside", "Bedside", PORT)
    assert len(mine["recs"]) == sum(len(vf.find_track(n).recs) for n in names)
    st.close()


def test_vital_of_two_devices_keeps_them_apart(db: Path, tmp_path: Path) -> None:
    """REQ-REC-10: exporting every session writes one DEVINFO per device; each device's
    tracks carry its own values."""
    st = Store(db)
    buf = io.BytesIO()
    export_vital(st, buf)
    out = tmp_path / "all.vital"
    out.write_bytes(buf.getvalue())
    mine = _read_vital(out)
    assert sorted(p for _t, _n, p in mine["devs"].values()) == ["/dev/ttyACM0", PORT[:-1] + "1"]
    st.close()


def test_export_errors_exit_2_with_one_line(db: Path, tmp_path: Path) -> None:
    """REQ-REC-11: a missing record file, an unknown session, a bad format or a session that
    is not a number exit 2 with one clear line on stderr and write nothing."""
    out = tmp_path / "x.json"
    cases = [
        (["--db", str(tmp_path / "nope.db"), "--format", "json"], "no record file"),
        (["--db", str(db), "--session", "99", "--format", "json"], "no session 99"),
        (["--db", str(db), "--format", "xml"], "invalid choice"),
        (["--db", str(db), "--session", "one", "--format", "json"], "not a session number"),
    ]
    for args, text in cases:
        res = _bedside("export", *args, "-o", str(out))
        assert res.returncode == 2, (args, res.stderr)
        assert text in res.stderr
        assert len(res.stderr.strip().splitlines()) <= 3  # argparse: usage + error
        assert "Traceback" not in res.stderr
        assert not out.exists()
    res = _bedside("export", "--db", str(db), "--session", "99", "--format", "json", "-o", "o")
    assert res.stderr.strip().splitlines()[-1].startswith("bedside export: error: no session")
    assert not (tmp_path / "nope.db").exists()


def test_export_never_writes_into_the_record(db: Path, tmp_path: Path) -> None:
    """REQ-REC-08: exporting leaves the stored rows unchanged."""
    st = Store(db)
    counts = st.counts()
    for fmt, name in (("json", "a.json"), ("csv", "c"), ("vital", "v.vital")):
        export(st, fmt, tmp_path / name)
    assert st.counts() == counts
    st.close()


def test_device_sim_matches_protocol_envelope() -> None:
    """REQ-REC-08: the test streams carry the protocol-v2 envelope (v, seq, boot, type, t_ms)."""
    sim = DeviceSim(boot=5)
    m = sim.send(10, "oxi", spo2=None).msg
    assert (m["v"], m["seq"], m["boot"], m["type"], m["t_ms"]) == (2, 1, 5, "oxi", 10)
