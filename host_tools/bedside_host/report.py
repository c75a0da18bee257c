"""Session report: one self-contained HTML page (and optionally a PDF) per recorded session.

The page holds trend plots (SpO2, pulse rate, NIBP) made with matplotlib's Agg renderer with
alarm episodes, device events and link gaps marked on the same time axis, an alarm timeline,
the alarm table (raise to end with duration, acknowledgements: when and by which key), setting
changes with the operator, events and link gaps. An infusion session (kind ``infusion``) adds
its phases on the time axis, the dose-rate timeline, checks and scores, the baseline band on the
BP plot, screening, discharge criteria and the escort. Images are embedded as base64 PNG so the
file can be mailed or archived on its own. The PDF (``--pdf``) is drawn with matplotlib's PDF
backend: the same plots, then the tables as text pages.

Times are shown in the host's local time zone (offset printed); device times come from the
link's mapping of device uptime to UTC. Not a certified medical device: a review aid, not a
clinical record of truth; the header of every page says so.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from bedside_host import ensure_firmware_on_path
from bedside_host import session_records as rec
from bedside_host.store import Session, Store

ensure_firmware_on_path()

from bedside.settings import SPEC, check  # noqa: E402

NOT_CERTIFIED = "Not a certified medical device"
PRIORITY_COLOR = {"high": "#d62728", "medium": "#f2b705", "low": "#17becf"}
PRIORITY_RANK = {"high": 3, "medium": 2, "low": 1}
ACK_WINDOW_MS = 1000  # a key event this close to an ack event is the key that acknowledged it
BAND_SETTING = "discharge_band_pct"  # the device setting whose band is drawn around the baseline
PHASE_COLOR = {
    "screening": "#c7c7c7",
    "baseline": "#aec7e8",
    "infusion": "#ffbb78",
    "recovery": "#98df8a",
    "discharge_ready": "#c5b0d5",
    "closed": "#7f7f7f",
}


def _version() -> str:
    try:
        return metadata.version("bedside-host")
    except metadata.PackageNotFoundError:
        return "unknown"


def _local(t: float | None) -> str:
    if t is None:
        return "unknown"
    return _dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _tzname(t: float) -> str:
    d = _dt.datetime.fromtimestamp(t).astimezone()
    off = d.strftime("%z")
    return f"{d.tzname()} (UTC{off[:3]}:{off[3:]})"


def _dur(s: float | None) -> str:
    if s is None:
        return ""
    s = max(0.0, s)
    h, rem = divmod(round(s), 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _num(x: Any) -> str:
    return "" if x is None else f"{x:g}"


@dataclass
class Ack:
    t: float | None
    by: str


@dataclass
class Episode:
    """One alarm condition from raise to end (state back to inactive)."""

    condition: str
    priority: str
    kind: str
    raised: float | None  # None: raised before the record starts
    value: float | None
    limit: float | None
    ended: float | None = None  # None: still active at the end of the record (or no clock)
    end_event: str = ""
    raised_ms: int | None = None  # device uptime (a flash-log record of a boot without clock)
    ended_ms: int | None = None
    acks: list[Ack] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    def duration(self, record_end: float) -> tuple[float | None, bool]:
        """(seconds, complete): to the end of the record if it had not ended."""
        if self.raised is None or (self.ended is None and self.ended_ms is not None):
            if self.raised_ms is not None and self.ended_ms is not None:
                return (self.ended_ms - self.raised_ms) / 1000.0, True
            return None, False
        if self.ended is None:
            return record_end - self.raised, False
        return self.ended - self.raised, True


def _field(row: dict[str, Any], name: str) -> Any:
    try:
        fields = json.loads(row["fields"])
    except (TypeError, ValueError):
        return None
    return fields.get(name) if isinstance(fields, dict) else None


def _who_acked(t_ms: int, buttons: Sequence[dict[str, Any]]) -> str:
    for b in buttons:
        if abs(int(b["t_ms"]) - t_ms) <= ACK_WINDOW_MS:
            return "ACK key at the bedside"
    return "device (no key event recorded)"


def alarm_episodes(
    alarms: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
) -> list[Episode]:
    """Pair each raise with its end; acknowledgements with the key event that made them."""
    ack_keys = [e for e in events if e["type"] == "button" and _field(e, "button") == "ack"]
    out: list[Episode] = []
    open_: dict[str, Episode] = {}
    for a in sorted(alarms, key=lambda r: (r["t_ms"], r["rx_time"])):
        cond = str(a["condition"])
        t = a["wall_time"]
        ep = open_.get(cond)
        if a["event"] == "raise" or ep is None:
            if ep is not None:  # raised again without an end: the end was not recorded
                ep.events.append("end not recorded")
                out.append(ep)
            ep = Episode(
                cond,
                str(a["priority"] or ""),
                str(a["kind"] or ""),
                t if a["event"] == "raise" else None,
                a["value"],
                a["limit"],
                raised_ms=int(a["t_ms"]) if a["event"] == "raise" else None,
            )
            open_[cond] = ep
        ep.sources.add(str(a["source"]))
        if PRIORITY_RANK.get(str(a["priority"]), 0) > PRIORITY_RANK.get(ep.priority, 0):
            ep.priority = str(a["priority"])
        if a["event"] == "ack":
            ep.acks.append(Ack(t, _who_acked(int(a["t_ms"]), ack_keys)))
        elif a["event"] not in ("raise", "end", "reset"):
            ep.events.append(f"{a['event']} at {_local(t)}")
        if a["state"] == "inactive":
            ep.ended = t
            ep.ended_ms = int(a["t_ms"])
            ep.end_event = str(a["event"])
            out.append(ep)
            del open_[cond]
    out.extend(open_.values())
    out.sort(key=lambda e: (e.raised is not None, e.raised or 0.0))
    return out


@dataclass
class ReportData:
    session: Session
    info: dict[str, Any]
    vitals: list[dict[str, Any]]
    nibp: list[dict[str, Any]]
    alarms: list[dict[str, Any]]
    episodes: list[Episode]
    events: list[dict[str, Any]]
    settings: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    start: float
    end: float
    infusion: InfusionData | None = None


@dataclass
class InfusionData:
    """What the record holds for an infusion session (bedside_host.session_records)."""

    info: dict[str, Any]  # the infusions row
    baseline: dict[str, Any] | None
    phases: list[tuple[float, str]]  # (time, phase entered), in order
    steps: list[dict[str, Any]]
    doses: list[dict[str, Any]]
    o2: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    screenings: list[dict[str, Any]]
    discharges: list[dict[str, Any]]
    escorts: list[dict[str, Any]]
    band_pct: int  # the discharge band drawn around the baseline (discharge_band)
    band_source: str  # which value that is, in words


def collect_infusion(store: Store, session: Session) -> InfusionData | None:
    conn = store.conn
    info = rec.infusion(conn, session.id)
    if info is None:
        return None
    changes: list[tuple[float, str]] = [(float(info["opened"]), "screening")]
    for ev in rec.table(conn, "session_events", session.id):
        t = ev["wall_time"] if ev["wall_time"] is not None else ev["rx_time"]
        if ev["phase"]:
            changes.append((float(t), str(ev["phase"])))
    steps = rec.table(conn, "session_steps", session.id)
    for st in steps:
        if st["outcome"] == "done" and st["phase_after"]:
            changes.append((float(st["t"]), str(st["phase_after"])))
    changes.sort()
    phases: list[tuple[float, str]] = []
    for t, ph in changes:
        if not phases or phases[-1][1] != ph:
            phases.append((t, ph))
    screenings = rec.table(conn, "screenings", session.id)
    for sc in screenings:
        sc["answers"] = rec.screening_answers(conn, int(sc["id"]))
    baseline = None
    if info.get("baseline"):
        try:
            baseline = json.loads(info["baseline"])
        except ValueError:
            baseline = None
    return InfusionData(
        info,
        baseline if isinstance(baseline, dict) else None,
        phases,
        steps,
        rec.table(conn, "dose_changes", session.id),
        rec.table(conn, "o2_changes", session.id),
        rec.table(conn, "checks", session.id),
        screenings,
        rec.table(conn, "discharge_assessments", session.id),
        rec.table(conn, "escorts", session.id),
        *discharge_band(conn, str(info["device"]), session.ended),
    )


def discharge_band(conn: Any, device: str, until: float) -> tuple[int, str]:
    """The device's discharge band (`discharge_band_pct`) in effect at `until`, as far as the
    record knows: its last change recorded up to then, else the firmware's default; with a
    sentence saying which."""
    for value, by, t in conn.execute(
        "SELECT value, by, coalesce(wall_time, rx_time) AS t FROM settings_changes"
        " WHERE device = ? AND name = ? AND coalesce(wall_time, rx_time) <= ?"
        " ORDER BY t DESC, id DESC",
        (device, BAND_SETTING, until),
    ):
        try:
            v = json.loads(value)
        except (TypeError, ValueError):
            continue
        if check(BAND_SETTING, v) is None:  # the firmware's own validation of the setting
            who = by or "a key"
            return int(v), f"the device's {BAND_SETTING}, set to {v} at {_local(t)} by {who}"
    return int(SPEC[BAND_SETTING][0]), (
        f"the firmware's default {BAND_SETTING}: the record holds no change of it (one made"
        " before the record began is not known here)"
    )


def collect(store: Store, session: Session) -> ReportData:
    vitals = store.vitals(session)
    nibp = store.nibp(session)
    alarms = store.alarms(session)
    events = store.events(session)
    times = [r["wall_time"] for r in vitals + nibp + alarms + events if r["wall_time"]]
    infusion = collect_infusion(store, session) if session.kind == "infusion" else None
    if infusion is not None:
        times += [session.started, session.ended]
    start = min(times, default=session.started)
    end = max(times, default=session.ended)
    return ReportData(
        session,
        store.boot_info(session),
        vitals,
        nibp,
        alarms,
        alarm_episodes(alarms, events),
        events,
        store.settings_changes(session),
        store.gaps(session),
        start,
        end,
        infusion,
    )


# --- figures ------------------------------------------------------------------------------------


def _dates(ts: Sequence[float]) -> list[float]:
    """Matplotlib date numbers (days since 1970-01-01 UTC, its default epoch)."""
    return [t / 86400.0 for t in ts]


def _time_axis(ax: Any, tz: Any) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]


def trend_figure(d: ReportData, size: tuple[float, float] = (11, 7.5), top: float = 1.0) -> Figure:
    """SpO2, pulse rate and NIBP on one time axis; alarm episodes shaded, events marked.
    ``top``: the fraction of the figure height to use (the PDF puts a header above)."""
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    tz = _dt.datetime.fromtimestamp(d.start).astimezone().tzinfo
    v = [r for r in d.vitals if r["wall_time"] is not None]
    ts = _dates([r["wall_time"] for r in v])
    spo2 = [float("nan") if r["spo2"] is None else r["spo2"] for r in v]
    pr = [float("nan") if r["pr"] is None else r["pr"] for r in v]
    axes[0].plot(ts, spo2, color="#1f77b4", lw=1.2, label="SpO2")
    axes[0].set_ylabel("SpO2 %")
    axes[0].set_ylim(70, 101)
    axes[1].plot(ts, pr, color="#2ca02c", lw=1.2, label="Pulse rate")
    axes[1].set_ylabel("Pulse /min")
    n = [r for r in d.nibp if r["wall_time"] is not None]
    nt = _dates([r["wall_time"] - float(r["age_s"] or 0) for r in n])
    for col, mk, lab in (("sys", "v", "Sys"), ("map", "o", "MAP"), ("dia", "^", "Dia")):
        axes[2].plot(nt, [r[col] for r in n], mk, color="#444444", ms=6, label=lab)
    for r, t in zip(n, nt):
        axes[2].vlines(t, r["dia"] or 0, r["sys"] or 0, color="#888888", lw=1)
    axes[2].set_ylabel("NIBP mmHg")
    inf = d.infusion
    if inf is not None and inf.baseline is not None:
        band = inf.band_pct / 100.0
        for col, colour in (("sys", "#1f77b4"), ("dia", "#ff7f0e")):
            b = inf.baseline.get(col)
            if isinstance(b, int | float):
                axes[2].axhspan(b * (1 - band), b * (1 + band), color=colour, alpha=0.12)
                label = f"baseline {col} {b:g} +/- {inf.band_pct} %"
                axes[2].axhline(b, color=colour, lw=1, ls="-.", label=label)
        pr_b = inf.baseline.get("pr")
        if isinstance(pr_b, int | float):
            axes[1].axhspan(pr_b * (1 - band), pr_b * (1 + band), color="#2ca02c", alpha=0.10)
    if n or (inf is not None and inf.baseline is not None):
        axes[2].legend(loc="upper right", fontsize=8, ncols=3)
    if inf is not None:
        for t, ph in inf.phases:
            (pt,) = _dates([t])
            for ax in axes:
                ax.axvline(pt, color="#000000", lw=1.2, alpha=0.6)
            axes[2].annotate(ph, (pt, 0.0), xycoords=("data", "axes fraction"), fontsize=7,
                             rotation=90, va="bottom", ha="left")  # fmt: skip
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for ep in d.episodes:
            if ep.raised is None:
                continue
            a0, a1 = _dates([ep.raised, ep.ended if ep.ended is not None else d.end])
            ax.axvspan(a0, a1, color=PRIORITY_COLOR.get(ep.priority, "#999999"), alpha=0.25)
        for g in d.gaps:
            (gt,) = _dates([g["rx_time"]])
            ax.axvline(gt, color="#7f7f7f", ls=":", lw=1.5)
        for e in d.events:
            if e["wall_time"] is None or e["type"] in ("nibp_state",):
                continue
            (et,) = _dates([e["wall_time"]])
            ax.axvline(et, color="#9467bd", ls="--", lw=0.8, alpha=0.8)
    for e in d.events:
        if e["wall_time"] is None or e["type"] in ("nibp_state",):
            continue
        (et,) = _dates([e["wall_time"]])
        axes[0].annotate(
            str(e["type"]),
            (et, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
            va="top",
            ha="right",
            color="#9467bd",
        )
    _time_axis(axes[2], tz)
    axes[2].set_xlabel(f"time ({_tzname(d.start)})")
    fig.suptitle(
        f"Session {d.session.id}: trends with alarms (shaded by priority), events (dashed),"
        " link gaps (dotted)",
        fontsize=10,
        y=top - 0.005,
        va="top",
    )
    fig.tight_layout(rect=(0, 0, 1, top - 0.03))
    return fig


def alarm_figure(d: ReportData) -> Figure:
    """One row per condition, a bar from raise to end coloured by priority."""
    conds = sorted({e.condition for e in d.episodes})
    fig = Figure(figsize=(11, 1.2 + 0.35 * max(1, len(conds))), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    tz = _dt.datetime.fromtimestamp(d.start).astimezone().tzinfo
    for i, c in enumerate(conds):
        for ep in d.episodes:
            if ep.condition != c:
                continue
            t0 = ep.raised if ep.raised is not None else d.start
            t1 = ep.ended if ep.ended is not None else d.end
            a0, a1 = _dates([t0, max(t1, t0 + 1.0)])
            ax.barh(
                i,
                a1 - a0,
                left=a0,
                color=PRIORITY_COLOR.get(ep.priority, "#999999"),
                edgecolor="black",
                height=0.6,
            )
            for ack in ep.acks:
                if ack.t is not None:
                    ax.plot(_dates([ack.t]), [i], "k|", ms=14)
    ax.set_yticks(range(len(conds)), conds, fontsize=8)
    (lo, hi) = _dates([d.start, max(d.end, d.start + 1.0)])
    ax.set_xlim(lo, hi)
    _time_axis(ax, tz)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("Alarm timeline (bars: raise to end; ticks: acknowledged)", fontsize=10)
    fig.tight_layout()
    return fig


def session_figure(d: ReportData) -> Figure:
    """Infusion session: phases on the time axis, the dose-rate timeline, O2, and the checks'
    MOAA/S (and RASS) scores."""
    inf = d.infusion
    assert inf is not None
    fig = Figure(figsize=(11, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax_ph, ax_dose, ax_score = fig.subplots(3, 1, sharex=True,
                                            gridspec_kw={"height_ratios": [1, 2, 2]})  # fmt: skip
    tz = _dt.datetime.fromtimestamp(d.start).astimezone().tzinfo
    end = max(d.end, d.start + 1.0)
    for i, (t, ph) in enumerate(inf.phases):
        t1 = inf.phases[i + 1][0] if i + 1 < len(inf.phases) else end
        a0, a1 = _dates([t, max(t1, t + 1.0)])
        ax_ph.barh(0, a1 - a0, left=a0, color=PHASE_COLOR.get(ph, "#dddddd"), edgecolor="black")
        ax_ph.text(a0, 0, " " + ph, va="center", fontsize=8)
    ax_ph.set_yticks([])
    ax_ph.set_ylabel("phase")
    units = sorted({str(r["units"]) for r in inf.doses})
    if inf.doses:
        ts = _dates([float(r["t"]) for r in inf.doses] + [end])
        rates = [float(r["rate"]) for r in inf.doses]
        ax_dose.step(ts, rates + rates[-1:], where="post", color="#d62728", lw=1.5)
        for r, t in zip(inf.doses, ts):
            ax_dose.annotate(str(r["reason"]), (t, float(r["rate"])), fontsize=7,
                             xytext=(2, 3), textcoords="offset points")  # fmt: skip
    for r in inf.o2:
        (t,) = _dates([float(r["t"])])
        label = f"O2 {r['flow']:g} L/min" if r["on_o2"] else "O2 off"
        ax_dose.axvline(t, color="#17becf", ls="--", lw=1)
        ax_dose.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                         rotation=90, va="top", ha="right", color="#17becf")  # fmt: skip
    ax_dose.set_ylabel("rate " + ("/".join(units) if units else ""))
    scored = [c for c in inf.checks if c["score"] is not None]
    ax_score.plot(_dates([float(c["t"]) for c in scored]), [c["score"] for c in scored], "o-",
                  color="#1f77b4", label="MOAA/S")  # fmt: skip
    unscored = [c for c in inf.checks if c["score"] is None]
    ax_score.plot(_dates([float(c["t"]) for c in unscored]), [5.5] * len(unscored), "k|",
                  ms=10, label="check, no score")  # fmt: skip
    rass = [c for c in inf.checks if c["rass"] is not None]
    ax_score.plot(_dates([float(c["t"]) for c in rass]), [c["rass"] for c in rass], "s",
                  color="#9467bd", label="RASS")  # fmt: skip
    ax_score.set_ylim(-5.5, 6)
    ax_score.set_ylabel("score")
    ax_score.legend(loc="lower right", fontsize=8, ncols=3)
    for ax in (ax_ph, ax_dose, ax_score):
        ax.grid(True, axis="x", alpha=0.3)
    lo, hi = _dates([d.start, end])
    ax_score.set_xlim(lo, hi)
    _time_axis(ax_score, tz)
    ax_score.set_xlabel(f"time ({_tzname(d.start)})")
    fig.suptitle("Infusion session: phases, dose rate and O2, checks and scores", fontsize=10)
    fig.tight_layout()
    return fig


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --- tables -------------------------------------------------------------------------------------


def _when(t: float | None, ms: int | None, otherwise: str) -> str:
    if t is not None:
        return _local(t)
    if ms is not None:
        return f"uptime {_dur(ms / 1000.0)} (clock not known)"
    return otherwise


def alarm_rows(d: ReportData) -> list[list[str]]:
    rows = []
    for ep in d.episodes:
        secs, complete = ep.duration(d.end)
        dur = _dur(secs) if complete else (f">= {_dur(secs)} (not ended)" if secs else "")
        acks = "; ".join(f"{_local(a.t)} by {a.by}" for a in ep.acks) or "not acknowledged"
        rows.append(
            [
                ep.condition,
                ep.priority,
                ep.kind,
                _when(ep.raised, ep.raised_ms, "before the record"),
                _when(ep.ended, ep.ended_ms, "still active"),
                dur,
                f"{_num(ep.value)} / {_num(ep.limit)}".strip(" /"),
                acks,
                ", ".join(sorted(ep.sources)) + ("; " + "; ".join(ep.events) if ep.events else ""),
            ]
        )
    return rows


ALARM_HEAD = [
    "Condition",
    "Priority",
    "Kind",
    "Raised",
    "Ended",
    "Duration",
    "Value / limit",
    "Acknowledged",
    "Source",
]


def setting_rows(d: ReportData) -> list[list[str]]:
    return [
        [
            _local(r["wall_time"]),
            str(r["name"]),
            f"{r['old']} -> {r['value']}",
            str(r["by"] or "not reported"),
            str(r["source"]),
        ]
        for r in d.settings
    ]


SETTING_HEAD = ["Time", "Setting", "Old -> new", "By", "Source"]


def event_rows(d: ReportData) -> list[list[str]]:
    return [
        [_local(r["wall_time"]), str(r["type"]), str(r["summary"]), str(r["source"])]
        for r in d.events
    ]


EVENT_HEAD = ["Time", "Type", "Event", "Source"]


def gap_span(g: dict[str, Any]) -> tuple[str, str]:
    """(seq range, message count) of a gap; a negative last seq is the unknown rest of a boot."""
    first, last = int(g["first_seq"]), int(g["last_seq"])
    if last < 0:
        return f"{first}- (rest of the boot)", "unknown"
    return f"{first}-{last}", str(last - first + 1)


def gap_rows(d: ReportData) -> list[list[str]]:
    return [[_local(g["rx_time"]), *gap_span(g), str(g["reason"])] for g in d.gaps]


GAP_HEAD = ["Noticed", "Seq", "Messages", "Reason"]


def _yn(x: Any) -> str:
    return "yes" if x else "no"


def _items(raw: Any) -> str:
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return str(raw)
    out = []
    for k, v in dict(items).items():
        out.append(f"{k} {v}" + (" (n/a, 2 by rule)" if k == "surgical_bleeding" else ""))
    return ", ".join(out)


def infusion_rows(d: ReportData) -> list[tuple[str, str]]:
    inf = d.infusion
    assert inf is not None
    i = inf.info
    b = inf.baseline or {}
    base = (
        f"{b.get('sys')}/{b.get('dia')} ({b.get('map')}) mmHg, pulse {b.get('pr')},"
        f" SpO2 {b.get('spo2')} %"
        if b
        else "not accepted"
    )
    closed = (
        f"{_local(i['closed'])} by {i['closed_by'] or 'the device'}"
        if i["closed"] is not None
        else "still open"
    )
    return [
        ("Patient", str(i["patient"])),
        ("Course", f"day {i['course_day']} of {i['course_total']}"),
        ("Device session", str(i["dev_session"])),
        ("Opened", f"{_local(i['opened'])} by {i['opened_by'] or 'the device'}"),
        ("Closed", closed),
        ("Phase", str(i["phase"])),
        ("Baseline", base),
    ]


def phase_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    out = []
    for n, (t, ph) in enumerate(inf.phases):
        t1 = inf.phases[n + 1][0] if n + 1 < len(inf.phases) else None
        out.append([ph, _local(t), _local(t1) if t1 else "", _dur(t1 - t) if t1 else ""])
    return out


PHASE_HEAD = ["Phase", "From", "To", "Duration"]


def screening_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    out = []
    for s in inf.screenings:
        answers = "; ".join(f"{a['question']}: {_yn(a['answer'])}" for a in s["answers"])
        findings = ", ".join(json.loads(s["findings"])) or "none"
        override = (
            f"{s['override_by']}: {s['override_reason']}" if s["override_by"] else ""
        )
        out.append([_local(s["t"]), str(s["by"]), answers, f"{s['bp_sys']}/{s['bp_dia']}",
                    findings, override, str(s["note"] or ""), _yn(s["passed"])])  # fmt: skip
    return out


SCREEN_HEAD = ["Time", "By", "Answers", "Resting BP", "Findings", "Override", "Note", "Passed"]


def step_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    return [
        [_local(s["t"]), str(s["op"]), str(s["by"]), str(s["outcome"]),
         f"{s['phase_before']} -> {s['phase_after']}", str(s["error"] or ""),
         str(s["note"] or "")]
        for s in inf.steps
    ]  # fmt: skip


STEP_HEAD = ["Time", "Step", "By", "Outcome", "Phase", "Reason refused", "Note"]


def dose_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    return [
        [_local(r["t"]), f"{r['rate']:g} {r['units']}", str(r["reason"]), str(r["by"]),
         str(r["note"] or "")]
        for r in inf.doses
    ]  # fmt: skip


DOSE_HEAD = ["Time", "Rate", "Reason", "By", "Note"]


def o2_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    return [
        [_local(r["t"]), "on" if r["on_o2"] else "off",
         f"{r['flow']:g} L/min" if r["flow"] is not None else "", str(r["by"])]
        for r in inf.o2
    ]  # fmt: skip


O2_HEAD = ["Time", "O2", "Flow", "By"]


def check_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    out = []
    for c in inf.checks:
        score = "no score" if c["score"] is None else f"{c['score']} (variant {c['variant']})"
        out.append([_local(c["t"]), score, "" if c["rass"] is None else f"{c['rass']:+d}",
                    str(c["dissociation"] or ""), str(c["nausea"] or ""),
                    "" if c["pain"] is None else str(c["pain"]), str(c["note"] or ""),
                    str(c["by"])])  # fmt: skip
    return out


CHECK_HEAD = ["Time", "MOAA/S", "RASS", "Dissociation", "Nausea", "Pain", "Note", "By"]


def discharge_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    return [
        [_local(a["t"]), str(a["by"]), _items(a["aldrete"]),
         f"{a['aldrete_total']} ({'pass' if a['aldrete_pass'] else 'FAIL'})",
         _items(a["padss"]), f"{a['padss_total']} ({'pass' if a['padss_pass'] else 'FAIL'})",
         "ready" if a["ready"] else "not ready"]
        for a in inf.discharges
    ]  # fmt: skip


DISCHARGE_HEAD = ["Time", "By", "Aldrete items", "Aldrete", "PADSS items", "PADSS", "Result"]


def criteria_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    if not inf.discharges:
        return []
    crit = json.loads(inf.discharges[-1]["criteria"])
    return [
        [str(c["name"]), "holds" if c["ok"] else "FAILS", json.dumps(c.get("value")),
         str(c.get("need")), str(c.get("source", "device"))]
        for c in crit
    ]  # fmt: skip


CRITERIA_HEAD = ["Criterion", "", "Value", "Needed", "Judged by"]


def escort_rows(d: ReportData) -> list[list[str]]:
    inf = d.infusion
    assert inf is not None
    return [
        [_local(e["t"]), str(e["name"]), str(e["relationship"]),
         f"{_yn(e['advice'])}: no driving for {e['no_driving_h']} h", str(e["by"])]
        for e in inf.escorts
    ]  # fmt: skip


ESCORT_HEAD = ["Time", "Escort", "Relationship", "No-driving advice given", "By"]


def infusion_tables(d: ReportData) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, head, rows, text when empty) of each infusion-session table, in report order."""
    return [
        ("Phases", PHASE_HEAD, phase_rows(d), "No phases recorded."),
        ("Screening", SCREEN_HEAD, screening_rows(d), "No screening recorded."),
        ("Dose-rate changes", DOSE_HEAD, dose_rows(d), "No dose changes recorded."),
        ("Supplemental O2", O2_HEAD, o2_rows(d), "No O2 changes recorded (room air)."),
        ("Responsiveness checks and scores", CHECK_HEAD, check_rows(d), "No checks recorded."),
        ("Discharge assessments", DISCHARGE_HEAD, discharge_rows(d), "No discharge scoring."),
        ("Discharge criteria (last assessment)", CRITERIA_HEAD, criteria_rows(d),
         "No discharge criteria yet."),
        ("Escort and advice", ESCORT_HEAD, escort_rows(d), "No escort recorded."),
        ("Session steps (who and when)", STEP_HEAD, step_rows(d), "No steps recorded."),
    ]  # fmt: skip


