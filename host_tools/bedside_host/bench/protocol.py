"""Bench outputs from one run record: JSON (the record), JUnit XML (CI) and an HTML test
protocol for the biomedical engineer's file (device, firmware, settings hash, simulator,
operator, date; summary; requirements with their scenarios and verdicts; per scenario the
steps, measured latencies, signals, a plot of physiology vs alarms on one time axis; marginal
measurements; a signature block). The plot is inline SVG: no plotting dependency."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bedside_host.bench.verdict import TestResult

PRIO_COLOUR = {"high": "#d62728", "medium": "#e6a700", "low": "#17becf"}


@dataclass
class RunRecord:
    dut_id: str
    station: str
    mode: str
    firmware: str
    simulator: str
    simulator_version: str
    operator: str
    suite: str
    start: str
    end: str
    results: list[TestResult] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        outs = {r.outcome for r in self.results}
        if "ERROR" in outs:
            return "ERROR"
        return "FAIL" if "FAIL" in outs else "PASS"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome
        return d


def write_json(rec: RunRecord, path: Path) -> None:
    path.write_text(json.dumps(rec.as_dict(), indent=1) + "\n", encoding="utf-8")


def junit_xml(rec: RunRecord) -> str:
    """One <testsuite> per scenario, one <testcase> per step: a broken device shows exactly
    which step failed. Measurements go to system-out (as OpenHTF's junit output does)."""
    root = ET.Element("testsuites", name=f"bedside bench {rec.suite}")
    for r in rec.results:
        fails = sum(p.outcome == "FAIL" for p in r.phases)
        skips = sum(p.outcome == "SKIP" for p in r.phases)
        ts = ET.SubElement(
            root,
            "testsuite",
            name=r.id,
            tests=str(max(1, len(r.phases))),
            failures=str(fails),
            errors="1" if r.outcome == "ERROR" else "0",
            skipped=str(skips),
            time=f"{r.wall_s:.3f}",
        )
        props = ET.SubElement(ts, "properties")
        for k, v in (
            ("requirements", ",".join(r.requirements)),
            ("mode", r.mode),
            ("settings_hash", r.settings_hash),
            ("file", r.path),
        ):
            ET.SubElement(props, "property", name=k, value=v)
        if r.outcome == "ERROR":
            tc = ET.SubElement(ts, "testcase", classname=r.id, name="setup")
            ET.SubElement(tc, "error", message=r.error[:300]).text = r.error
            continue
        if r.outcome == "SKIP":
            tc = ET.SubElement(ts, "testcase", classname=r.id, name="setup")
            ET.SubElement(tc, "skipped", message=r.error[:300])
            continue
        for p in r.phases:
            tc = ET.SubElement(ts, "testcase", classname=r.id, name=p.name)
            lines = [f"{p.kind} (line {p.line}) {p.detail}"]
            for m in p.measurements:
                lim = _limits(m.low, m.high, m.equals)
                mark = " MARGINAL" if m.marginal else ""
                lines.append(f"{m.name} = {m.value} {m.units} [{lim}] {m.outcome}{mark}")
            if p.outcome == "FAIL":
                bad = [m for m in p.measurements if m.outcome == "FAIL"]
                msg = "; ".join(
                    f"{m.name} = {m.value} (want {_limits(m.low, m.high, m.equals)})" for m in bad
                )
                ET.SubElement(tc, "failure", message=msg).text = "\n".join(lines)
            elif p.outcome == "SKIP":
                ET.SubElement(tc, "skipped", message=p.detail)
            ET.SubElement(tc, "system-out").text = "\n".join(lines)
    return ET.tostring(root, encoding="unicode")


def _limits(low: float | None, high: float | None, equals: Any) -> str:
    if equals is not None:
        return f"== {equals}"
    if low is not None and high is not None:
        return f"{low:g}..{high:g}"
    if high is not None:
        return f"<= {high:g}"
    if low is not None:
        return f">= {low:g}"
    return "recorded"


# --- HTML -----------------------------------------------------------------------------------


def _e(x: Any) -> str:
    return html.escape(str(x))


def plot_svg(r: TestResult, width: int = 900) -> str:
    """Physiology (SpO2, PR, NIBP readings) and alarm occurrences on one time axis."""
    dur = max(1.0, r.duration_s)
    left, right, top = 130, 10, 10
    h_phys = 160
    conds = sorted({a["condition"] for a in r.alarms})
    h_alarm = 14 * len(conds) + 10
    height = top + h_phys + 30 + h_alarm + 20
    w = width - left - right

    def x(t: float) -> float:
        return left + w * min(max(t, 0.0), dur) / dur

    def y(v: float) -> float:  # 30..200 scale shared by SpO2 %, PR /min, mmHg
        return top + h_phys * (1 - (min(max(v, 30.0), 200.0) - 30.0) / 170.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="10">'
    ]
    for f in r.faults:
        x0, x1 = x(f["at_s"]), x(f["end_s"] if f["end_s"] is not None else dur)
        out.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{h_phys}" fill="#ddd"><title>{_e(f["text"])}</title></rect>'
        )
    for v in (50, 90, 120, 150, 180):
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{y(v) + 3:.1f}" '
            f'text-anchor="end">{v}</text>'
        )
    for idx, colour, label in ((1, "#1f77b4", "SpO2 %"), (2, "#2ca02c", "PR /min")):
        pts: list[str] = []
        segs: list[list[str]] = []
        for row in r.trace:
            v = row[idx]
            if v is None:
                if pts:
                    segs.append(pts)
                pts = []
                continue
            pts.append(f"{x(row[0]):.1f},{y(v):.1f}")
        if pts:
            segs.append(pts)
        for s in segs:
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                f'points="{" ".join(s)}"/>'
            )
        out.append(
            f'<text x="{left + 5 + (idx - 1) * 70}" y="{top + 10}" fill="{colour}">{label}</text>'
        )
    for n in r.nibp:
        if n["ec"]:
            out.append(
                f'<text x="{x(n["t"]):.1f}" y="{top + h_phys - 4}" fill="#9467bd">'
                f"E{n['ec']:02X}</text>"
            )
            continue
        out.append(
            f'<line x1="{x(n["t"]):.1f}" x2="{x(n["t"]):.1f}" y1="{y(n["sys"]):.1f}" '
            f'y2="{y(n["dia"]):.1f}" stroke="#9467bd" stroke-width="3">'
            f"<title>{n['sys']}/{n['dia']} ({n['map']})</title></line>"
        )
    out.append(f'<text x="{left + 150}" y="{top + 10}" fill="#9467bd">NIBP mmHg</text>')
    base = top + h_phys + 20
    for i, c in enumerate(conds):
        yy = base + 14 * i
        out.append(f'<text x="{left - 4}" y="{yy + 9}" text-anchor="end">{_e(c)}</text>')
        start: tuple[float, str] | None = None
        for a in [a for a in r.alarms if a["condition"] == c] + [
            {"t": dur, "condition": c, "state": "inactive", "priority": "", "event": "end"}
        ]:
            visible = a["state"] != "inactive"
            if start is not None:
                x0 = x(start[0])
                colour = PRIO_COLOUR.get(start[1], "#888")
                out.append(
                    f'<rect x="{x0:.1f}" y="{yy}" width="{max(1.0, x(a["t"]) - x0):.1f}" '
                    f'height="10" fill="{colour}" opacity="0.8"><title>{_e(c)} '
                    f"{_e(start[1])}</title></rect>"
                )
                start = None
            if visible:
                start = (a["t"], a["priority"])
    for a in r.actions:
        out.append(
            f'<line x1="{x(a["t"]):.1f}" x2="{x(a["t"]):.1f}" y1="{top}" '
            f'y2="{base + h_alarm - 10}" stroke="#000" stroke-dasharray="2,2">'
            f"<title>{_e(a['text'])}</title></line>"
        )
    for k in range(0, 11):
        t = dur * k / 10
        out.append(f'<text x="{x(t):.1f}" y="{height - 4}" text-anchor="middle">{t:.0f} s</text>')
    out.append("</svg>")
    return "".join(out)


