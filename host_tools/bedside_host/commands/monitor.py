"""``bedside monitor``: live terminal view of one device (vitals, alarms, what is sounding,
link health), on a DeviceLink that survives the device restarting or the port vanishing.

Every value is shown with its age; a value older than STALE_S, or any value while the link is
not live, is greyed and marked stale (the screen never shows old numbers as current and never
says the link is fine when it is not). The alarm list is the device's own (heartbeat
``alarms``), highest priority first, each with its value against its limit ("PR 149 > 130").
Replayed history and flash-log records go to the events list only, never over the present.

``--json`` prints each message as one JSON line instead (live lines verbatim; replayed ones
with ``"replayed": true``; gaps as ``{"type": "gap", "host": true, ...}``).
``--db FILE`` records every message and gap into SQLite (bedside_host.store).
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bedside_host import ensure_firmware_on_path
from bedside_host.commands._device import UsageError, resolve_port
from bedside_host.config import ConfigError
from bedside_host.link.client import DeviceLink
from bedside_host.link.messages import UNKNOWN_END, Gap, LinkStats, Received
from bedside_host.link.transport import BAUD
from bedside_host.signal_text import signal_text

ensure_firmware_on_path()

from bedside.alarms.conditions import CONDITIONS  # noqa: E402

HELP = "live view of one device: vitals, alarm state with priority colours, link health"
PRIORITY_STYLE = {
    "high": "bold white on red",
    "medium": "bold black on yellow",
    "low": "black on cyan",
    "none": "green",
}
PRIORITY_ORDER = {"high": 3, "medium": 2, "low": 1, "none": 0}
STALE_S = 3.0  # a value older than this is not current
STALE_STYLE = "dim strike"
TITLES = {c[0]: c[6] for c in CONDITIONS}  # the display titles (firmware condition table)
EVENTS_SHOWN = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bedside_host.commands._device import add_port

    add_port(p)
    p.add_argument("--baud", type=int, default=BAUD, help="for UART bridges (USB ignores it)")
    p.add_argument("--json", action="store_true", help="print each message as one JSON line")
    p.add_argument(
        "--annunciator-log",
        metavar="FILE",
        help="SIL annunciator log to show the sounder and LEDs (demo)",
    )
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: never)")
    p.add_argument(
        "--wait",
        action="store_true",
        help="if the port cannot be opened at start, keep trying (default: exit 2)",
    )
    p.add_argument(
        "--db",
        metavar="FILE",
        help="also record every message and gap into this SQLite file (bedside_host.store)",
    )


# --- what the view shows -----------------------------------------------------------------
def measure(condition: str) -> tuple[str, str] | None:
    """(quantity, direction) of a limit alarm, from its condition id; None if not one."""
    quantity = None
    for prefix, q in (
        ("SPO2_", "SpO2"),
        ("PR_", "PR"),
        ("NIBP_SYS_", "SYS"),
        ("NIBP_DIA_", "DIA"),
        ("NIBP_MAP_", "MAP"),
        ("BP_RISE", "SYS"),
    ):
        if condition.startswith(prefix):
            quantity = q
            break
    if quantity is None:
        return None
    if condition.endswith(("_LOW", "_DESAT")):
        return quantity, "<"
    if condition.endswith(("_HIGH", "_RISE")) or condition == "BP_RISE":
        return quantity, ">"
    return None


def value_text(condition: str, value: Any, limit: Any) -> str:
    """'PR 149 > 130', 'SpO2 86 < 90'; '' when the condition has no value."""
    if value is None:
        return ""
    m = measure(condition)
    if m is None:
        return f"{value}" if limit is None else f"{value} (limit {limit})"
    quantity, direction = m
    return f"{quantity} {value}" if limit is None else f"{quantity} {value} {direction} {limit}"


def age_text(age: float | None) -> str:
    if age is None:
        return ""
    a = max(0, int(age))
    if a < 120:
        return f"{a} s ago"
    if a < 7200:
        return f"{a // 60} min ago"
    return f"{a // 3600} h ago"


def clock_text(wall: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall)) if wall is not None else "--:--:--"


@dataclass
class LinkView:
    """A snapshot of the DeviceLink for rendering."""

    url: str = ""
    state: str = "disconnected"
    since: float = 0.0  # seconds in this state
    retry_in: float | None = None
    last_error: str = ""
    boot: int | None = None
    last_seq: int = 0
    stats: LinkStats = field(default_factory=LinkStats)
    quiet_s: float | None = None  # seconds since the last line

    @classmethod
    def of(cls, link: DeviceLink, mono_now: float) -> LinkView:
        s = link.stats
        return cls(
            url=link.url,
            state=link.state,
            since=mono_now - link.state_since,
            retry_in=link.retry_in(),
            last_error=link.last_error,
            boot=link.boot,
            last_seq=link.last_seq,
            stats=LinkStats(**vars(s)),
            quiet_s=mono_now - s.last_rx if s.last_rx else None,
        )


@dataclass
class Seen:
    msg: dict[str, Any]
    rx: float  # host receive time (epoch s)
    wall: float | None


@dataclass
class View:
    """What the monitor knows about the device, built from its messages."""

    oxi: Seen | None = None
    heartbeat: Seen | None = None
    nibp: Seen | None = None
    nibp_state: Seen | None = None
    hello: dict[str, Any] = field(default_factory=dict)
    alarm_events: dict[str, dict[str, Any]] = field(default_factory=dict)  # protocol v1
    events: list[str] = field(default_factory=list)
    link: LinkView = field(default_factory=LinkView)
    audio_off: bool | None = None
    buzzer: bool = False
    leds: dict[str, bool] = field(default_factory=dict)
    signal: dict[str, Any] | None = None  # the SIL's last "signal" record (pattern in force)

    def apply(self, item: Received | Gap) -> None:
        if isinstance(item, Gap):
            end = "end of boot" if item.last_seq == UNKNOWN_END else str(item.last_seq)
            self.note(
                item.rx_time, f"GAP boot {item.boot} seq {item.first_seq}..{end}: {item.reason}"
            )
            return
        m = item.msg
        t = m.get("type")
        when = item.wall_time if item.wall_time is not None else item.rx_time
        if item.known:  # a flash-log record read to fill a gap that holds no news
            return
        if item.replayed:  # history: the events list only, never over the present
            if t == "alarm":
                self.note(when, "(earlier) " + _alarm_text(m))
            elif t == "log" and isinstance(m.get("rec"), dict) and "condition" in m["rec"]:
                self.note(when, "(flash log) " + _alarm_text(m["rec"]))
            return
        seen = Seen(m, item.rx_time, item.wall_time)
        if t == "oxi":
            self.oxi = seen
        elif t == "heartbeat":
            self.heartbeat = seen
            if isinstance(m.get("nibp"), dict) and m["nibp"].get("sys") is not None:
                self.nibp = Seen(dict(m["nibp"]), item.rx_time, item.wall_time)
            active = set(m.get("active") or [])
            for cond in list(self.alarm_events):
                if cond not in active:
                    del self.alarm_events[cond]
            if "audio_off" in m:
                self._audio_off(bool(m["audio_off"]), when, None)
        elif t == "nibp":
            self.nibp = seen
            if m.get("sys") is not None:
                self.note(when, f"NIBP {m.get('sys')}/{m.get('dia')} ({m.get('map')})")
        elif t == "nibp_state":
            self.nibp_state = seen
            text = m.get("message") or m.get("reason") or ""
            self.note(when, f"NIBP {m.get('state')}" + (f": {text}" if text else ""))
        elif t == "hello":
            self.hello = m
            self.note(
                when,
                f"device hello: fw {m.get('fw')}, boot {m.get('boot', 0)}, "
                f"reset cause {m.get('reset_cause')}",
            )
            if m.get("settings_problems"):
                self.note(when, "settings problems: " + "; ".join(m["settings_problems"]))
        elif t == "alarm":
            cond = str(m.get("condition"))
            if m.get("state") == "inactive":
                self.alarm_events.pop(cond, None)
            else:
                self.alarm_events[cond] = m
            self.note(when, _alarm_text(m))
        elif t == "setting":
            by = f" by {m['by']}" if m.get("by") else ""
            self.note(when, f"setting {m.get('name')} {m.get('old')} -> {m.get('value')}{by}")
        elif t == "audio_off":
            self._audio_off(bool(m.get("on")), when, m.get("reason"))
        elif t == "fault":
            self.note(when, f"device fault in {m.get('where')}: {m.get('error')}")
        elif t == "reply" and m.get("ok") is False:
            self.note(when, f"device refused {m.get('cmd')}: {m.get('error')}")

    def _audio_off(self, on: bool, when: float, reason: Any) -> None:
        if on != self.audio_off and (self.audio_off is not None or on):
            why = f" ({reason})" if reason else ""
            self.note(when, ("AUDIO OFF entered" if on else "AUDIO OFF ended") + why)
        self.audio_off = on

    def update_link(self, link: LinkView) -> None:
        old = self.link
        if old.state != link.state and old.url:
            why = f" ({link.last_error})" if link.state == "disconnected" else ""
            self.note(time.time(), f"link {old.state} -> {link.state}{why}")
        if link.stats.restarts > old.stats.restarts and old.url:
            self.note(time.time(), "the device restarted")
        self.link = link

    def apply_annunciator(self, rec: dict[str, Any]) -> None:
        if rec.get("dev") == "signal":
            self.signal = rec
        elif rec.get("dev") == "buzzer":
            self.buzzer = bool(rec.get("on"))
        elif rec.get("dev") == "led":
            self.leds[str(rec.get("color"))] = bool(rec.get("on"))

    def note(self, when: float, text: str) -> None:
        """One line in the events list."""
        self.events.append(f"{clock_text(when)} {text}")
        del self.events[:-EVENTS_SHOWN]


def _alarm_text(m: dict[str, Any]) -> str:
    cond = str(m.get("condition"))
    vt = value_text(cond, m.get("value"), m.get("limit"))
    return f"{cond} {m.get('event')} -> {m.get('state')} ({m.get('priority')})" + (
        f"  {vt}" if vt else ""
    )


# --- rendering ---------------------------------------------------------------------------
def _link_line(lv: LinkView) -> Text:
    head = Text(f"Bedside monitor  {lv.url}   ")
    if lv.state == "live":
        head.append(" LIVE ", style="bold black on green")
        head.append(f"  boot {lv.boot} seq {lv.last_seq}")
    elif lv.state == "stale":
        quiet = f"{lv.quiet_s:.0f} s" if lv.quiet_s is not None else "?"
        head.append(f" STALE: no data for {quiet} ", style="bold black on yellow")
    elif lv.state == "syncing":
        head.append(" SYNCING ", style="bold black on yellow")
    elif lv.state == "connecting":
        head.append(" CONNECTING ", style="bold white on red")
    else:
        retry = f"reconnecting in {lv.retry_in:.1f} s" if lv.retry_in is not None else "closed"
        head.append(f" DISCONNECTED: {retry} ", style="bold white on red")
        if lv.last_error:
            head.append(f"  {lv.last_error}", style="red")
    return head


def _stats_line(lv: LinkView, hb: dict[str, Any]) -> Text:
    s = lv.stats
    text = (
        f"received {s.received}  bad lines {s.bad_lines}  gaps {s.gaps} (lost {s.lost})  "
        f"recovered {s.recovered}  duplicates {s.duplicates}  restarts {s.restarts}  "
        f"reconnects {s.reconnects}"
    )
    if hb:
        text += f"  | device rx errors {hb.get('rx_errors')}  tx dropped {hb.get('tx_dropped')}"
    bad = s.bad_lines or s.gaps or hb.get("rx_errors") or hb.get("tx_dropped")
    return Text(text, style="yellow" if bad else "dim")


def _stale(seen: Seen | None, now: float, live: bool) -> tuple[float | None, bool]:
    if seen is None:
        return None, True
    age = now - seen.rx
    return age, (not live) or age >= STALE_S


def _vital(label: str, v: Any, unit: str, age: float | None, stale: bool, style: str) -> Text:
    t = Text(f"{label} ", style="dim")
    t.append("--" if v is None else f"{v}{unit}", style=STALE_STYLE if stale else style)
    if age is not None:
        t.append(f"  {age_text(age)}" + ("  STALE" if stale else ""), style="dim")
    return t


def render(view: View, now: float) -> Group:
    """The screen for `now` (epoch s): pure, for tests."""
    lv = view.link
    live = lv.state == "live"
    hb_seen = view.heartbeat
    hb = hb_seen.msg if hb_seen else {}
    hb_age, hb_stale = _stale(hb_seen, now, live)

    oxi = view.oxi.msg if view.oxi else {}
    oxi_age, oxi_stale = _stale(view.oxi, now, live)
    vitals = Table.grid(padding=(0, 4))
    vitals.add_row(
        _vital("SpO2", oxi.get("spo2"), " %", oxi_age, oxi_stale, "bold cyan"),
        _vital("Pulse", oxi.get("pr"), " /min", oxi_age, oxi_stale, "bold green"),
    )
    flags = ", ".join(oxi.get("flags") or []) or ("ok" if oxi else "no data")
    extra = f"oximeter: {flags}"
    if oxi.get("spo2_age_s") is not None and oxi.get("spo2") is None:
        extra += f"; last valid SpO2 {age_text(oxi['spo2_age_s'])}"
    vitals.add_row(Text(extra, style="dim"), Text(""))
    vitals.add_row(_nibp_text(view, now, live, hb), Text(""))

    status = _sounding(hb, hb_age, hb_stale, now)
    if view.signal is not None:  # what the annunciator plays, not the pin's on/off
        paused = hb.get("audio_paused_s")
        left = paused - (hb_age or 0.0) if isinstance(paused, int | float) else None
        status.append("\nSIL signal: ", style="dim")
        status.append(signal_text(view.signal, left), style="bold")
    elif view.leds or view.buzzer:  # an annunciator log without signal records
        status.append("   sounder ")
        status.append("ON" if view.buzzer else "off", style="bold red" if view.buzzer else "dim")
        lit = [c for c, on in view.leds.items() if on]
        status.append("   LED " + (", ".join(lit) or "none"))

    alarms = Table(expand=True, show_edge=False)
    for col in ("priority", "alarm", "state", "value / limit", "since"):
        alarms.add_column(col)
    for a in _alarm_rows(view, hb):
        pr = str(a.get("priority"))
        cond = str(a.get("condition"))
        alarms.add_row(
            Text(pr.upper(), style=STALE_STYLE if hb_stale else PRIORITY_STYLE.get(pr, "")),
            Text(f"{TITLES.get(cond, cond)}", style=STALE_STYLE if hb_stale else ""),
            str(a.get("state", "")).replace("_", " "),
            value_text(cond, a.get("value"), a.get("limit")),
            age_text(a.get("age_s")).replace(" ago", "") if a.get("age_s") is not None else "",
        )
    events = Text("\n".join(view.events) or "(no events yet)", style="dim")
    return Group(
        _link_line(lv),
        _stats_line(lv, hb),
        Panel(vitals, title="Vitals"),
        Panel(Group(status, alarms), title="Alarms"),
        Panel(events, title="Events"),
    )


def _nibp_text(view: View, now: float, live: bool, hb: dict[str, Any]) -> Text:
    t = Text("NIBP ", style="dim")
    n = view.nibp.msg if view.nibp else {}
    if n.get("sys") is not None and view.nibp is not None:
        age = n.get("age_s")
        # the reading's own age at the message, plus the time since the message
        taken_age = (age if age is not None else 0) + (now - view.nibp.rx)
        t.append(f"{n['sys']}/{n['dia']} ({n['map']}) mmHg", style="bold" if live else STALE_STYLE)
        taken = now - taken_age
        t.append(f"  taken {clock_text(taken)}, {age_text(taken_age)}", style="dim")
    else:
        t.append("--/-- (no reading)", style="dim")
    state = hb.get("nibp_state") or (view.nibp_state.msg.get("state") if view.nibp_state else "")
    hb_stale = _stale(view.heartbeat, now, live)[1]
    style = STALE_STYLE if hb_stale else "bold magenta"
    if state and state not in ("idle",):
        t.append(f"  [{state}]", style=style)
    if hb.get("cuff") is not None:
        t.append(f"  cuff {hb['cuff']} mmHg", style=style)
    if hb_stale and ((state and state != "idle") or hb.get("cuff") is not None):
        t.append("  STALE", style="bold yellow")
    return t


def _sounding(hb: dict[str, Any], age: float | None, stale: bool, now: float) -> Text:
    if not hb:
        return Text("sounding: unknown (no heartbeat yet)", style="dim")
    since = age or 0.0
    top = str(hb.get("priority", "none"))
    audible = str(hb.get("audible", "none"))
    t = Text("Highest: ")
    t.append(f" {top.upper()} ", style=STALE_STYLE if stale else PRIORITY_STYLE.get(top, ""))
    t.append("   ")
    if hb.get("audio_off"):
        left = hb.get("audio_off_left_s")
        lease = f" (lease {max(0, int(left - since))} s left)" if left is not None else ""
        t.append(f"AUDIO OFF{lease}", style="bold white on magenta")
    elif hb.get("audio_paused_s"):
        left = max(0, int(hb["audio_paused_s"] - since))
        t.append(f"AUDIO PAUSED {left} s", style="bold magenta")
        if audible != "none":
            t.append(f"   sounding {audible.upper()}", style=PRIORITY_STYLE.get(audible, ""))
    elif audible != "none":
        t.append(f"SOUNDING {audible.upper()}", style=PRIORITY_STYLE.get(audible, ""))
    else:
        t.append("quiet", style="green")
    if stale:
        t.append(f"   (as of {age_text(age)}: STALE)", style="bold yellow")
    return t


def _alarm_rows(view: View, hb: dict[str, Any]) -> list[dict[str, Any]]:
    rows = hb.get("alarms")
    if not isinstance(rows, list):  # protocol v1 heartbeat: from the alarm events
        rows = list(view.alarm_events.values())
    rows = [r for r in rows if isinstance(r, dict)]
    return sorted(
        rows,
        key=lambda a: (-PRIORITY_ORDER.get(str(a.get("priority")), 0), -(a.get("age_s") or 0)),
    )


# --- the loop ----------------------------------------------------------------------------
class _Tail:
    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.pos = 0

    def read(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            f.seek(self.pos)
            chunk = f.read()
        end = chunk.rfind("\n") + 1
        self.pos += len(chunk[:end].encode())
        out = []
        for line in chunk[:end].splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def json_line(item: Received | Gap) -> str:
    if isinstance(item, Gap):
        return json.dumps(
            {
                "type": "gap",
                "host": True,
                "port": item.port,
                "boot": item.boot,
                "first_seq": item.first_seq,
                "last_seq": item.last_seq,
                "reason": item.reason,
            }
        )
    if item.replayed:  # known: a flash-log record read to fill a gap, already delivered
        return json.dumps(
            {**item.msg, "replayed": True, **({"known": True} if item.known else {})}
        )
    return item.line


class _Recorder:
    """--db: every item into the records store; a failed write is reported, the view goes on
    (the store keeps the batch and retries on the next write)."""

    def __init__(self, path: str) -> None:
        try:
            mod = importlib.import_module("bedside_host.store")
        except ImportError:
            raise UsageError(
                "--db needs the records store (bedside_host.store), which this installation lacks"
            ) from None
        try:
            self.store = mod.Store(path)
        except Exception as e:  # the store's StoreError: not a record file, unwritable
            raise UsageError(f"--db {path}: {e}") from None
        self.error = ""

    def add(self, items: list[Received | Gap]) -> str:
        """Record the items; returns a new error text ('' if none)."""
        failed = ""
        for item in items:  # one by one: a failure must not drop the items after it
            try:
                self.store.add(item)
            except Exception as e:  # StoreError (disk full, locked): report, keep showing
                failed = f"recording to the database failed: {e}"
        flush = getattr(self.store, "maybe_flush", None)  # commits an idle batch
        if flush is not None:
            try:
                flush()
            except Exception as e:
                failed = f"recording to the database failed: {e}"
        new = failed != self.error
        self.error = failed
        return failed if new else ""

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def run(args: argparse.Namespace) -> int:
    try:
        port = resolve_port(args.port)
        store = _Recorder(args.db) if getattr(args, "db", None) else None
    except (UsageError, ConfigError) as e:
        print(f"bedside monitor: {e}", file=sys.stderr)
        return 2
    link = DeviceLink(port, baudrate=args.baud)
    link.poll()
    if link.state == "disconnected" and not getattr(args, "wait", False):
        print(f"bedside monitor: {link.last_error}", file=sys.stderr)
        link.close()
        if store is not None:
            store.close()
        return 2
    stop = {"now": False}

    def _stop(_s: int, _f: FrameType | None) -> None:
        stop["now"] = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    view = View()
    tail = _Tail(args.annunciator_log)
    end = time.monotonic() + args.duration if args.duration > 0 else None

    def running() -> bool:
        return not stop["now"] and (end is None or time.monotonic() < end)

    def record(items: list[Received | Gap]) -> None:
        if store is None:
            return
        err = store.add(items)
        if err and args.json:
            print(f"bedside monitor: {err}", file=sys.stderr)
        elif err:
            view.note(time.time(), err)

    try:
        if args.json:
            while running():
                items = link.poll(0.2)
                record(items)
                for item in items:
                    print(json_line(item), flush=True)
            return 0
        console = Console()
        with Live(render(view, time.time()), console=console, refresh_per_second=4) as live:
            while running():
                items = link.poll(0.25)
                record(items)
                for item in items:
                    view.apply(item)
                for rec in tail.read():
                    view.apply_annunciator(rec)
                view.update_link(LinkView.of(link, time.monotonic()))
                live.update(render(view, time.time()))
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        link.close()
        if store is not None:
            store.close()
