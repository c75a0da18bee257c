"""Bench scenario files: TOML (stdlib tomllib), format "bedside-scenario" version 1.

docs/scenarios.md is the reference with a complete example. A file holds: the device settings,
the starting vitals and a physiology timeline (ramps, jitter, seed), faults (sensor, module,
byte stream, host link), operator actions (keys, host commands, later session steps) and the
expectations the run is judged by. ``load_scenario`` validates everything and raises
ScenarioError naming the file, the line and the field; nothing is half-loaded.

Condition ids, priorities, states and settings are read from the firmware (conditions.py,
fsm.py, settings.py): the one source of truth.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedside_host import ensure_firmware_on_path
from bedside_host.sim.encoders import OXIMETER_FORMATS
from bedside_host.sim.patient import CHANNELS

ensure_firmware_on_path()

from bedside import settings as fw_settings  # noqa: E402
from bedside.alarms import fsm  # noqa: E402
from bedside.alarms.conditions import CONDITIONS, IDS, PHYSIOLOGICAL, PRIORITY_NAMES  # noqa: E402
from bedside.alarms.patterns import COLOR_NAMES  # noqa: E402

FORMAT = "bedside-scenario"
VERSION = 1

# fault kind -> (allowed keys besides kind/at_s/for_s, what it does)
FAULTS: dict[str, tuple[tuple[str, ...], str]] = {
    "finger_out": ((), "finger out of the probe (no finger)"),
    "probe_off": ((), "probe unplugged from the oximeter module (sensor off)"),
    "artifact": ((), "motion artifact burst (noisy pleth, artifact flag)"),
    "searching": ((), "the module lost the pulse (searching, no values)"),
    "low_perfusion": ((), "low perfusion (weak pulse)"),
    "cable_pulled": (("stream",), "the module's cable pulled: no bytes either way"),
    "garbage": (("stream", "rate"), "random bytes inserted with probability `rate` per byte"),
    "corrupt": (("stream", "rate"), "one bit flipped with probability `rate` per byte"),
    "wrong_baud": (("baud",), "the oximeter sends at `baud` (the device reads its own rate)"),
    "nibp_error": (("code",), "every NIBP measurement ends with error code `code` (e.g. 0x57)"),
    "nibp_silent": ((), "the NIBP module stops answering (it still receives)"),
    "nibp_stuck": (("mmhg",), "the NIBP cuff inflates to `mmhg` and stays there"),
    "host_silent": ((), "the host stops talking to the device (no pings, no commands)"),
    "host_garbage": (("rate_hz",), "`rate_hz` lines of garbage a second on the host link"),
    "core_exception": ((), "a core stage raises once (virtual target only: a caught fault)"),
}
PATIENT_FAULTS = {
    "finger_out": "finger_out",
    "probe_off": "unplugged",
    "artifact": "artifact",
    "searching": "searching",
    "low_perfusion": "low_perfusion",
}
STREAMS = ("oximeter", "nibp")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)

KEYS = ("ack", "reset", "check", "nibp", "selftest")  # device keys (buttons.EVENTS)
# action -> (required keys, optional keys)
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **dict.fromkeys(KEYS, ((), ())),
    "stat": ((), ()),  # host command nibp start (a STAT reading)
    "nibp_stop": ((), ()),  # host command nibp stop
    "audio_off": ((), ("lease_s",)),
    "audio_on": ((), ()),
    "set": (("name", "value"), ()),
    "test_alarm": (("priority",), ()),
    "session": (("op",), ("args",)),
    "restart": ((), ()),  # the device restarts (power lost and back); virtual target only
}
# session ops (issue 11 contract, SESSION_PROTOCOL): op -> argument names
SESSION_OPS: dict[str, tuple[str, ...]] = {
    "open": ("patient", "course_day", "course_total"),
    "screened": ("override",),
    "cancel": ("reason",),
    "baseline": ("action",),
    "start": (),
    "dose": ("rate", "units", "reason"),
    "o2": ("on", "flow"),
    "check": ("score", "scale"),
    "stop": (),
    "discharge": ("aldrete", "padss"),
    "close": ("escort", "relationship", "advice"),
}
TARGETS = ("virtual", "sil", "ports")
REQUIRES = ("session",)  # device capabilities a scenario may need (else it is skipped)
STARTS = ("power_on", "restart", "corrupt_settings")  # how the device starts
FLASH = ("ok", "failing")
EVENTS = tuple(fsm.EVENT_NAMES)  # raise, end, ack, pause_end, reset, escalate
STATES = tuple(fsm.STATE_NAMES)
PRIORITIES = tuple(PRIORITY_NAMES[1:])  # low, medium, high
SIGNALS = tuple(PRIORITY_NAMES)  # none, low, medium, high
EXPECT_KINDS = (
    "raised",
    "ended",
    "event",
    "not_raised",
    "state",
    "signal",
    "display",
    "heartbeat",
    "reply",
    "session",
    "session_event",
    "nibp_every_s",
)
REPLIES = ("ok", "refused")
# discharge criteria (docs/session.md), named in a refused discharge's reply
CRITERIA = ("recovery_time", "bp", "pr", "spo2", "no_alarm", "alert", "aldrete", "padss")
# fields of the session state object a `session` step may check (docs/protocol.md)
SESSION_FIELDS = (
    "phase", "patient", "course_day", "course_total", "baseline_readings", "baseline_ready",
    "baseline", "dose", "o2", "nibp_interval_s", "restored", "id",
)  # fmt: skip
SESSION_EVENTS = (*SESSION_OPS, "reminder", "overdue", "restored", "baseline_reading")
HEARTBEAT_FIELDS = ("audio_off", "priority", "audible", "top", "phase", "nibp_state")

# physiological condition -> (patient channel, comparison, setting): what "crossing the limit"
# means for the latency clock. NIBP conditions cross when the module delivers the reading.
CROSSING: dict[str, tuple[str, str, str]] = {
    "SPO2_DESAT": ("spo2", "<", "spo2_desat"),
    "SPO2_LOW": ("spo2", "<", "spo2_low"),
    "PR_LOW": ("pr", "<", "pr_low"),
    "PR_HIGH": ("pr", ">", "pr_high"),
    "NIBP_SYS_HIGH": ("nibp_sys", ">", "sys_high"),
    "NIBP_SYS_LOW": ("nibp_sys", "<", "sys_low"),
    "NIBP_DIA_HIGH": ("nibp_dia", ">", "dia_high"),
    "NIBP_MAP_LOW": ("nibp_map", "<", "map_low"),
    "BP_RISE": ("nibp_sys", "rise", "bp_rise_pct"),
}


class ScenarioError(ValueError):
    """A scenario file that cannot be run; str() is one line: file, line, field, why."""


@dataclass(frozen=True)
class Ramp:
    at_s: float
    over_s: float
    targets: dict[str, float]


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float
    for_s: float | None  # None: to the end
    stream: str = "oximeter"
    rate: float = 0.0
    baud: int = 0
    code: int = 0
    mmhg: int = 0
    rate_hz: float = 1.0

    def active(self, t: float) -> bool:
        return self.at_s <= t and (self.for_s is None or t < self.at_s + self.for_s)

    @property
    def end_s(self) -> float | None:
        return None if self.for_s is None else self.at_s + self.for_s

    def describe(self) -> str:
        extra = {
            "cable_pulled": f" ({self.stream})",
            "garbage": f" ({self.stream}, rate {self.rate:g})",
            "corrupt": f" ({self.stream}, rate {self.rate:g})",
            "wrong_baud": f" ({self.baud} baud)",
            "nibp_error": f" (code 0x{self.code:02X})",
            "nibp_stuck": f" ({self.mmhg} mmHg)",
            "host_garbage": f" ({self.rate_hz:g} lines/s)",
        }.get(self.kind, "")
        span = "to the end" if self.for_s is None else f"for {self.for_s:g} s"
        return f"{self.kind}{extra} at {self.at_s:g} s {span}"


@dataclass(frozen=True)
class Action:
    at_s: float
    do: str
    fields: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.do == "session":
            return f"session {self.fields.get('op')} at {self.at_s:g} s"
        extra = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.do}{' ' + extra if extra else ''} at {self.at_s:g} s"


@dataclass(frozen=True)
class Expect:
    """One step of the scenario: what the device must (or must not) do. ``kind`` is one of
    EXPECT_KINDS; unused fields keep their defaults."""

    kind: str
    name: str
    line: int
    condition: str = ""
    conditions: tuple[str, ...] = ()
    event: str = ""
    priority: str = ""
    within_s: float = 0.0
    from_s: float | str = 0.0  # a time, or "crossing"
    to_s: float | None = None
    at_s: float = 0.0
    state: str = ""
    signal: str = ""
    led: str = ""
    led_hz: float | None = None
    text: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    sounder_within_s: float | None = None
    after_s: float = 0.0  # "crossing": the first crossing at or after this time


@dataclass(frozen=True)
class Scenario:
    path: str
    id: str
    title: str
    description: str
    requirements: tuple[str, ...]
    duration_s: float
    seed: int
    oximeter_format: str
    settings: dict[str, Any]
    start: dict[str, float]
    perfusion_index: float
    jitter: dict[str, float]
    ramps: tuple[Ramp, ...]
    faults: tuple[Fault, ...]
    actions: tuple[Action, ...]
    expects: tuple[Expect, ...]
    tags: tuple[str, ...] = ()
    targets: tuple[str, ...] = TARGETS
    requires: tuple[str, ...] = ()
    start_mode: str = "power_on"
    flash: str = "ok"
    text: str = ""  # the file itself (kept in the record, like OpenHTF's code_info)

    def setting(self, name: str) -> Any:
        """The value in force: the scenario's, else the firmware default."""
        return self.settings.get(name, fw_settings.SPEC[name][0])

    def conditions_raised(self) -> set[str]:
        return {e.condition for e in self.expects if e.kind in ("raised",) and e.condition}