CSS = """body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;
margin:.5em 0}td,th{border:1px solid #999;padding:2px 6px;font-size:12px;text-align:left}
.PASS{color:#060;font-weight:bold}.FAIL{color:#b00;font-weight:bold}.ERROR{color:#b0b;
font-weight:bold}.SKIP{color:#666}.marginal{background:#ffd}.sig td{height:2.5em}"""


def protocol_html(rec: RunRecord) -> str:
    h: list[str] = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Bedside bench test protocol {_e(rec.dut_id)}</title><style>{CSS}</style>",
        "</head><body><h1>Bedside alarm controller: bench test protocol</h1>",
        "<p>Bedside is not a certified medical device; this protocol records an engineering"
        " verification run of its alarm system against scripted scenarios.</p>",
        "<table>",
    ]
    for k, v in (
        ("Device under test", rec.dut_id),
        ("Target", rec.mode),
        ("Firmware version", rec.firmware),
        ("Settings hash (per scenario below)", "sha-256 of the settings in force, 16 hex"),
        ("Simulator", f"{rec.simulator} {rec.simulator_version}"),
        ("Operator", rec.operator),
        ("Station", rec.station),
        ("Suite", rec.suite),
        ("Started", rec.start),
        ("Ended", rec.end),
    ):
        h.append(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>")
    h.append(f"<tr><th>Outcome</th><td class='{rec.outcome}'>{rec.outcome}</td></tr></table>")
    n = len(rec.results)
    by = {o: sum(r.outcome == o for r in rec.results) for o in ("PASS", "FAIL", "ERROR", "SKIP")}
    h.append(
        f"<h2>Summary</h2><p>{n} scenarios: {by['PASS']} passed, {by['FAIL']} failed,"
        f" {by['ERROR']} errors, {by['SKIP']} skipped.</p>"
        "<table><tr><th>scenario</th><th>title</th><th>requirements</th><th>steps</th><th>verdict</th></tr>"
    )
    for r in rec.results:
        steps = f"{sum(p.outcome == 'PASS' for p in r.phases)}/{len(r.phases)}"
        h.append(
            f"<tr><td><a href='#{_e(r.id)}'>{_e(r.id)}</a></td><td>{_e(r.title)}</td>"
            f"<td>{_e(', '.join(r.requirements))}</td><td>{steps}</td>"
            f"<td class='{r.outcome}'>{r.outcome}</td></tr>"
        )
    h.append(
        "</table><h2>Requirements</h2><table><tr><th>requirement</th><th>scenarios</th>"
        "<th>verdict</th></tr>"
    )
    reqs: dict[str, list[TestResult]] = defaultdict(list)
    for r in rec.results:
        for q in r.requirements:
            reqs[q].append(r)
    for q in sorted(reqs):
        rs = reqs[q]
        run = [r for r in rs if r.outcome != "SKIP"]
        v = (
            "PASS"
            if run and all(r.outcome == "PASS" for r in run)
            else ("FAIL" if run else "SKIP")
        )
        names = ", ".join(f"{r.id} ({r.outcome})" for r in rs)
        h.append(f"<tr><td>{_e(q)}</td><td>{_e(names)}</td><td class='{v}'>{v}</td></tr>")
    h.append(
        "</table><h2>Marginal measurements (within 10 % of a limit)</h2><table>"
        "<tr><th>scenario</th><th>step</th><th>measurement</th><th>value</th>"
        "<th>limits</th></tr>"
    )
    any_m = False
    for r in rec.results:
        for p in r.phases:
            for m in p.measurements:
                if m.marginal:
                    any_m = True
                    h.append(
                        f"<tr class='marginal'><td>{_e(r.id)}</td><td>{_e(p.name)}</td>"
                        f"<td>{_e(m.name)}</td><td>{_e(m.value)} {_e(m.units)}</td>"
                        f"<td>{_e(_limits(m.low, m.high, m.equals))}</td></tr>"
                    )
    if not any_m:
        h.append("<tr><td colspan='5'>none</td></tr>")
    h.append("</table><h2>Scenarios</h2>")
    for r in rec.results:
        h.append(
            f"<h3 id='{_e(r.id)}'>{_e(r.id)}: {_e(r.title)} "
            f"<span class='{r.outcome}'>{r.outcome}</span></h3>"
        )
        h.append(
            f"<p>File {_e(r.path)} (sha-256 {r.sha256[:16]}), settings hash "
            f"{_e(r.settings_hash)}, {r.duration_s:g} s scenario time, {r.wall_s:.1f} s "
            f"wall time; requirements {_e(', '.join(r.requirements))}.</p>"
        )
        if r.error:
            h.append(f"<p class='ERROR'>{_e(r.error)}</p>")
            continue
        h.append(
            "<table><tr><th>step</th><th>line</th><th>measurement</th><th>value</th>"
            "<th>limits</th><th>verdict</th></tr>"
        )
        for p in r.phases:
            ms = p.measurements or []
            if not ms:
                h.append(
                    f"<tr><td>{_e(p.name)}</td><td>{p.line}</td><td colspan='3'>"
                    f"{_e(p.detail)}</td><td class='{p.outcome}'>{p.outcome}</td></tr>"
                )
            for m in ms:
                cls = " class='marginal'" if m.marginal else ""
                h.append(
                    f"<tr{cls}><td>{_e(p.name)}</td><td>{p.line}</td><td>{_e(m.name)}"
                    f"<br><small>{_e(m.doc or p.detail)}</small></td><td>{_e(m.value)} "
                    f"{_e(m.units)}</td><td>{_e(_limits(m.low, m.high, m.equals))}</td>"
                    f"<td class='{m.outcome}'>{m.outcome}</td></tr>"
                )
        h.append("</table>")
        if r.signals:
            s = r.signals
            h.append(
                f"<p>Signals observed: {s.get('bursts')} bursts, {s.get('pulses')} pulses,"
                f" first pulse at {s.get('first_pulse_s')} s; pulses per burst "
                f"{_e(s.get('pattern_counts'))}.</p>"
            )
        h.append(plot_svg(r))
    h.append(
        "<h2>Signatures</h2><table class='sig'><tr><th>Tested by (name, signature)</th>"
        "<th>Date</th></tr><tr><td></td><td></td></tr><tr><th>Reviewed by (name, "
        "signature)</th><th>Date</th></tr><tr><td></td><td></td></tr></table>"
    )
    h.append("</body></html>")
    return "\n".join(h)


def write_outputs(rec: RunRecord, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "record": out_dir / "record.json",
        "junit": out_dir / "junit.xml",
        "protocol": out_dir / "protocol.html",
    }
    write_json(rec, paths["record"])
    paths["junit"].write_text(junit_xml(rec) + "\n", encoding="utf-8")
    paths["protocol"].write_text(protocol_html(rec), encoding="utf-8")
    return paths


# --- PDF (optional, --pdf): matplotlib, as the session report does ------------------------------


def write_pdf(rec: RunRecord, path: Path) -> None:
    """The protocol as a PDF (A4 landscape): header and summary, requirements, then per
    scenario its steps and the physiology-vs-alarms plot, then a signature page."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from bedside_host.report import _text_pages

    def page(pdf: Any, text: str) -> None:
        fig = Figure(figsize=(11.69, 8.27))
        FigureCanvasAgg(fig)
        fig.text(0.03, 0.97, text, va="top", fontsize=6.5, family="monospace")
        pdf.savefig(fig)

    head = (
        f"Bedside bench test protocol (not a certified medical device)\n"
        f"Device {rec.dut_id}  target {rec.mode}  firmware {rec.firmware}  simulator "
        f"{rec.simulator} {rec.simulator_version}\nOperator {rec.operator}  station "
        f"{rec.station}  suite {rec.suite}  {rec.start} .. {rec.end}  outcome {rec.outcome}"
    )
    rows = [
        [r.id, r.outcome, f"{sum(p.outcome == 'PASS' for p in r.phases)}/{len(r.phases)}",
         r.settings_hash, ", ".join(r.requirements)]
        for r in rec.results
    ]  # fmt: skip
    with PdfPages(path) as pdf:
        for text in _text_pages(
            head, ("scenario", "verdict", "steps", "settings hash", "requirements"), rows
        ):
            page(pdf, text)
        reqs: dict[str, list[str]] = defaultdict(list)
        for r in rec.results:
            for q in r.requirements:
                reqs[q].append(f"{r.id} ({r.outcome})")
        rrows = [[q, ", ".join(v)] for q, v in sorted(reqs.items())]
        for text in _text_pages("Requirements", ("requirement", "scenarios"), rrows):
            page(pdf, text)
        for r in rec.results:
            fig = Figure(figsize=(11.69, 8.27))
            FigureCanvasAgg(fig)
            fig.text(0.03, 0.97, f"{r.id}: {r.title}  [{r.outcome}]", va="top", fontsize=10)
            lines = [
                f"{p.outcome:4} {p.name[:44]:44} {m.name[:30]:30} {str(m.value)[:22]:22} "
                f"{_limits(m.low, m.high, m.equals)[:24]}{' MARGINAL' if m.marginal else ''}"
                for p in r.phases
                for m in (p.measurements or [])
            ] or [r.error or "(no steps)"]
            fig.text(0.03, 0.93, "\n".join(lines[:28]), va="top", fontsize=6, family="monospace")
            ax = fig.add_axes((0.07, 0.07, 0.9, 0.38))
            ts = [row[0] for row in r.trace]
            for idx, colour, label in ((1, "#1f77b4", "SpO2 %"), (2, "#2ca02c", "PR /min")):
                ax.plot(ts, [row[idx] for row in r.trace], color=colour, lw=1, label=label)
            for n in r.nibp:
                if not n["ec"]:
                    ax.vlines(n["t"], n["dia"], n["sys"], color="#9467bd", lw=3)
            for i, c in enumerate(sorted({a["condition"] for a in r.alarms})):
                evs = [a for a in r.alarms if a["condition"] == c]
                for a, b in zip(evs, [*evs[1:], None], strict=False):
                    if a["state"] == "inactive":
                        continue
                    end = b["t"] if b is not None else r.duration_s
                    ax.broken_barh([(a["t"], end - a["t"])], (20 - 6 * i, 5),
                                   color=PRIO_COLOUR.get(a["priority"], "#888"))  # fmt: skip
                ax.text(0, 22 - 6 * i, c, fontsize=6)
            ax.set_xlim(0, r.duration_s)
            ax.set_xlabel("s")
            ax.legend(loc="upper right", fontsize=6)
            pdf.savefig(fig)
        page(pdf, "Signatures\n\nTested by (name, signature, date):\n\n\n\n"
             "Reviewed by (name, signature, date):\n")  # fmt: skip
        info = pdf.infodict()
        info["Title"] = f"Bedside bench test protocol {rec.dut_id}"
        info["Creator"] = f"{rec.simulator} {rec.simulator_version}"
