"""Power cuts during an infusion session (docs/reliability.md, "Power cut at random instants
during an infusion"): the real Device on the scripted bench (tests/mp/scenario.py: Nonin
packets through the decoder, signed host commands), taken through a session into the infusion
(baseline readings, baseline accepted, start, doses, checks, a settings change, a
desaturation), with the power cut

- at every store operation that writes the session record, torn at the start, in the middle
  and one byte short (an atomic store: the temp file is torn, the rename never happens), and
  also on a store without an atomic rename (the record itself torn: docs/session.md's
  fallback);
- at seeded random store operations of the run, torn at a random byte;
- at seeded random instants of virtual time (whatever write-behind was pending is lost).

After each cut the device restarts on the same store and must have: every setting at its old
or new value (never defaulted); the alarm and event logs readable, with every record written
before the cut there unchanged; the session in the phase and with the baseline of the last
session record on flash, which is at most the last op behind the live session (a torn record:
idle, CORE_FAULT, a `restore_failed` event, no crash); DEVICE_RESTARTED; and alarms judged again
(a desaturation after the restart raises SPO2_DESAT).

CPython: a run is replayed once per cut point (about 200 runs); the same store-cutting on the
MicroPython heap is tests/mp/test_power_cut.py (settings and logs).
"""

from __future__ import annotations

import json
import random
from typing import Any

from authkit import line
from bedside.alarmlog import EVENT_PREFIX, PREFIX, AlarmLog, decode
from bedside.persist import SESSION_FILE
from bedside.session import PHASES
from fakes import MemStore
from scenario import Bench

BP1 = (120, 80, 93, 72)
BP2 = (124, 82, 96, 74)
IDLE, BASELINE, INFUSION = 0, 2, 3


class PowerCut(BaseException):
    """The power went: nothing after this runs (no `except Exception` catches it)."""


class CutStore(MemStore):
    """A flash store whose `cut`-th write or append is torn after `keep` bytes (a fraction of
    the data, 0 <= keep < 1) and the power goes. atomic=True: a torn write leaves a torn temp
    file and the old file (temp, verify, rename as on the Pico); False: the file itself is torn.
    Keeps what was completely written before the cut: the appended log lines per file and the
    last session record."""

    def __init__(self, cut: int | None = None, keep: float = 0.5, atomic: bool = True) -> None:
        MemStore.__init__(self)
        self.cut = cut
        self.keep = keep
        self.atomic = atomic
        self.n = 0
        self.lines: dict[str, list[bytes]] = {}
        self.session: bytes | None = None
        self.session_ops: list[int] = []  # op numbers of the session record writes

    def _tick(self) -> bool:
        self.n += 1
        return self.cut is not None and self.n == self.cut

    def _part(self, data: bytes) -> bytes:
        return bytes(data)[: int(len(data) * self.keep)]

    def write(self, name: str, data: Any) -> None:
        if name == SESSION_FILE and self.cut is not None:
            self.session_ops.append(self.n + 1)
        if self._tick():
            if self.atomic:
                self._chunks[name + ".tmp"] = [self._part(data)]
            else:
                self._chunks[name] = [self._part(data)]
                if name == SESSION_FILE:
                    self.session = self._part(data)
            raise PowerCut()
        MemStore.write(self, name, data)
        if name == SESSION_FILE:
            self.session = bytes(data)
        if name.startswith((PREFIX, EVENT_PREFIX)) and not data:
            self.lines[name] = []  # a segment emptied for reuse (the ring)

    def append(self, name: str, data: Any) -> None:
        if self._tick():
            MemStore.append(self, name, self._part(data))
            raise PowerCut()
        MemStore.append(self, name, data)
        self.lines.setdefault(name, []).extend(x for x in bytes(data).split(b"\n") if x)


