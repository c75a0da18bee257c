"""Exports of the record store: one JSON document, CSV tables, and VitalDB ``.vital`` files.

* ``json``: every stored device message (the NDJSON line verbatim and parsed) with device,
  boot, seq and host receive time, plus sessions and link gaps; streamed, so a long record
  never sits in memory.
* ``csv``: one file per table (vitals, nibp, alarms, events, settings, link_gaps), in a
  directory or a ``.zip``.
* ``vital``: VitalDB's documented file format (snuhvitallab/vitaldb-docs,
  ``VitalRecorder/Vital_File_Format.md``): gzip, little-endian, 1-byte packing; header
  ``VITA`` v3, then DEVINFO, TRKINFO and REC packets (streaming layout, ``packed = 0``), so a
  session opens in Vital Recorder and the ``vitaldb`` Python package. Numeric tracks SpO2,
  pulse rate, perfusion index and NIBP; ``ALARM_LEVEL`` / ``ALARM_MSG``; device events and
  link gaps on the ``EVENT`` bar. Records carry device time mapped to UTC (the host receive
  time where the mapping is unknown); NIBP at the time it was taken.

Not a certified medical device: exports for review and research, never for alarming.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import io
import json
import struct
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bedside_host.store import SCHEMA_VERSION, Session, Store

FORMATS = ("csv", "json", "vital")
JSON_FORMAT = "bedside-record"
JSON_FORMAT_VERSION = 1
NOT_CERTIFIED = "Not a certified medical device"


def _iso(t: float | None) -> str:
    if t is None:
        return ""
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="milliseconds")


def _selected(store: Store, session: Session | None) -> list[Session]:
    return [session] if session is not None else store.sessions()


# --- json ---------------------------------------------------------------------------------------


def export_json(store: Store, out: IO[str], session: Session | None = None) -> int:
    """Write one JSON document; returns the number of messages."""
    sessions = _selected(store, session)
    head = {
        "format": JSON_FORMAT,
        "format_version": JSON_FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "note": f"{NOT_CERTIFIED}: a record for review, not for diagnosis or alarming.",
        "exported": time.time(),
        "sessions": [
            {
                "id": s.id,
                "kind": s.kind,
                "device": s.device,
                "boot": s.boot,
                "epoch": s.epoch,
                "started": s.started,
                "ended": s.ended,
                "messages": s.messages,
            }
            for s in sessions
        ],
        "gaps": store.gaps(session),
    }
    text = json.dumps(head, indent=1)
    out.write(text[: text.rindex("}")].rstrip() + ',\n "messages": [')
    n = 0
    for r in store.raw_lines(session):
        try:
            msg: Any = json.loads(r.line)
        except ValueError:
            msg = None
        rec = {
            "device": r.device,
            "boot": r.boot,
            "epoch": r.epoch,
            "seq": r.seq,
            "rx_time": r.rx_time,
            "wall_time": r.wall_time,
            "replayed": r.replayed,
            "line": r.line,
            "msg": msg,
        }
        out.write(("\n  " if n == 0 else ",\n  ") + json.dumps(rec, separators=(",", ":")))
        n += 1
    out.write("\n ]\n}\n")
    return n


# --- csv ----------------------------------------------------------------------------------------

_CSV_TABLES = ("vitals", "nibp", "alarms", "events", "settings", "link_gaps")


def _csv_rows(store: Store, table: str, session: Session | None) -> list[dict[str, Any]]:
    if table == "vitals":
        return store.vitals(session)
    if table == "nibp":
        return store.nibp(session)
    if table == "alarms":
        return store.alarms(session)
    if table == "events":
        return store.events(session)
    if table == "settings":
        return store.settings_changes(session)
    return store.gaps(session)


def _csv_text(rows: list[dict[str, Any]], ids: dict[tuple[str, int, int], int]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    cols = ["session", *rows[0].keys()]
    if "wall_time" in rows[0]:
        cols.insert(cols.index("wall_time"), "wall_time_utc")
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        row = dict(r)
        row["session"] = ids.get((r["device"], r["boot"], r["epoch"]), "")
        if "wall_time" in r:
            row["wall_time_utc"] = _iso(r["wall_time"])
        w.writerow(row)
    return buf.getvalue()


def export_csv(store: Store, out: Path, session: Session | None = None) -> list[str]:
    """One CSV per table into the directory ``out`` or the zip file ``out`` (``*.zip``).
    Returns the file names written (a table without rows gives a file with no lines)."""
    ids = {(s.device, s.boot, s.epoch): s.id for s in store.sessions()}
    files = {f"{t}.csv": _csv_text(_csv_rows(store, t, session), ids) for t in _CSV_TABLES}
    if out.suffix.lower() == ".zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in files.items():
                z.writestr(name, text)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8", newline="")
    return list(files)


# --- vital --------------------------------------------------------------------------------------

SAVE_TRKINFO, SAVE_REC, SAVE_DEVINFO = 0, 1, 9
TYPE_NUM, TYPE_STR = 2, 5
FMT_NULL, FMT_FLOAT = 0, 1
FILE_VERSION = 3
HEADER_LEN = 27
PROG_VERSION = 100  # bedside-host 0.1.0 as major*10000 + minor*100 + patch
PRIORITY_LEVEL = {"high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class Track:
    name: str
    rec_type: int
    unit: str
    lo: float
    hi: float
    color: int  # ARGB
    montype: int


# name -> track; montype codes from the format's table (PLETH_HR 9, PLETH_SPO2 10, NIBP_SBP 16,
# NIBP_DBP 17, NIBP_MBP 18, ALARM_LEVEL 83, ALARM_MSG 84).
TRACKS = (
    Track("PLETH_SPO2", TYPE_NUM, "%", 50, 100, 0xFF00C0FF, 10),
    Track("PLETH_HR", TYPE_NUM, "/min", 0, 200, 0xFF00FF00, 9),
    Track("PLETH_PI", TYPE_NUM, "%", 0, 20, 0xFF00A0A0, 0),
    Track("NIBP_SBP", TYPE_NUM, "mmHg", 0, 250, 0xFFFFFFFF, 16),
    Track("NIBP_DBP", TYPE_NUM, "mmHg", 0, 250, 0xFFFFFFFF, 17),
    Track("NIBP_MBP", TYPE_NUM, "mmHg", 0, 250, 0xFFFFFFFF, 18),
    Track("ALARM_LEVEL", TYPE_NUM, "", 0, 3, 0xFFFF0000, 83),
    Track("ALARM_MSG", TYPE_STR, "", 0, 0, 0xFFFF0000, 84),
)
EVENT_TRACK = Track("EVENT", TYPE_STR, "", 0, 0, 0xFFFFFFFF, 0)


def _vstr(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def _packet(ptype: int, data: bytes) -> bytes:
    return struct.pack("<BI", ptype, len(data)) + data


def _devinfo(devid: int, typename: str, devname: str, port: str) -> bytes:
    data = struct.pack("<I", devid) + _vstr(typename) + _vstr(devname) + _vstr(port)
    return _packet(SAVE_DEVINFO, data)


def _trkinfo(trkid: int, t: Track, devid: int) -> bytes:
    fmt = FMT_FLOAT if t.rec_type == TYPE_NUM else FMT_NULL
    data = (
        struct.pack("<HBB", trkid, t.rec_type, fmt)
        + _vstr(t.name)
        + _vstr(t.unit)
        + struct.pack("<ffIfddBI", t.lo, t.hi, t.color, 0.0, 1.0, 0.0, t.montype, devid)
    )
    return _packet(SAVE_TRKINFO, data)


def _rec_num(trkid: int, dt: float, value: float) -> bytes:
    return _packet(SAVE_REC, struct.pack("<HdHf", 10, dt, trkid, value))


def _rec_str(trkid: int, dt: float, text: str) -> bytes:
    return _packet(SAVE_REC, struct.pack("<HdHI", 10, dt, trkid, 0) + _vstr(text))


def _time(r: dict[str, Any]) -> float:
    w = r.get("wall_time")
    return float(w) if w is not None else float(r["rx_time"])


def _device_records(
    store: Store, sessions: Sequence[Session]
) -> Iterable[tuple[float, str, float | str]]:
    """(dt, track name, value) of the given sessions of one device."""
    for s in sessions:
        for r in store.vitals(s):
            for col, name in (("spo2", "PLETH_SPO2"), ("pr", "PLETH_HR"), ("pi", "PLETH_PI")):
                if r[col] is not None:
                    yield _time(r), name, float(r[col])
        for r in store.nibp(s):
            taken = _time(r) - float(r["age_s"] or 0.0)
            for col, name in (("sys", "NIBP_SBP"), ("dia", "NIBP_DBP"), ("map", "NIBP_MBP")):
                if r[col] is not None:
                    yield taken, name, float(r[col])
        active: dict[str, int] = {}
        for r in store.alarms(s):
            if r["wall_time"] is None and r["source"] == "log":
                continue  # a flash-log record of a boot whose clock mapping is unknown
            dt = _time(r)
            cond = str(r["condition"])
            if r["state"] in ("inactive", None):
                active.pop(cond, None)
            else:
                active[cond] = PRIORITY_LEVEL.get(str(r["priority"]), 0)
            level = max(active.values(), default=0)
            val = "" if r["value"] is None else f" {r['value']:g}"
            lim = "" if r["limit"] is None else f" (limit {r['limit']:g})"
            msg = f"{cond} {r['priority']} {r['event']} -> {r['state']}{val}{lim}"
            yield dt, "ALARM_MSG", msg
            yield dt, "ALARM_LEVEL", float(level)


def _event_records(store: Store, sessions: Sequence[Session]) -> Iterable[tuple[float, str]]:
    for s in sessions:
        for r in store.events(s):
            if r["wall_time"] is None and r["source"] == "log":
                continue
            yield _time(r), str(r["summary"])
        for g in store.gaps(s):
            last = "" if g["last_seq"] < 0 else str(g["last_seq"])
            yield (
                float(g["rx_time"]),
                f"link gap: boot {g['boot']} seq {g['first_seq']}-{last} lost ({g['reason']})",
            )


def export_vital(store: Store, out: IO[bytes], session: Session | None = None) -> int:
    """Write a ``.vital`` file of the session (all sessions if None); returns the record count."""
    sessions = _selected(store, session)
    devices = sorted({s.device for s in sessions})
    body = bytearray()
    recs: list[tuple[float, int, bytes]] = []
    trkid = 0
    for devid, device in enumerate(devices, start=1):
        devname = "Bedside" if len(devices) == 1 else f"Bedside{devid}"
        body += _devinfo(devid, "Bedside", devname, device)
        ids: dict[str, int] = {}
        for t in TRACKS:
            trkid += 1
            ids[t.name] = trkid
            body += _trkinfo(trkid, t, devid)
        dev_sessions = [s for s in sessions if s.device == device]
        for dt, name, value in _device_records(store, dev_sessions):
            if isinstance(value, str):
                recs.append((dt, ids[name], _rec_str(ids[name], dt, value)))
            else:
                recs.append((dt, ids[name], _rec_num(ids[name], dt, value)))
    trkid += 1
    body += _trkinfo(trkid, EVENT_TRACK, 0)
    for dt, text in _event_records(store, sessions):
        recs.append((dt, trkid, _rec_str(trkid, dt, text)))
    recs.sort(key=lambda r: (r[0], r[1]))
    dtstart = recs[0][0] if recs else (sessions[0].started if sessions else 0.0)
    dtend = recs[-1][0] if recs else dtstart
    tzbias = -int(time.localtime(dtstart).tm_gmtoff // 60)  # UTC = local time + tzbias
    inst_id = session.id if session is not None else 0
    header = b"VITA" + struct.pack(
        "<IHhIIddB", FILE_VERSION, HEADER_LEN, tzbias, inst_id, PROG_VERSION, dtstart, dtend, 0
    )
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(header)
        gz.write(bytes(body))
        for *_key, packet in recs:
            gz.write(packet)
    return len(recs)


def export(store: Store, fmt: str, out: Path, session: Session | None = None) -> str:
    """Export in ``fmt`` to ``out``; returns a one-line summary."""
    if fmt == "json":
        tmp = out.with_name(out.name + ".part")
        with tmp.open("w", encoding="utf-8") as f:
            n = export_json(store, f, session)
        tmp.replace(out)
        return f"{n} messages written to {out}"
    if fmt == "csv":
        names = export_csv(store, out, session)
        return f"{len(names)} tables written to {out}"
    if fmt == "vital":
        tmp = out.with_name(out.name + ".part")
        with tmp.open("wb") as fb:
            n = export_vital(store, fb, session)
        tmp.replace(out)
        return f"{n} records written to {out}"
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
