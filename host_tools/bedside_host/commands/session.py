"""``bedside session open|screen|baseline|start|dose|o2|check|stop|discharge|close|cancel|show``:
one step of an infusion session on the device, recorded in a record file.

A thin shell over ``bedside_host.session`` (the services the web station calls too): options
are parsed and checked here, the step is validated by the host rules, sent to the device and
recorded there. Every step needs ``--db FILE`` (the record) and the operator (``--by NAME``,
default $BEDSIDE_OPERATOR or the config file). Exit codes: 0 done; 1 the host rules or the
device refused (the reason is printed, for ``discharge`` with the criteria) or the device did
not answer; 2 bad input (nothing sent or recorded); 130 interrupted. Not a certified medical
device: the nurse's judgement and the clinic's protocol decide, the tool records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bedside_host.commands._device import (
    PORT_HELP,
    Refused,
    UsageError,
    open_link,
    run_guarded,
)
from bedside_host.config import operator_name
from bedside_host.session.scores import ALDRETE, LEVELS, MOAAS, PADSS, RASS_RANGE
from bedside_host.session.screening import CONTRAINDICATIONS

if TYPE_CHECKING:
    from bedside_host.session.service import SessionService, SessionView, StepResult

HELP = "infusion session steps on the device (open, screen, baseline, ..., close), recorded"
ACTIONS = (
    "open",
    "screen",
    "baseline",
    "start",
    "dose",
    "o2",
    "check",
    "stop",
    "discharge",
    "close",
    "cancel",
    "show",
)


def _common(p: argparse.ArgumentParser, by: bool = True) -> None:
    p.add_argument("--port", metavar="P", help=PORT_HELP)
    p.add_argument("--db", required=True, type=Path, metavar="FILE", help="record file")
    if by:
        p.add_argument(
            "--by",
            "--operator",
            dest="by",
            metavar="NAME",
            help="who does this step (default $BEDSIDE_OPERATOR, then the config file)",
        )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "y"):
        return True
    if text.lower() in ("no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def _bp(text: str) -> tuple[int, int]:
    s, _slash, d = text.partition("/")
    try:
        return int(s), int(d)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SYS/DIA in mmHg, e.g. 128/80, got {text!r}"
        ) from None


def _items(table: dict[str, Any]) -> Any:
    def parse(text: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in text.split(","):
            k, eq, v = part.partition("=")
            k = k.strip()
            if not eq or k not in table:
                raise argparse.ArgumentTypeError(
                    f"expected ITEM=SCORE,... with items {', '.join(table)}; got {part!r}"
                )
            try:
                out[k] = int(v)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{k}: score must be 0, 1 or 2") from None
        return out

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    o = sub.add_parser("open", help="open a session for a patient (idle or closed device)")
    o.add_argument("--patient", required=True, metavar="ID", help="pseudonymous id (<= 32)")
    o.add_argument("--course-day", required=True, type=int, metavar="N", help="day N ...")
    o.add_argument("--course-total", required=True, type=int, metavar="M", help="... of M")
    s = sub.add_parser(
        "screen",
        help="record the screening; if it passes the session goes on to baseline",
        description="Each relative contraindication must be answered yes or no (or --all-no). "
        "Any yes, or a resting BP above the clinic limit, needs --override-by and "
        "--override-reason (a named clinician).",
    )
    for key, question in CONTRAINDICATIONS.items():
        s.add_argument(
            "--" + key.replace("_", "-"), type=_yes_no, metavar="yes|no", help=question
        )
    s.add_argument("--all-no", action="store_true", help="none of the items applies")
    s.add_argument("--bp", required=True, type=_bp, metavar="SYS/DIA", help="resting BP, mmHg")
    s.add_argument("--note", default="", metavar="TEXT", help="free text")
    s.add_argument("--override-by", metavar="CLINICIAN", help="the clinician who overrides")
    s.add_argument("--override-reason", metavar="TEXT", help="why the session goes on")
    b = sub.add_parser("baseline", help="repeat a baseline NIBP reading, or accept the baseline")
    b.add_argument("baseline_action", choices=("repeat", "accept"), metavar="repeat|accept")
    sub.add_parser("start", help="start the infusion (baseline accepted)")
    d = sub.add_parser("dose", help="a dose-rate change (time, rate, units, reason, who)")
    d.add_argument("--rate", required=True, type=int, metavar="N", help="whole number >= 0")
    d.add_argument("--units", required=True, metavar="U", help="e.g. mg/h, ug/kg/min (<= 16)")
    d.add_argument(
        "--reason", required=True, choices=("start", "pain", "side_effect", "other")
    )
    d.add_argument("--note", default="", metavar="TEXT")
    x = sub.add_parser("o2", help="supplemental O2 on (with flow) or off")
    x.add_argument("o2_state", choices=("on", "off"), metavar="on|off")
    x.add_argument("--flow", type=int, metavar="L_MIN", help="L/min 1..15 (with on)")
    c = sub.add_parser("check", help="a responsiveness check: MOAA/S, RASS, side effects")
    c.add_argument("--moaas", type=int, metavar="0-5", help="MOAA/S (omit: check without score)")
    c.add_argument("--variant", choices=tuple(MOAAS), help="MOAA/S variant (clinic default)")
    c.add_argument("--rass", type=int, metavar=f"{RASS_RANGE[0]}..+{RASS_RANGE[1]}")
    c.add_argument("--dissociation", choices=LEVELS)
    c.add_argument("--nausea", choices=LEVELS)
    c.add_argument("--pain", type=int, metavar="0-10", help="pain score 0-10")
    c.add_argument("--note", default="", metavar="TEXT")
    sub.add_parser("stop", help="stop the infusion: recovery starts")
    g = sub.add_parser(
        "discharge",
        help="score modified Aldrete and PADSS; discharge ready if every criterion holds",
        description="PADSS surgical bleeding does not apply to an infusion: scored 2 by rule.",
    )
    g.add_argument(
        "--aldrete", required=True, type=_items(ALDRETE), metavar="ITEM=0-2,...",
        help="items: " + ", ".join(ALDRETE),
    )  # fmt: skip
    g.add_argument(
        "--padss", required=True, type=_items(PADSS), metavar="ITEM=0-2,...",
        help="items: " + ", ".join(PADSS),
    )  # fmt: skip
    z = sub.add_parser("close", help="close: escort present, no-driving advice given")
    z.add_argument("--escort", required=True, metavar="NAME")
    z.add_argument("--relationship", required=True, metavar="REL")
    z.add_argument(
        "--advice-given", action="store_true", help="the no-driving advice was given (required)"
    )
    k = sub.add_parser("cancel", help="end a session before the infusion (screening, baseline)")
    k.add_argument("--reason", required=True, metavar="TEXT", help="<= 32 characters")
    w = sub.add_parser("show", help="the device's session and what the record holds")
    for sp in (o, s, b, d, x, c, g, z, k):
        _common(sp)
    _common(w, by=False)
    for name, sp in sub.choices.items():
        if name in ("start", "stop"):
            _common(sp)


# --- output --------------------------------------------------------------------------------
def _criteria_lines(res_criteria: Any) -> list[str]:
    out = []
    for c in res_criteria:
        mark = "ok  " if c.ok else "FAIL"
        out.append(f"  {mark} {c.name:<15} {json.dumps(c.value):<12} need {c.need} ({c.source})")
    return out


def _result_json(res: StepResult) -> dict[str, Any]:
    return {
        "op": res.op,
        "ok": res.ok,
        "session_id": res.session_id,
        "phase_before": res.phase_before,
        "phase_after": res.phase_after,
        "refused_by": res.refused_by or None,
        "error": res.error or None,
        "warnings": res.warnings,
        "criteria": [c.__dict__ for c in res.criteria],
        "state": res.state,
    }


def _print_result(args: argparse.Namespace, res: StepResult) -> int:
    if args.json:
        print(json.dumps(_result_json(res)))
    for w in res.warnings:
        print(f"bedside session {args.action}: warning: {w}", file=sys.stderr)
    if not res.ok:
        who = "the host rules" if res.refused_by == "host" else "the device"
        msg = f"refused by {who}: {res.error}"
        if res.criteria and not args.json:
            print("discharge criteria:")
            print("\n".join(_criteria_lines(res.criteria)))
        raise Refused(msg + f" (recorded as step {res.step_id} of session {res.session_id})")
    if not args.json:
        st = res.state or {}
        move = (
            f"{res.phase_before} -> {res.phase_after}"
            if res.phase_before != res.phase_after
            else f"phase {res.phase_after}"
        )
        print(f"session {res.session_id} (device session {st.get('id')}): {res.op} done, {move}")
        if res.screening is not None and res.screening.overridden:
            print("findings overridden: " + "; ".join(res.screening.findings))
        if res.criteria:
            print("discharge criteria:")
            print("\n".join(_criteria_lines(res.criteria)))
    return 0


def _print_view(args: argparse.Namespace, v: SessionView, hints: list[Any]) -> int:
    if args.json:
        out = dict(v.__dict__)
        out["criteria"] = [c.__dict__ for c in v.criteria]
        print(json.dumps(out, default=str))
        return 0
    for w in v.warnings:
        print(f"bedside session show: warning: {w}", file=sys.stderr)
    st = v.state
    print(
        f"device: session {st.get('id')} phase {st.get('phase')} "
        f"({st.get('phase_s')} s in phase)" + (" RESTORED after a restart" if st.get("restored")
                                                else "")
    )  # fmt: skip
    if st.get("phase") not in (None, "idle"):
        print(
            f"  patient {st.get('patient')} day {st.get('course_day')}/{st.get('course_total')}"
            f"; baseline {st.get('baseline')} ({st.get('baseline_readings')} readings, "
            f"ready {st.get('baseline_ready')})"
        )
        due = st.get("check_due_s")
        due_text = (
            "no check due"
            if not isinstance(due, int)
            else f"CHECK OVERDUE by {-due} s"
            if due < 0
            else f"check due in {due} s"
        )
        print(
            f"  dose {st.get('dose')}; O2 {st.get('o2')}; last check {st.get('last_check')};"
            f" {due_text}; NIBP every {st.get('nibp_interval_s')} s"
        )
    if st.get("phase") == "recovery" and hints:
        print("discharge hints from device data (confirm at the bedside):")
        for h in hints:
            print(f"  {h.form} {h.item} = {h.points} ({h.why})")
    if v.session_id is None:
        print("record: no infusion session of this device")
        return 0
    inf = v.infusion or {}
    print(f"record: session {v.session_id} ({inf.get('label')}), phase {inf.get('phase')}")
    for s in v.steps:
        extra = f" ({s['error']})" if s["error"] else ""
        print(f"  {s['op']:<10} {s['outcome']:<12} by {s['by']}{extra}")
    if v.criteria:
        print("discharge criteria (last assessment):")
        print("\n".join(_criteria_lines(v.criteria)))
    if v.escort:
        print(
            f"escort: {v.escort['name']} ({v.escort['relationship']}); no driving for "
            f"{v.escort['no_driving_h']} h advised"
        )
    return 0


# --- running ---------------------------------------------------------------------------------
def _screening(args: argparse.Namespace) -> Any:
    from bedside_host.session.screening import Screening

    answers: dict[str, bool] = {}
    for key in CONTRAINDICATIONS:
        v = getattr(args, key)
        if v is not None:
            answers[key] = v
    if args.all_no:
        if any(answers.values()):
            raise UsageError("--all-no contradicts an item answered yes")
        answers = dict.fromkeys(CONTRAINDICATIONS, False)
    return Screening(
        answers, args.bp[0], args.bp[1], args.note, args.override_by, args.override_reason
    )


def _do(args: argparse.Namespace, svc: SessionService, by: str) -> StepResult:
    a = args.action
    if a == "open":
        return svc.open(by, args.patient, args.course_day, args.course_total)
    if a == "screen":
        return svc.screen(by, _screening(args))
    if a == "baseline":
        return svc.baseline(by, args.baseline_action)
    if a == "start":
        return svc.start(by)
    if a == "dose":
        return svc.dose(by, args.rate, args.units, args.reason, args.note)
    if a == "o2":
        return svc.o2(by, args.o2_state == "on", args.flow)
    if a == "check":
        from bedside_host.session.scores import Check

        return svc.check(
            by,
            Check(
                args.moaas,
                args.variant or svc.clinic.moaas_variant,
                args.rass,
                args.dissociation,
                args.nausea,
                args.pain,
                args.note,
            ),
        )
    if a == "stop":
        return svc.stop(by)
    if a == "discharge":
        return svc.discharge(by, args.aldrete, args.padss)
    if a == "close":
        return svc.close(by, args.escort, args.relationship, bool(args.advice_given))
    assert a == "cancel"
    return svc.cancel(by, args.reason)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        from bedside_host.session.clinic import load_clinic
        from bedside_host.session.service import SessionService
        from bedside_host.session.values import InvalidInput
        from bedside_host.store import Store, StoreError

        clinic = load_clinic()
        by = None
        if args.action != "show":
            by = operator_name(args.by)
            if by is None:
                raise UsageError("who does this step? --by NAME (or $BEDSIDE_OPERATOR)")
        try:
            store = Store(args.db)
        except StoreError as e:
            raise UsageError(f"--db {args.db}: {e}") from None
        try:
            link = open_link(args)
            try:
                svc = SessionService(link, store, clinic)
                if args.action == "show":
                    view = svc.show()
                    in_recovery = view.state.get("phase") == "recovery"
                    hints = svc.discharge_hints(view.state) if in_recovery else []
                    return _print_view(args, view, hints)
                assert by is not None
                try:
                    res = _do(args, svc, by)
                except InvalidInput as e:
                    raise UsageError(str(e)) from None
                except StoreError as e:
                    raise Refused(
                        f"the record file could not be written ({e}); check the device's "
                        "state with `bedside session show` before repeating the step"
                    ) from None
                return _print_result(args, res)
            finally:
                link.close()
        finally:
            store.close()

    return run_guarded(f"bedside session {args.action}", body)