# --- locating fields in the file (tomllib gives no positions) --------------------------------

_HDR = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_]+)\s*\]\]")
_TBL = re.compile(r"^\s*\[\s*([A-Za-z0-9_]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\"]+)\s*=")


class _Locator:
    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[str, int, str], int] = {}
        self.headers: dict[tuple[str, int], int] = {}
        counts: dict[str, int] = {}
        cur: tuple[str, int] = ("", 0)
        for no, line in enumerate(text.splitlines(), start=1):
            m = _HDR.match(line)
            if m:
                name = m.group(1)
                idx = counts.get(name, 0)
                counts[name] = idx + 1
                cur = (name, idx)
                self.headers[cur] = no
                continue
            m = _TBL.match(line)
            if m:
                cur = (m.group(1), 0)
                self.headers[cur] = no
                continue
            m = _KEY.match(line)
            if m:
                self.keys.setdefault((cur[0], cur[1], m.group(1).strip('"')), no)

    def line(self, table: str, index: int, key: str | None) -> int:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        return self.headers.get((table, index), 0)


class _Ctx:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.loc = _Locator(text)

    def err(self, table: str, index: int, key: str | None, why: str) -> ScenarioError:
        line = self.loc.line(table, index, key)
        where = (
            f"[[{table}]] #{index + 1}" if table in _ARRAYS else (f"[{table}]" if table else "")
        )
        what = ".".join(x for x in (where, key or "") if x)
        at = f"line {line}: " if line else ""
        return ScenarioError(f"{self.path}: {at}{what + ': ' if what else ''}{why}")


