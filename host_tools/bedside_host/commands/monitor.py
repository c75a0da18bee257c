"""``bedside monitor``: live terminal view of one device (vitals, alarms, link health).

``--json`` prints each received message as one JSON line instead (for scripts and tests).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bedside_host.linkclient import LinkClient

HELP = "live view of one device: vitals, alarm state with priority colours, link health"
PRIORITY_STYLE = {
    "high": "bold white on red",
    "medium": "bold black on yellow",
    "low": "black on cyan",
    "none": "green",
}
PRIORITY_ORDER = {"high": 3, "medium": 2, "low": 1, "none": 0}
STALE_S = 3.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="device host-link port or pyserial URL")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--json", action="store_true", help="print each message as one JSON line")
    p.add_argument(
        "--annunciator-log",
        metavar="FILE",
        help="SIL annunciator log to show the sounder and LEDs (demo)",
    )
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: never)")


@dataclass
class View:
    """What the monitor knows about the device, built from its messages."""

    oxi: dict[str, Any] = field(default_factory=dict)
    nibp: dict[str, Any] = field(default_factory=dict)
    nibp_state: str = ""
    heartbeat: dict[str, Any] = field(default_factory=dict)
    hello: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    buzzer: bool = False
    leds: dict[str, bool] = field(default_factory=dict)

    def apply(self, m: dict[str, Any]) -> None:
        t = m.get("type")
        if m.get("replayed"):  # recovered history: log it, do not let it overwrite the present
            if t == "alarm":
                self._event(f"(earlier) {m.get('condition')} {m.get('event')} -> {m.get('state')}")
            return
        if t == "oxi":
            self.oxi = m
        elif t == "nibp":
            self.nibp = m
        elif t == "nibp_state":
            self.nibp_state = str(m.get("state", ""))
            if m.get("message"):
                self._event(f"NIBP {m['state']}: {m['message']}")
        elif t == "heartbeat":
            self.heartbeat = m
            active = set(m.get("active") or [])
            for cond in list(self.alarms):
                if cond not in active:
                    del self.alarms[cond]
            if m.get("nibp"):
                self.nibp = {**m["nibp"], "t_ms": m.get("t_ms")}
            if m.get("nibp_state"):
                self.nibp_state = str(m["nibp_state"])
        elif t == "hello":
            self.hello = m
            self.alarms.clear()
            self._event(f"device started: fw {m.get('fw')}, reset cause {m.get('reset_cause')}")
        elif t == "alarm":
            cond = str(m.get("condition"))
            if m.get("state") == "inactive":
                self.alarms.pop(cond, None)
            else:
                self.alarms[cond] = m
            self._event(f"{cond} {m.get('event')} -> {m.get('state')} ({m.get('priority')})")
        elif t == "reply" and not m.get("ok", True):
            self._event(f"device refused {m.get('cmd')}: {m.get('error')}")

    def apply_annunciator(self, rec: dict[str, Any]) -> None:
        if rec.get("dev") == "buzzer":
            self.buzzer = bool(rec.get("on"))
        elif rec.get("dev") == "led":
            self.leds[str(rec.get("color"))] = bool(rec.get("on"))

    def _event(self, text: str) -> None:
        self.events.append(time.strftime("%H:%M:%S ") + text)
        del self.events[:-6]


def _num(v: Any, unit: str = "") -> str:
    return "--" if v is None else f"{v}{unit}"


def render(view: View, link: LinkClient, port: str) -> Group:
    now = time.monotonic()
    hb_age = now - link.stats.last_heartbeat if link.stats.last_heartbeat else None
    link_ok = hb_age is not None and hb_age < STALE_S
    head = Text(f"Bedside monitor  {port}   ")
    head.append("LINK OK" if link_ok else "NO LINK", style="green" if link_ok else "bold red")
    head.append(
        f"   seq {link.last_seq}  gaps {link.stats.gaps} recovered "
        f"{link.stats.recovered}  bad lines {link.stats.bad_lines}"
    )
    if hb_age is not None:
        head.append(f"  heartbeat {hb_age:.1f} s ago")

    vitals = Table.grid(padding=(0, 4))
    flags = ", ".join(view.oxi.get("flags") or []) or "ok"
    nibp = view.nibp
    if nibp.get("sys") is not None:
        age = nibp.get("age_s")
        nibp_txt = f"{nibp['sys']}/{nibp['dia']} ({nibp['map']})  {_age(age)}"
    else:
        nibp_txt = "--/-- (no reading)"
    if view.nibp_state and view.nibp_state not in ("idle",):
        nibp_txt += f"  [{view.nibp_state}]"
    vitals.add_row(
        Text("SpO2", style="dim"), Text("Pulse", style="dim"), Text("NIBP mmHg", style="dim")
    )
    vitals.add_row(
        Text(_num(view.oxi.get("spo2"), " %"), style="bold cyan"),
        Text(_num(view.oxi.get("pr"), " /min"), style="bold green"),
        Text(nibp_txt, style="bold"),
    )
    vitals.add_row(Text(f"oximeter: {flags}", style="dim"), Text(""), Text(""))

    alarms = Table(expand=True, show_edge=False)
    alarms.add_column("priority")
    alarms.add_column("condition")
    alarms.add_column("state")
    alarms.add_column("value / limit")
    rows = sorted(
        view.alarms.values(), key=lambda a: -PRIORITY_ORDER.get(str(a.get("priority")), 0)
    )
    for a in rows:
        pr = str(a.get("priority"))
        alarms.add_row(
            Text(pr.upper(), style=PRIORITY_STYLE.get(pr, "")),
            str(a.get("condition")),
            str(a.get("state")),
            f"{_num(a.get('value'))} / {_num(a.get('limit'))}",
        )
    hb = view.heartbeat
    top = str(hb.get("priority", "none"))
    status = Text("Highest: ")
    status.append(top.upper(), style=PRIORITY_STYLE.get(top, ""))
    paused = hb.get("audio_paused_s") or 0
    if paused:
        status.append(f"   AUDIO PAUSED {paused} s", style="bold magenta")
    if view.leds or view.buzzer:
        status.append("   sounder ")
        status.append("ON" if view.buzzer else "off", style="bold red" if view.buzzer else "dim")
        lit = [c for c, on in view.leds.items() if on]
        status.append("   LED " + (", ".join(lit) or "none"))
    events = Text("\n".join(view.events) or "(no events yet)", style="dim")
    return Group(
        head,
        Panel(vitals, title="Vitals"),
        Panel(Group(status, alarms), title="Alarms"),
        Panel(events, title="Events"),
    )


def _age(age: Any) -> str:
    if age is None:
        return ""
    age = int(age)
    return f"{age} s ago" if age < 120 else f"{age // 60} min ago"


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


def run(args: argparse.Namespace) -> int:
    try:
        link = LinkClient.open(args.port, args.baud)
    except Exception as e:  # serial.SerialException, ValueError
        print(f"bedside monitor: cannot open {args.port}: {e}", file=sys.stderr)
        return 2
    stop = {"now": False}

    def _stop(_s: int, _f: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    link.send("hello")
    view = View()
    tail = _Tail(args.annunciator_log)
    end = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        if args.json:
            while not stop["now"] and (end is None or time.monotonic() < end):
                for m in link.poll():
                    print(json.dumps(m), flush=True)
            return 0
        console = Console()
        with Live(
            render(view, link, args.port), console=console, refresh_per_second=4, screen=False
        ) as live:
            while not stop["now"] and (end is None or time.monotonic() < end):
                for m in link.poll():
                    view.apply(m)
                for rec in tail.read():
                    view.apply_annunciator(rec)
                live.update(render(view, link, args.port))
    finally:
        link.close()
    return 0