class Rig(Bench):
    """The bench with a power cut at virtual time cut_t (ms since its start), the session
    phase after each op, and session ops / NIBP readings as helpers."""

    def __init__(self, store: CutStore, cut_t: int | None = None, **kw: Any) -> None:
        Bench.__init__(self, store=store, **kw)
        self.cut_t = cut_t
        self.phases = [self.phase()]
        self.ids = 0

    def phase(self) -> int:
        ctl = self.dev.sessctl
        return IDLE if ctl is None else int(ctl.sess.phase)

    def run(
        self, ms: int, hr: Any = None, spo2: Any = None, status: int = 0x82, tick: int = 10
    ) -> None:
        if self.cut_t is not None and self.t + ms >= self.cut_t:
            if self.cut_t > self.t:
                Bench.run(self, self.cut_t - self.t, hr, spo2, status, tick)
            raise PowerCut()
        Bench.run(self, ms, hr, spo2, status, tick)

    def cmd(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        obj = dict(obj, id="p%d" % self.ids)
        self.host.push(line(self.dev, obj))
        for _ in range(300):
            self.run(10, 72, self.spo2)
            for m in self.messages[-8:]:
                if m["type"] == "reply" and m["id"] == obj["id"]:
                    return m
        raise AssertionError("no reply to %r" % obj)

    spo2 = 97

    def op(self, name: str, **args: Any) -> dict[str, Any]:
        a = self.cmd(dict({"cmd": "session", "op": name, "by": "nurse"}, **args))
        assert a["ok"], a
        p = self.phase()
        if p != self.phases[-1]:
            self.phases.append(p)
        return a

    def sec(self, n: int, spo2: int = 97) -> None:
        self.spo2 = spo2
        self.run(n * 1000, 72, spo2, tick=100)
        self.spo2 = 97

    def reading(self, bp: tuple[int, int, int, int]) -> None:
        """A valid NIBP reading handed over as the driver does (tests/mp/sessdev.py)."""
        n = self.dev.nibp
        n.sys, n.dia, n.map, n.pr = bp
        n.valid = True
        self.dev.nibp_result(self.clock.now)
        self.run(100, 72, 97)


def scenario(r: Rig) -> None:
    """Into the infusion and on: about 13 virtual minutes."""
    r.sec(3)
    r.op("open", patient="P-0001", course_day=3, course_total=10)
    r.op("screened", override=False)
    r.reading(BP1)
    r.sec(185)
    r.reading(BP2)
    r.op("baseline", action="accept")
    r.op("start")
    r.op("dose", rate=10, units="mg/h", reason="start")
    r.sec(140)
    a = r.cmd({"cmd": "set", "name": "spo2_low", "value": 91})
    assert a["ok"], a
    r.reading(BP2)
    r.sec(130)
    r.op("check", score=4)
    r.sec(25, spo2=80)  # SPO2_LOW and SPO2_DESAT: alarm records
    r.sec(70)  # the session record's once-a-minute save
    r.op("dose", rate=15, units="mg/h", reason="pain")
    r.reading(BP2)
    r.sec(60)
    r.press("ack")
    r.op("check", score=5)
    r.sec(30)


def _record(raw: bytes | None) -> Any:
    """The session record's JSON body (phase: [1][1], baseline: [4]), None if none or torn."""
    if not raw:
        return None
    try:
        return json.loads(raw[9:])
    except ValueError:
        return None


def _logs_intact(store: CutStore) -> int:
    """Every log line completely written before the cut is read back unchanged; the count."""
    n = 0
    for prefix in (PREFIX, EVENT_PREFIX):
        log = AlarmLog(store, prefix)
        log.open()
        got = {rec["n"]: rec for rec in log.read(0, 100000)}
        for name, lines in store.lines.items():
            if not name.startswith(prefix):
                continue
            for raw in lines:
                rec = decode(raw)
                assert rec is not None and got.get(rec["n"]) == rec, (name, raw)
                n += 1
    return n


def _cut_and_restart(cut: int | None = None, keep: float = 0.5, atomic: bool = True,
                     cut_t: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One run cut at store operation `cut` (torn at `keep`) or at virtual time cut_t, the
    restart on the same store and the checks; what was found."""
    store = CutStore(cut, keep, atomic)
    r = Rig(store, cut_t)
    try:
        scenario(r)
        raise AssertionError("no cut at op %s / t %s" % (cut, cut_t))
    except PowerCut:
        pass
    live = r.phase()
    # the phase before the latest change (the cut may come before op() noted the new one)
    before = r.phases[-1] if r.phases[-1] != live else r.phases[max(0, len(r.phases) - 2)]
    settings_before = (r.dev.settings["spo2_low"],)
    store.cut = None
    torn_session = not atomic and cut in store.session_ops
    rec = _record(store.session)
    r2 = Rig(store, reset_cause="unclean")
    r2.sec(3)
    # settings: old or new, never defaulted
    s = r2.dev.settings
    assert not s.defaulted, s.problems
    assert s["spo2_low"] in (90, 91), s["spo2_low"]
    assert s["spo2_low"] == 90 or settings_before[0] == 91  # never newer than the live one
    # logs: readable, every record before the cut unchanged
    n_log = _logs_intact(store)
    # the session
    st = r2.cmd({"cmd": "get_session"})["session"]
    faults = [m for m in r2.messages if m["type"] == "fault"]
    events = [m["event"] for m in r2.messages if m["type"] == "session"]
    if torn_session:
        assert rec is None  # a half record never passes for a whole one
    if rec is None and store.session is not None:  # a torn record: the documented fallback
        assert st["phase"] == "idle", st
        assert "restore_failed" in events, events
        assert any(f["where"] == "session restore" for f in faults), faults
        assert r2.alarms("CORE_FAULT")
        outcome = "torn"
    elif rec is None:
        assert st["phase"] == "idle", st
        assert not faults, faults
        outcome = "none"
    else:
        phase = rec[1][1]
        assert st["phase"] == PHASES[phase], (st, rec)
        assert phase in (live, before), (PHASES[phase], PHASES[live], PHASES[before])
        assert (st["baseline"] is None) == (rec[4] is None), (st, rec)
        if rec[4] is not None:
            assert st["baseline"]["sys"] == rec[4][0] == 122, (st, rec)
        if phase != IDLE:
            assert st["restored"] and "restored" in events, events
        assert not faults, faults
        outcome = PHASES[phase]
    # alarms judged again
    assert r2.alarms("DEVICE_RESTARTED")
    r2.sec(25, spo2=80)
    assert any(a["event"] == "raise" for a in r2.alarms("SPO2_DESAT")), r2.alarms()
    if outcome in ("infusion",):
        r2.reading(BP2)
        assert r2.cmd({"cmd": "get_session"})["session"]["phase"] == "infusion"
    return {"outcome": outcome, "logs": n_log, "live": PHASES[live]}


def _total_ops() -> tuple[int, list[int], int]:
    probe = CutStore(None)
    probe.cut = 10**9  # count session writes too
    r = Rig(probe)
    scenario(r)
    return probe.n, list(probe.session_ops), r.t


def test_power_cut_at_every_session_write_of_an_infusion() -> None:
    """REQ-REL-20: a power cut at each store operation that writes the session record during a
    session taken into the infusion (torn at its first byte, in the middle and one byte short,
    on an atomic store; and torn in place on a store without an atomic rename), then a restart
    on the same store: settings intact, logs intact up to the cut, the session back in the
    phase and with the baseline of the last complete record (at most the last op behind), a
    torn record idle with CORE_FAULT and `restore_failed`, DEVICE_RESTARTED, and a
    desaturation after the restart raises SPO2_DESAT."""
    _, ops, _ = _total_ops()
    assert len(ops) >= 8, ops
    seen: dict[str, int] = {}
    for cut in ops:
        for keep in (0.0, 0.5, 0.99):
            got = _cut_and_restart(cut, keep)
            seen[got["outcome"]] = seen.get(got["outcome"], 0) + 1
        got = _cut_and_restart(cut, 0.5, atomic=False)
        seen["inplace:" + got["outcome"]] = seen.get("inplace:" + got["outcome"], 0) + 1
    assert seen.get("infusion", 0) >= 3 and seen.get("baseline", 0) >= 1, seen
    assert seen.get("inplace:torn", 0) == len(ops), seen


def test_power_cut_at_random_instants_of_an_infusion() -> None:
    """REQ-REL-21: power cuts at 60 seeded random store operations (torn at a random byte) and
    60 seeded random instants of virtual time of the same infusion session, each followed by
    a restart on the same store: the same checks as REQ-REL-20 (settings, logs up to the cut,
    session phase and baseline, DEVICE_RESTARTED, SPO2_DESAT after the restart)."""
    total, _, span = _total_ops()
    rnd = random.Random(14)
    seen: dict[str, int] = {}
    for _ in range(60):
        got = _cut_and_restart(rnd.randint(2, total), rnd.random())
        seen[got["outcome"]] = seen.get(got["outcome"], 0) + 1
    for _ in range(60):
        got = _cut_and_restart(cut_t=rnd.randint(1, span - 1))
        seen[got["outcome"]] = seen.get(got["outcome"], 0) + 1
    assert seen.get("infusion", 0) >= 40 and seen.get("baseline", 0) >= 10, seen
