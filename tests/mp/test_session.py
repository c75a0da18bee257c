# test_session.py: the infusion-session phase machine on its own (bedside.session): every
# transition and refusal, the baseline rule, NIBP interval per phase, checks, the discharge
# criteria one by one, the flash record. CPython and MicroPython; the clock starts just below
# the 2**30 ms tick wrap.
from bedside.readings import NONE
from bedside.session import EV_OVERDUE, EV_READING, EV_REMINDER, PHASES, Session
from bedside.sessioncrit import CRITERIA
from bedside.sessionops import OPS
from bedside.settings import Settings
from bedside.ticks import MASK

T0 = (1 << 30) - 30000
_OPEN = {"patient": "P-1", "course_day": 3, "course_total": 10}


class Run:
    """A Session, its settings and a clock in ms that crosses the tick wrap."""

    def __init__(self):
        self.s = Settings()
        self.t = T0
        self.x = Session(self.s, self.t)

    def sec(self, n, spo2=97, pr=72, step=1):
        ev = 0
        for _ in range(n // step):
            self.t = (self.t + step * 1000) & MASK
            ev |= self.x.step(self.t, spo2, pr)
        return ev

    def op(self, name, **args):
        return self.x.apply(name, args)[0]

    def ok(self, name, **args):
        err = self.op(name, **args)
        assert err is None, (name, err)


def _to(r, phase):
    """Drive r through the ops to `phase`."""
    for p in PHASES[r.x.phase + 1 :]:
        if p == "screening":
            r.ok("open", **_OPEN)
        elif p == "baseline":
            r.ok("screened")
        elif p == "infusion":
            r.x.note_nibp(120, 80, 93, 70)
            r.sec(200)
            r.x.note_nibp(124, 82, 96, 74)
            r.ok("baseline", action="accept")
            r.ok("start")
        elif p == "recovery":
            r.ok("stop")
        elif p == "discharge_ready":
            r.sec(3600, step=60)
            r.x.note_nibp(125, 80, 95, 75)
            r.ok("check", score=5)
            r.x.apply("discharge", {"aldrete": 10, "padss": 10}, None)
        elif p == "closed":
            r.ok("close", escort="Anna", relationship="sister", advice=True)
        if r.x.name() == phase:
            return r
    raise AssertionError(phase)


def test_each_phase_transition():
    """REQ-SES-01: open, screened, baseline accept, start, stop, discharge, close lead through
    idle, screening, baseline, infusion, recovery, discharge_ready and closed; closed behaves
    like idle for open (a new session number)."""
    r = Run()
    assert r.x.name() == "idle" and r.x.sid == 0
    for phase in PHASES[1:]:
        _to(r, phase)
        assert r.x.name() == phase, phase
    first = r.x.sid
    r.ok("open", patient="P-2", course_day=1, course_total=1)
    assert r.x.name() == "screening" and r.x.sid == first + 1 and r.x.patient == "P-2"
    assert r.x.base is None and r.x.rd == []  # nothing of the previous patient
    r.ok("cancel", reason="BP too high")
    assert r.x.name() == "closed" and r.x.reason == "BP too high"
    r = _to(Run(), "baseline")
    r.ok("cancel", reason="patient declined")
    assert r.x.name() == "closed"


def test_every_refused_op_names_why_and_changes_nothing():
    """REQ-SES-02: every op outside its phases is refused with a readable reason (the phases
    it is allowed in), and the refusal changes nothing (the record stays byte for byte)."""
    args = {
        "open": _OPEN,
        "screened": {},
        "cancel": {"reason": "x"},
        "baseline": {"action": "accept"},
        "start": {},
        "dose": {"rate": 10, "units": "mg/h", "reason": "start"},
        "o2": {"on": False},
        "check": {},
        "stop": {},
        "discharge": {"aldrete": 10, "padss": 10},
        "close": {"escort": "A", "relationship": "B", "advice": True},
    }
    refused = 0
    for phase in PHASES:
        r = Run() if phase == "idle" else _to(Run(), phase)
        for op in OPS:
            if OPS[op][0] & (1 << r.x.phase):
                continue
            before = r.x.encode()
            err = r.op(op, **args[op])
            assert err and "not allowed in phase %s" % phase in err, (phase, op, err)
            assert r.x.encode() == before, (phase, op)
            refused += 1
    assert refused > 40


def test_bad_arguments_refused():
    """REQ-SES-03: missing, unknown-for-the-op, out-of-range and wrong-type arguments are
    refused with a reason naming the argument; nothing changes."""
    r = Run()
    cases = (
        ("open", {"patient": "P", "course_day": 3}, "needs course_total"),
        ("open", dict(_OPEN, score=3), "takes no score"),
        ("open", dict(_OPEN, course_day=0), "course_day must be a whole number within 1..99"),
        ("open", dict(_OPEN, course_total=2), "at least course_day"),
        ("open", dict(_OPEN, patient=""), "patient must be a non-empty string"),
        ("open", dict(_OPEN, patient="x" * 33), "at most 32"),
        ("open", dict(_OPEN, course_day=True), "course_day must be a whole number"),
        ("fly", {}, "unknown op fly"),
    )
    for op, a, text in cases:
        err = r.x.apply(op, a)[0]
        assert err and text in err, (op, a, err)
    assert r.x.name() == "idle" and r.x.sid == 0
    r = _to(Run(), "infusion")
    for op, a, text in (
        ("dose", {"rate": 5, "units": "mg/h", "reason": "fun"}, "reason must be one of"),
        ("dose", {"rate": -1, "units": "mg/h", "reason": "pain"}, "rate must be"),
        ("o2", {"on": True}, "flow"),
        ("o2", {"on": False, "flow": 2}, "flow"),
        ("o2", {"on": True, "flow": 16}, "flow must be a whole number within 1..15"),
        ("check", {"score": 6}, "score must be a whole number within 0..5"),
        ("check", {"scale": ""}, "scale must be"),
    ):
        before = r.x.encode()
        err = r.x.apply(op, a)[0]
        assert err and text in err, (op, a, err)
        assert r.x.encode() == before
    r = _to(Run(), "discharge_ready")
    err = r.op("close", escort="A", relationship="B", advice=False)
    assert "no-driving advice" in err and r.x.name() == "discharge_ready"


def test_baseline_needs_two_readings_apart_and_a_stable_period():
    """REQ-SES-04: accept is refused until 2 valid NIBP readings at least baseline_gap_min
    apart and a stable SpO2/pulse period of baseline_stable_s were seen in the baseline phase;
    the accepted baseline is the mean of those two readings (pulse and SpO2: the oximeter's
    mean over the stable period)."""
    r = _to(Run(), "baseline")
    assert "2 NIBP readings 3 min apart (have 0)" in r.op("baseline", action="accept")
    assert r.x.note_nibp(130, 84, 99, 80) == EV_READING
    r.sec(120)
    r.x.note_nibp(126, 80, 95, 76)
    assert "(have 2)" in r.op("baseline", action="accept")  # only 2 min apart
    r.sec(60)
    r.x.note_nibp(118, 78, 91, 70)  # 3 min after the first
    assert r.x.baseline_error() is None
    r.ok("baseline", action="accept")
    assert r.x.base == ((130 + 118 + 1) // 2, 81, 95, 72, 97), r.x.base
    assert "start" and r.x.name() == "baseline"
    # unstable: the pulse swings by more than 10 /min every few seconds
    r = _to(Run(), "baseline")
    r.x.note_nibp(130, 84, 99, 80)
    for k in range(40):
        r.sec(5, pr=70 if k % 2 else 90)
    r.x.note_nibp(130, 84, 99, 80)
    err = r.op("baseline", action="accept")
    assert "stable SpO2 and pulse for 60 s" in err, err
    r.sec(61, pr=75)
    r.ok("baseline", action="accept")
    assert "start needs an accepted baseline" in _to(Run(), "baseline").op("start")


def test_nibp_interval_per_phase():
    """REQ-SES-05: the NIBP interval is nibp_first_min (5) in the first hour of the infusion
    and for 15 min after each dose increase, nibp_infusion_min (15) otherwise in infusion,
    nibp_recovery_min (15) in recovery, nibp_interval_min outside infusion and recovery."""
    r = _to(Run(), "baseline")
    assert r.x.nibp_interval_min() == r.s["nibp_interval_min"]
    r = _to(Run(), "infusion")
    r.ok("dose", rate=10, units="mg/h", reason="start")
    assert r.x.nibp_interval_min() == 5
    r.sec(3599, step=1)
    assert r.x.nibp_interval_min() == 5
    r.sec(2)
    assert r.x.nibp_interval_min() == 15
    r.ok("dose", rate=8, units="mg/h", reason="side_effect")  # a decrease: no change
    assert r.x.nibp_interval_min() == 15
    r.ok("dose", rate=20, units="mg/h", reason="pain")
    assert r.x.nibp_interval_min() == 5
    r.sec(899)
    assert r.x.nibp_interval_min() == 5
    r.sec(2)
    assert r.x.nibp_interval_min() == 15
    r.s.set("nibp_recovery_min", 10, 1)
    r.ok("stop")
    assert r.x.nibp_interval_min() == 10
    assert r.x.state()["nibp_interval_s"] == 600


def test_reminder_overdue_and_check():
    """REQ-SES-06: in infusion a check falls due every check_interval_min (a reminder event),
    is overdue check_grace_min later (CHECK_OVERDUE), and a check restarts the interval."""
    r = _to(Run(), "infusion")
    assert r.sec(899) & (EV_REMINDER | EV_OVERDUE) == 0 and r.x.check_due_s() == 1
    assert r.sec(1) & EV_REMINDER and not r.x.overdue
    assert r.sec(299) & (EV_REMINDER | EV_OVERDUE) == 0
    assert r.sec(1) & EV_OVERDUE and r.x.overdue and r.x.check_due_s() == -300
    r.ok("check")
    assert not r.x.overdue and r.x.check_due_s() == 900
    assert r.x.state()["last_check"] == {"score": None, "ago_s": 0}
    r.sec(30)
    assert r.x.state()["last_check"]["ago_s"] == 30
    r.ok("stop")  # the interval goes on in recovery
    assert r.sec(870) & EV_REMINDER
    r = _to(Run(), "discharge_ready")
    assert r.x.check_due_s() is None and r.sec(3600, step=60) & EV_REMINDER == 0


def test_deep_sedation_score():
    """REQ-SES-07: a score at or below sedation_score_max sets SEDATION_DEEP; a later check
    with a score above it ends it; a check without a score does not."""
    r = _to(Run(), "infusion")
    r.ok("check", score=3)
    assert not r.x.deep
    r.ok("check", score=2, scale="MOAA/S-A")
    assert r.x.deep and r.x.scale == "MOAA/S-A"
    r.ok("check")
    assert r.x.deep
    r.ok("check", score=4)
    assert not r.x.deep
    r.s.set("sedation_score_max", 4, 1)
    r.ok("check", score=4)
    assert r.x.deep


def _ready_run():
    r = _to(Run(), "recovery")
    r.sec(3600, step=60)
    r.x.note_nibp(125, 80, 95, 75)
    r.ok("check", score=5)
    return r


def _crit(r, aldrete=10, padss=10, alarm=None):
    err, crit = r.x.apply("discharge", {"aldrete": aldrete, "padss": padss}, alarm)
    names = [c["name"] for c in crit]
    assert names == list(CRITERIA), names  # every criterion, in the documented order
    return err, {c["name"]: c for c in crit}


def test_discharge_criteria_each_failing_alone():
    """REQ-SES-08: discharge is refused with the criteria list when any one criterion fails
    alone: recovery time, BP and pulse outside +/- discharge_band_pct of baseline, SpO2 not
    above discharge_spo2 or O2 on, an active alarm, last score not 5, Aldrete or PADSS low."""
    r = _ready_run()
    base = r.x.base
    assert base[0] == 122 and base[3] == 72  # (120+124)/2; the oximeter's pulse
    cases = []

    def case(name, prep, **kw):
        cases.append((name, prep, kw))

    case("recovery_time", lambda r: setattr(r.x, "recovery_s", 3599))
    case("bp", lambda r: r.x.note_nibp(147, 90, 100, 75))  # 122 + 20 % = 146.4
    case("bp", lambda r: setattr(r.x, "rec_sys", NONE))  # no BP since the stop
    case("pr", lambda r: r.sec(1, pr=57))  # 72 - 20 % = 57.6
    case("spo2", lambda r: r.sec(1, spo2=92))  # must be above 92
    case("spo2", lambda r: r.ok("o2", on=True, flow=2))  # on O2: not room air
    case("no_alarm", lambda r: None, alarm="PR_HIGH")
    case("alert", lambda r: r.ok("check", score=4))
    case("aldrete", lambda r: None, aldrete=8)
    case("padss", lambda r: None, padss=8)
    for name, prep, kw in cases:
        r = _ready_run()
        r.sec(1)
        prep(r)
        before = r.x.encode()
        err, crit = _crit(r, **kw)
        assert err == "discharge criteria not met: %s" % name, (name, err)
        assert [c for c in crit if not crit[c]["ok"]] == [name]
        assert r.x.encode() == before and r.x.name() == "recovery"
    r = _ready_run()
    r.sec(1)
    err, crit = _crit(r)
    assert err is None and r.x.name() == "discharge_ready"
    assert crit["bp"]["value"] == 125 and crit["bp"]["need"] == "98..146"
    assert crit["recovery_time"]["need"] == ">= 60 min" and crit["aldrete"]["value"] == 10


def test_record_round_trip_in_every_phase():
    """REQ-SES-09: the flash record restores the phase, baseline, timers (elapsed values),
    dose, O2, last check and session number in every phase; the outage is not counted and a
    check is due at once in infusion and recovery."""
    for phase in PHASES:
        r = Run() if phase == "idle" else _to(Run(), phase)
        if phase == "infusion":
            r.ok("dose", rate=15, units="mg/h", reason="start")
            r.ok("o2", on=True, flow=3)
            r.sec(100)
            r.ok("check", score=4)
            r.sec(60)
        raw = r.x.encode()
        y = Session(r.s, 12345)
        y.restore(raw, 12345)
        assert y.restored and y.name() == phase and y.sid == r.x.sid, phase
        for k in ("base", "rd", "phase_s", "infusion_s", "recovery_s", "rate", "units", "o2",
                  "flow", "check_ago", "score", "patient", "course_day", "deep"):  # fmt: skip
            assert getattr(y, k) == getattr(r.x, k), (phase, k)
        if phase in ("infusion", "recovery"):
            assert y.check_due_s() == 0, phase  # due now: the outage may have been long
        st = y.state()
        assert st["restored"] is True and st["phase"] == phase
    assert y.state()["o2"] == {"on": False, "flow": None}


def test_corrupt_record_falls_back_to_idle():
    """REQ-SES-10: a corrupt, truncated, foreign or wrongly typed record raises a readable
    ValueError and leaves the session idle; never another exception."""
    r = _to(Run(), "infusion")
    good = r.x.encode()
    flipped = bytearray(good)
    flipped[20] ^= 1
    bads = (
        bytes(flipped),
        good[:40],
        b"",
        b"not a record at all",
        b"00000000 []\n",
        good.replace(b"[1, [", b"[2, ["),
    )
    from bedside.crc import crc32

    def signed(body):
        return ("%08x " % (crc32(body) & 0xFFFFFFFF)).encode() + body + b"\n"

    bads += (
        signed(b"[1, [1], [], [], null, []]"),
        signed(
            b"[1, [1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [false, false,"
            b" false], [null, null, null, null, null, null], null, []]"
        ),
        signed(b'{"v": 1}'),
        signed(b"[1, " + b"[" * 60 + b"]" * 60 + b"]"),
    )
    for raw in bads:
        y = Session(r.s, 0)
        try:
            y.restore(raw, 0)
        except ValueError as e:
            assert str(e), raw
        else:
            raise AssertionError(raw)
        assert y.name() == "idle" and y.base is None and not y.restored


def test_state_object_fields():
    """REQ-SES-11: the state object carries exactly the fields of docs/protocol.md."""
    r = _to(Run(), "infusion")
    st = r.x.state()
    assert sorted(st) == sorted((
        "id", "patient", "course_day", "course_total", "phase", "phase_s", "infusion_s",
        "recovery_s", "baseline", "baseline_readings", "baseline_ready", "dose", "o2",
        "last_check", "check_due_s", "nibp_interval_s", "restored",
    ))  # fmt: skip
    assert sorted(st["baseline"]) == ["dia", "map", "pr", "spo2", "sys"]
    assert st["recovery_s"] is None and st["infusion_s"] == 0 and st["dose"] is None


def test_timers_stay_small_over_years():
    """REQ-SES-12: the timers stop at a cap well below 2**30 (small ints on the Pico) however
    long a phase lasts, and step() keeps counting across the tick wrap."""
    r = _to(Run(), "infusion")
    x = r.x
    for _ in range(40):  # 40 x 4 days in steps of 2**28 ms, across many tick wraps
        r.t = (r.t + (1 << 28)) & MASK
        x.step(r.t, 97, 72)
    assert 0 < x.infusion_s <= 100000000 and x.phase_s < (1 << 30)
    assert x.infusion_s >= 40 * ((1 << 28) // 1000) or x.infusion_s == 100000000


def test_session_settings_are_organisation_settings_and_migrate():
    """REQ-SES-29: the session settings exist with their defaults and ranges, only the
    responsible organisation may change them, and a schema-2 settings file (before the
    session) loads with their defaults and no problem reported."""
    from bedside.settings import OPERATOR, ORG, SCHEMA, SPEC, defaults

    names = (
        "baseline_gap_min", "baseline_stable_s", "nibp_first_min", "nibp_infusion_min",
        "nibp_recovery_min", "nibp_min_gap_s", "check_interval_min", "check_grace_min",
        "check_escalate_s", "sedation_score_max", "sedation_priority", "recovery_min",
        "discharge_band_pct", "discharge_spo2", "aldrete_min", "padss_min",
    )  # fmt: skip
    want = {"nibp_first_min": 5, "nibp_infusion_min": 15, "nibp_recovery_min": 15,
            "check_interval_min": 15, "sedation_score_max": 2, "sedation_priority": "medium",
            "recovery_min": 60, "discharge_band_pct": 20, "discharge_spo2": 92,
            "aldrete_min": 9, "padss_min": 9, "baseline_gap_min": 3}  # fmt: skip
    for n in names:
        assert SPEC[n][4] == ORG, n
        if n in want:
            assert SPEC[n][0] == want[n], n
    s = Settings()
    assert "organisation" in s.set("check_interval_min", 10, OPERATOR)
    assert s.set("check_interval_min", 4, ORG) is not None  # below its range
    assert s.set("check_interval_min", 10, ORG) is None
    old = defaults()
    for n in names:
        del old[n]
    s = Settings()
    assert SCHEMA == 3 and s.load(old, 2) is True and not s.defaulted
    assert s["check_grace_min"] == 5 and s["sedation_priority"] == "medium"


def test_command_table_row_matches_the_ops():
    """REQ-SES-30: the `session` command row lists exactly the arguments the ops take (plus
    op and by, required), each with the kind the op checks."""
    from bedside.commands import A_BOOL, A_INT, A_STR, TABLE

    args, _handler = TABLE["session"]
    names = {a[0]: a for a in args}
    taken = set()
    for spec in OPS.values():
        for a in spec[2]:
            taken.add(a)
    assert set(names) == taken | {"op", "by"}
    assert names["op"][2] and names["by"][2]
    assert [a for a in args if a[2] and a[0] not in ("op", "by")] == []
    for a in ("course_day", "rate", "flow", "score", "aldrete", "padss"):
        assert names[a][1] == A_INT, a
    for a in ("override", "on", "advice"):
        assert names[a][1] == A_BOOL, a
    for a in ("patient", "reason", "units", "scale", "escort", "relationship", "action"):
        assert names[a][1] == A_STR, a
    assert TABLE["get_session"][0] == ()


def test_step_allocates_nothing():
    """REQ-SES-31: Session.step() allocates no heap per tick in steady state (MicroPython),
    also when a whole second passes and the timers move on."""
    from mputil import alloc_per_call, skip

    r = _to(Run(), "infusion")
    x = r.x
    t = [r.t]

    def tick():
        t[0] = (t[0] + 250) & MASK
        x.step(t[0], 97, 72)

    per = alloc_per_call(tick, 400)
    if per is None:
        skip("allocation is measured on MicroPython")
    assert per == 0, per