def summary_rows(d: ReportData) -> list[tuple[str, str]]:
    s, info = d.session, d.info
    replayed = sum(1 for r in d.vitals if r["replayed"])
    hello = {}
    if info.get("hello"):
        try:
            hello = json.loads(info["hello"])
        except ValueError:
            hello = {}
    return [
        ("Session", f"{s.id} ({s.kind})"),
        ("Device", s.device),
        ("Boot", f"{s.boot}" + (f" (host run {s.epoch}: no flash store)" if s.boot == 0 else "")),
        ("Firmware", str(info.get("fw") or "unknown")),
        ("Reset cause", str(info.get("reset_cause") or "unknown")),
        ("Oximeter format", str(hello.get("oxi_format") or "unknown")),
        ("Record", f"{_local(d.start)} to {_local(d.end)} ({_dur(d.end - d.start)})"),
        ("Time zone", _tzname(d.start)),
        ("Messages", f"{s.messages} ({replayed} vitals recovered by replay)"),
        ("Alarm episodes", str(len(d.episodes))),
        ("Link gaps", str(len(d.gaps)) + (" (data missing, see below)" if d.gaps else "")),
    ]


# --- html ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,Arial,sans-serif;margin:1.5em;color:#111}
.banner{background:#b00020;color:#fff;padding:.5em 1em;font-weight:bold;font-size:1.1em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0}
td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eee}.p-high{background:#f8c9c9}.p-medium{background:#fcefb4}
.p-low{background:#c6f1f6}img{max-width:100%}.muted{color:#666;font-size:.85em}
@media print{.banner{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    out = ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    for r in rows:
        cls = f' class="p-{html.escape(r[1])}"' if head is ALARM_HEAD else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(d: ReportData) -> str:
    e = html.escape
    trend = _png(trend_figure(d))
    timeline = _png(alarm_figure(d))
    summary = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary_rows(d))
    infusion = ""
    if d.infusion is not None:
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in infusion_rows(d))
        parts = [
            f"<h2>Infusion session</h2><table>{rows}</table>",
            '<img alt="Infusion session: phases, dose rate, checks and scores"'
            f' src="data:image/png;base64,{_png(session_figure(d))}">',
            '<p class="muted">PADSS surgical bleeding does not apply to an infusion: scored 2'
            f" by rule. The BP and pulse plots show the baseline band (+/-"
            f" {d.infusion.band_pct} %: {e(d.infusion.band_source)}).</p>",
        ]
        for title, head, trows, empty in infusion_tables(d):
            parts.append(f"<h3>{e(title)}</h3>{_table(head, trows, empty)}")
        infusion = "\n".join(parts)
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Bedside session {d.session.id} report</title><style>{_CSS}</style></head>
<body>
<div class="banner">{NOT_CERTIFIED}: a review aid for recorded data, not a clinical record
of truth and not for diagnosis or alarming.</div>
<h1>Bedside session report: session {d.session.id}</h1>
<table>{summary}</table>
{infusion}
<h2>Trends</h2>
<img alt="SpO2, pulse rate and NIBP trends with alarms and events"
 src="data:image/png;base64,{trend}">
<h2>Alarms</h2>
<img alt="Alarm timeline" src="data:image/png;base64,{timeline}">
{_table(ALARM_HEAD, alarm_rows(d), "No alarms in this session.")}
<p class="muted">Duration: from raise to the end of the condition (state inactive). Acknowledged:
the device's ack events; "ACK key at the bedside" where the key event was recorded with it.
Source "log": recovered from the device's flash alarm log.</p>
<h2>Setting changes</h2>
{_table(SETTING_HEAD, setting_rows(d), "No setting changes in this session.")}
<h2>Events</h2>
{_table(EVENT_HEAD, event_rows(d), "No events in this session.")}
<h2>Link gaps</h2>
{_table(GAP_HEAD, gap_rows(d), "No link gaps: every message of this session was received.")}
<p class="muted">Generated {e(now)} by bedside-host {e(_version())} from {e(d.session.device)}.
{NOT_CERTIFIED}.</p>
</body></html>
"""


# --- pdf ----------------------------------------------------------------------------------------

_LINES_PER_PAGE = 58


def _text_pages(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    widths = [min(w, 48) for w in widths]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    if not rows:
        lines = ["(none)"]
    pages = []
    for i in range(0, len(lines), _LINES_PER_PAGE):
        pages.append(f"{title}\n\n" + "\n".join(lines[i : i + _LINES_PER_PAGE]))
    return pages


def write_pdf(d: ReportData, path: Path) -> None:
    """The report as a PDF: summary and plots, then the tables as text pages (A4 landscape)."""
    with PdfPages(path) as pdf:
        first = trend_figure(d, size=(11.69, 8.27), top=0.86)
        lines = [f"{k}: {v}" for k, v in summary_rows(d)[:8]]
        first.text(
            0.01,
            0.995,
            f"{NOT_CERTIFIED}. Session {d.session.id} report.",
            va="top",
            fontsize=11,
            color="#b00020",
            weight="bold",
        )
        first.text(0.01, 0.965, "\n".join(lines[:4]), va="top", fontsize=8, family="monospace")
        first.text(0.5, 0.965, "\n".join(lines[4:]), va="top", fontsize=8, family="monospace")
        pdf.savefig(first)
        pdf.savefig(alarm_figure(d))
        tables: list[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = []
        if d.infusion is not None:
            pdf.savefig(session_figure(d))
            tables.append(("Infusion session", ["Item", "Value"],
                           [list(r) for r in infusion_rows(d)]))  # fmt: skip
            tables += [(t, h, r) for t, h, r, _empty in infusion_tables(d)]
        for title, head, rows in (
            *tables,
            ("Alarms", ALARM_HEAD, alarm_rows(d)),
            ("Setting changes", SETTING_HEAD, setting_rows(d)),
            ("Events", EVENT_HEAD, event_rows(d)),
            ("Link gaps", GAP_HEAD, gap_rows(d)),
        ):
            for text in _text_pages(
                f"{NOT_CERTIFIED}. Session {d.session.id}: {title}", head, rows
            ):
                fig = Figure(figsize=(11.69, 8.27))
                FigureCanvasAgg(fig)
                fig.text(0.03, 0.97, text, va="top", fontsize=6.5, family="monospace")
                pdf.savefig(fig)
        info = pdf.infodict()
        info["Title"] = f"Bedside session {d.session.id} report ({NOT_CERTIFIED})"
        info["Creator"] = f"bedside-host {_version()}"


def write_report(store: Store, session: Session, out: Path, pdf: Path | None = None) -> None:
    """Write the HTML report to ``out`` (and the PDF to ``pdf``)."""
    d = collect(store, session)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(render_html(d), encoding="utf-8")
    tmp.replace(out)
    if pdf is not None:
        write_pdf(d, pdf)