_ARRAYS = ("ramp", "fault", "action", "expect")
_TOP = (
    "format",
    "version",
    "id",
    "title",
    "description",
    "requirements",
    "duration_s",
    "seed",
    "oximeter_format",
    "tags",
    "targets",
    "requires",
    "device",
    "settings",
    "patient",
    "ramp",
    "fault",
    "action",
    "expect",
)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class _Table:
    """Typed reads from one TOML table, errors located at the key."""

    def __init__(self, ctx: _Ctx, name: str, index: int, data: Any) -> None:
        self.ctx, self.name, self.index = ctx, name, index
        if not isinstance(data, dict):
            raise ctx.err(name, index, None, "must be a table")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def err(self, key: str | None, why: str) -> ScenarioError:
        return self.ctx.err(self.name, self.index, key, why)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def number(
        self, key: str, default: float | None = None, lo: float = 0.0, hi: float = 1e9
    ) -> float:
        self.used.add(key)
        if key not in self.data:
            if default is None:
                raise self.err(key, "is required")
            return default
        v = self.data[key]
        if not _num(v):
            raise self.err(key, f"must be a number, not {v!r}")
        if not lo <= v <= hi:
            raise self.err(key, f"must be within {lo:g}..{hi:g}, not {v:g}")
        return float(v)

    def integer(self, key: str, default: int | None = None, lo: int = 0, hi: int = 10**9) -> int:
        self.used.add(key)
        if key not in self.data:
            if default is None:
                raise self.err(key, "is required")
            return default
        v = self.data[key]
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.err(key, f"must be a whole number, not {v!r}")
        if not lo <= v <= hi:
            raise self.err(key, f"must be within {lo}..{hi}, not {v}")
        return v

    def string(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        self.used.add(key)
        if key not in self.data:
            if default is None:
                raise self.err(key, "is required")
            return default
        v = self.data[key]
        if not isinstance(v, str):
            raise self.err(key, f"must be a string, not {v!r}")
        if choices and v not in choices:
            raise self.err(key, f"{v!r} is not one of {', '.join(choices)}")
        return v

    def condition(self, key: str) -> str:
        v = self.string(key)
        if v not in IDS:
            raise self.err(key, f"unknown condition {v!r} (conditions.py has {', '.join(IDS)})")
        return v

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.err(extra[0], "unknown field")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file (ScenarioError on anything wrong)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{name}: cannot read: {e}") from None
    return parse_scenario(text, name)


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{name}: not valid TOML: {e}") from None
    ctx = _Ctx(name, text)
    top = _Table(ctx, "", 0, data)
    fmt = top.string("format")
    if fmt != FORMAT:
        raise top.err("format", f'must be "{FORMAT}"')
    ver = top.integer("version")
    if ver != VERSION:
        raise top.err("version", f"version {ver} is not supported (this harness reads {VERSION})")
    sid = top.string("id")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", sid):
        raise top.err("id", "must be lower case letters, digits, - and _ (at most 64)")
    title = top.string("title")
    description = top.string("description", "")
    reqs = top.raw("requirements")
    if not isinstance(reqs, list) or not reqs:
        raise top.err("requirements", "must be a non-empty list of requirement ids")
    for r in reqs:
        if not isinstance(r, str) or not re.fullmatch(r"REQ-[A-Z]+-\d+", r):
            raise top.err("requirements", f"{r!r} is not a requirement id like REQ-ALM-01")
    tags = top.raw("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise top.err("tags", "must be a list of strings")
    targets = _names(top, "targets", TARGETS) or TARGETS
    requires = _names(top, "requires", REQUIRES)
    dev = _Table(ctx, "device", 0, data.get("device", {}))
    top.used.add("device")
    start_mode = dev.string("start", "power_on", STARTS)
    flash = dev.string("flash", "ok", FLASH)
    dev.done()
    if "ports" in targets and (start_mode != "power_on" or flash != "ok"):
        raise top.err(
            "targets",
            "a real device cannot be restarted or given a failing flash by"
            ' the bench: leave out "ports"',
        )
    duration = top.number("duration_s", lo=1.0, hi=24 * 3600.0)
    seed = top.integer("seed", 0)
    oxi_fmt = top.string("oximeter_format", "nonin2", OXIMETER_FORMATS)
    settings = _settings(ctx, data.get("settings", {}))
    top.used.add("settings")
    start, pi, jitter = _patient(ctx, data.get("patient", {}))
    top.used.add("patient")
    ramps = tuple(_ramp(ctx, i, d, duration) for i, d in enumerate(_array(top, "ramp")))
    _check_overlaps(ctx, ramps)
    faults = tuple(_fault(ctx, i, d, duration) for i, d in enumerate(_array(top, "fault")))
    for i, f in enumerate(faults):
        if f.kind == "core_exception" and targets != ("virtual",):
            raise ctx.err("fault", i, "kind", 'core_exception needs targets = ["virtual"]')
    actions = tuple(_action(ctx, i, d, duration) for i, d in enumerate(_array(top, "action")))
    for i, a in enumerate(actions):
        if a.do == "restart" and targets != ("virtual",):
            raise ctx.err("action", i, "do", 'a restart action needs targets = ["virtual"]')
    expects = tuple(
        _expect(ctx, i, d, duration, settings) for i, d in enumerate(_array(top, "expect"))
    )
    if not expects:
        raise top.err("expect", "a scenario needs at least one [[expect]] step")
    names = [e.name for e in expects]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise top.err("expect", f"two steps are named {dup!r} (give each a unique name)")
    top.done()
    return Scenario(
        path=name,
        id=sid,
        title=title,
        description=description,
        requirements=tuple(reqs),
        duration_s=duration,
        seed=seed,
        oximeter_format=oxi_fmt,
        settings=settings,
        start=start,
        perfusion_index=pi,
        jitter=jitter,
        ramps=ramps,
        faults=faults,
        actions=tuple(sorted(actions, key=lambda a: a.at_s)),
        expects=expects,
        tags=tuple(tags),
        targets=targets,
        requires=requires,
        start_mode=start_mode,
        flash=flash,
        text=text,
    )


def _names(top: _Table, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    v = top.raw(key)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) and x in allowed for x in v):
        raise top.err(key, f"must be a list of {', '.join(allowed)}")
    return tuple(v)


def _array(top: _Table, key: str) -> list[Any]:
    v = top.raw(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise top.err(key, f"must be an array of tables ([[{key}]])")
    return v


def _settings(ctx: _Ctx, data: Any) -> dict[str, Any]:
    t = _Table(ctx, "settings", 0, data)
    out: dict[str, Any] = {}
    for k, v in t.data.items():
        t.used.add(k)
        if k not in fw_settings.SPEC:
            raise t.err(k, "unknown setting (docs/settings.md lists them)")
        e = fw_settings.check(k, v)
        if e:
            raise t.err(k, e)
        out[k] = v
    s = fw_settings.Settings()
    e = s.set_many(out, fw_settings.ORG)
    if e:
        raise t.err(None, e)
    return out


def _patient(ctx: _Ctx, data: Any) -> tuple[dict[str, float], float, dict[str, float]]:
    t = _Table(ctx, "patient", 0, data)
    start = {
        "spo2": t.number("spo2", 98.0, 50, 100),
        "pr": t.number("pr", 72.0, 20, 250),
        "sys": t.number("sys", 120.0, 40, 280),
        "dia": t.number("dia", 80.0, 20, 200),
    }
    if start["dia"] >= start["sys"]:
        raise t.err("dia", "must be below sys")
    pi = t.number("perfusion_index", 2.5, 0.05, 20)
    jitter: dict[str, float] = {}
    j = t.raw("jitter")
    if j is not None:
        jt = _Table(ctx, "patient", 0, j)
        for k in j:
            if k not in (*CHANNELS, "pi"):
                raise t.err("jitter", f"unknown channel {k!r} (spo2, pr, sys, dia, pi)")
            jitter[k] = jt.number(k, lo=0, hi=20)
    t.done()
    return start, pi, jitter


def _ramp(ctx: _Ctx, i: int, data: Any, duration: float) -> Ramp:
    t = _Table(ctx, "ramp", i, data)
    at = t.number("at_s", lo=0, hi=duration)
    over = t.number("over_s", 0.0, 0, 24 * 3600)
    lims = {"spo2": (50, 100), "pr": (20, 250), "sys": (40, 280), "dia": (20, 200)}
    targets: dict[str, float] = {
        ch: t.number(ch, lo=lims[ch][0], hi=lims[ch][1]) for ch in CHANNELS if t.has(ch)
    }
    if not targets:
        raise t.err(None, "a ramp needs at least one of spo2, pr, sys, dia (the target)")
    t.done()
    return Ramp(at, over, targets)


def _check_overlaps(ctx: _Ctx, ramps: tuple[Ramp, ...]) -> None:
    for ch in CHANNELS:
        rs = sorted(
            ((r, i) for i, r in enumerate(ramps) if ch in r.targets), key=lambda x: x[0].at_s
        )
        for (a, _ia), (b, ib) in itertools.pairwise(rs):
            if a.at_s + a.over_s > b.at_s:
                raise ctx.err(
                    "ramp", ib, "at_s", f"{ch} ramp starts before the previous {ch} ramp ends"
                )


def _fault(ctx: _Ctx, i: int, data: Any, duration: float) -> Fault:
    t = _Table(ctx, "fault", i, data)
    kind = t.string("kind", choices=tuple(FAULTS))
    at = t.number("at_s", lo=0, hi=duration)
    for_s = t.number("for_s", lo=0.01, hi=24 * 3600) if t.has("for_s") else None
    allowed = FAULTS[kind][0]
    for k in t.data:
        if k not in ("kind", "at_s", "for_s", *allowed):
            raise t.err(
                k, f"not a field of a {kind} fault (it takes {', '.join(allowed) or 'none'})"
            )
    f = Fault(kind, at, for_s)
    kw: dict[str, Any] = {}
    if "stream" in allowed:
        kw["stream"] = t.string("stream", "oximeter", STREAMS)
    if "rate" in allowed:
        kw["rate"] = t.number("rate", lo=0.0001, hi=1.0)
    if "baud" in allowed:
        kw["baud"] = t.integer("baud")
        if kw["baud"] not in BAUDS:
            raise t.err("baud", f"must be one of {', '.join(map(str, BAUDS))}")
    if "code" in allowed:
        kw["code"] = t.integer("code", lo=1, hi=255)
    if "mmhg" in allowed:
        kw["mmhg"] = t.integer("mmhg", lo=1, hi=999)
    if "rate_hz" in allowed:
        kw["rate_hz"] = t.number("rate_hz", 1.0, 0.1, 50)
    t.done()
    return Fault(f.kind, f.at_s, f.for_s, **kw)


def _action(ctx: _Ctx, i: int, data: Any, duration: float) -> Action:
    t = _Table(ctx, "action", i, data)
    at = t.number("at_s", lo=0, hi=duration)
    do = t.string("do", choices=tuple(ACTIONS))
    req, opt = ACTIONS[do]
    for k in t.data:
        if k not in ("at_s", "do", *req, *opt):
            raise t.err(k, f"not a field of a {do} action")
    fields: dict[str, Any] = {}
    if do == "audio_off":
        fields["lease_s"] = t.integer("lease_s", 60, 10, 300)
    elif do == "set":
        name = t.string("name")
        if name not in fw_settings.SPEC:
            raise t.err("name", f"unknown setting {name!r}")
        value = t.raw("value")
        e = fw_settings.check(name, value)
        if e:
            raise t.err("value", e)
        fields = {"name": name, "value": value}
    elif do == "test_alarm":
        fields["priority"] = t.string("priority", choices=PRIORITIES)
    elif do == "session":
        op = t.string("op", choices=tuple(SESSION_OPS))
        args = t.raw("args") or {}
        if not isinstance(args, dict):
            raise t.err("args", "must be a table of the op's arguments")
        for k in args:
            if k not in SESSION_OPS[op]:
                raise t.err("args", f"{k!r} is not an argument of session op {op}")
        fields = {"op": op, "args": dict(args)}
    t.done()
    return Action(at, do, fields)


def _expect(ctx: _Ctx, i: int, data: Any, duration: float, settings: dict[str, Any]) -> Expect:
    t = _Table(ctx, "expect", i, data)
    kinds = [k for k in EXPECT_KINDS if k in t.data]
    if len(kinds) != 1:
        raise t.err(
            None, f"a step has exactly one of {', '.join(EXPECT_KINDS)} (found {len(kinds)})"
        )
    kind = kinds[0]
    line = ctx.loc.line("expect", i, None)
    name = t.string("name", "")
    kw: dict[str, Any] = {}

    def when(key: str, default: float | None) -> float:
        return t.number(key, default, 0, duration)

    if kind in ("raised", "ended", "event"):
        if kind == "event":
            kw["event"] = t.string("event", choices=EVENTS)
            kw["condition"] = t.condition("condition")
        else:
            kw["event"] = "raise" if kind == "raised" else "end"
            kw["condition"] = t.condition(kind)
        cond = kw["condition"]
        kw["within_s"] = t.number("within_s", lo=0.01, hi=duration)
        if t.has("priority"):
            kw["priority"] = t.string("priority", choices=PRIORITIES)
        fr = t.raw("from_s")
        physio = CONDITIONS[IDS.index(cond)][1] == PHYSIOLOGICAL
        if fr is None:
            if not (kw["event"] == "raise" and cond in CROSSING):
                raise t.err(
                    "from_s",
                    'is required (a time in s; "crossing" only for raising a'
                    " physiological condition)",
                )
            kw["from_s"] = "crossing"
        elif fr == "crossing":
            if not (kw["event"] == "raise" and physio and cond in CROSSING):
                raise t.err(
                    "from_s", '"crossing" applies only to raising a physiological condition'
                )
            kw["from_s"] = "crossing"
        else:
            kw["from_s"] = when("from_s", None)
        if t.has("after_s"):
            if kw["from_s"] != "crossing":
                raise t.err("after_s", 'applies only with from_s = "crossing"')
            kw["after_s"] = when("after_s", None)
        if t.has("sounder_within_s"):
            kw["sounder_within_s"] = t.number("sounder_within_s", lo=0.01, hi=duration)
        name = name or f"{kind} {cond}" + (f" ({kw['event']})" if kind == "event" else "")
    elif kind == "not_raised":
        v = t.raw("not_raised")
        conds = [v] if isinstance(v, str) else v
        if not isinstance(conds, list) or not conds:
            raise t.err("not_raised", "must be a condition id or a list of them")
        for c in conds:
            if c not in IDS:
                raise t.err("not_raised", f"unknown condition {c!r}")
        kw["conditions"] = tuple(conds)
        kw["from_s"] = when("from_s", 0.0)
        kw["to_s"] = when("to_s", duration)
        name = name or "not raised " + ", ".join(conds)
    elif kind == "state":
        kw["state"] = t.string("state", choices=STATES)
        kw["condition"] = t.condition("condition")
        kw["at_s"] = when("at_s", None)
        name = name or f"{kw['condition']} {kw['state']} at {kw['at_s']:g} s"
    elif kind == "signal":
        kw["signal"] = t.string("signal", choices=SIGNALS)
        kw["from_s"] = when("from_s", None)
        kw["to_s"] = when("to_s", None)
        if kw["to_s"] <= kw["from_s"]:
            raise t.err("to_s", "must be after from_s")
        if t.has("led"):
            kw["led"] = t.string("led", choices=tuple(COLOR_NAMES))
        if t.has("led_hz"):
            kw["led_hz"] = t.number("led_hz", lo=0, hi=10)
        name = name or f"signal {kw['signal']} {kw['from_s']:g}-{kw['to_s']:g} s"
    elif kind == "display":
        kw["text"] = t.string("display")
        kw["from_s"] = when("from_s", None)
        kw["to_s"] = when("to_s", None)
        if kw["to_s"] < kw["from_s"]:
            raise t.err("to_s", "must not be before from_s")
        name = name or f"display {kw['text']!r}"
    elif kind == "reply":
        kw["text"] = t.string("reply", choices=REPLIES)
        kw["at_s"] = when("at_s", None)
        kw["fields"] = {}
        if t.has("error"):
            kw["fields"]["error"] = t.string("error")
        if t.has("criteria_failed"):
            v = t.raw("criteria_failed")
            if not isinstance(v, list) or not all(c in CRITERIA for c in v):
                raise t.err("criteria_failed", f"must be a list of {', '.join(CRITERIA)}")
            kw["fields"]["criteria_failed"] = sorted(v)
        name = name or f"reply {kw['text']} to the command at {kw['at_s']:g} s"
    elif kind == "session":
        st = t.raw("session")
        if not isinstance(st, dict) or not st:
            raise t.err("session", "must be a table of session state fields and values")
        for k in st:
            if k not in SESSION_FIELDS:
                raise t.err("session", f"{k!r} is not one of {', '.join(SESSION_FIELDS)}")
        kw["fields"] = dict(st)
        kw["at_s"] = when("at_s", None)
        name = name or "session " + ", ".join(f"{k}={v}" for k, v in st.items())
    elif kind == "session_event":
        kw["event"] = t.string("session_event", choices=SESSION_EVENTS)
        kw["from_s"] = when("from_s", None)
        kw["within_s"] = t.number("within_s", lo=0.01, hi=duration)
        name = name or f"session event {kw['event']}"
    elif kind == "nibp_every_s":
        every = t.number("nibp_every_s", lo=10, hi=7200)
        kw["fields"] = {"every_s": every, "tolerance_s": t.number("tolerance_s", 15.0, 1, 600)}
        kw["from_s"] = when("from_s", None)
        kw["to_s"] = when("to_s", None)
        if kw["to_s"] - kw["from_s"] < every:
            raise t.err("to_s", "the window must hold at least one whole interval")
        name = name or f"NIBP every {every:g} s {kw['from_s']:g}-{kw['to_s']:g} s"
    else:  # heartbeat
        hb = t.raw("heartbeat")
        if not isinstance(hb, dict) or not hb:
            raise t.err("heartbeat", "must be a table of heartbeat fields and values")
        for k in hb:
            if k not in HEARTBEAT_FIELDS:
                raise t.err("heartbeat", f"{k!r} is not one of {', '.join(HEARTBEAT_FIELDS)}")
        kw["fields"] = dict(hb)
        kw["at_s"] = when("at_s", None)
        name = name or "heartbeat " + ", ".join(f"{k}={v}" for k, v in hb.items())
    t.done()
    return Expect(kind=kind, name=name, line=line, **kw)
