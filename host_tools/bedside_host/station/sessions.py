"""The infusion-session forms of the station (docs/station.md "Session forms").

Each form posts to ``POST /api/chairs/{id}/session/{op}``; the body is checked here (the op's
fields, types, no unknown field, the operator's name) and the step is taken by the host session
services (``bedside_host.session.SessionService``, docs/session.md) exactly as ``bedside
session`` takes it: the host rules first, then the device, every step recorded in the record
file (done, refused by the host or the device, or no answer) with the operator's name.

The service needs the chair's link and the Store: the station's link belongs to its LinkThread
and the Store to the StoreThread, so a step runs in the store thread (``StoreThread.call``)
with :class:`ChairLink`, which sends through the link thread (the station's allow-list
applies) and hands the service what the link received meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bedside_host.station.links import LinkThread, StoreThread
from bedside_host.store import Item, Store

REPLY_SLACK_S = 5.0  # beyond the command's own timeout, before the step gives up waiting


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    by: str


class OpenBody(_Body):
    patient: str
    course_day: int
    course_total: int


class ScreenBody(_Body):
    answers: dict[str, bool]
    bp_sys: int
    bp_dia: int
    note: str = ""
    override_by: str | None = None
    override_reason: str | None = None


class CancelBody(_Body):
    reason: str


class BaselineBody(_Body):
    action: Literal["repeat", "accept"]


class DoseBody(_Body):
    rate: int
    units: str
    reason: str
    note: str = ""


class O2Body(_Body):
    on: bool
    flow: int | None = None


class CheckBody(_Body):
    moaas: int | None = None
    variant: str = "A"
    rass: int | None = None
    dissociation: str | None = None
    nausea: str | None = None
    pain: int | None = None
    note: str = ""


class DischargeBody(_Body):
    aldrete: dict[str, int]
    padss: dict[str, int]


class CloseBody(_Body):
    escort: str
    relationship: str
    advice: bool


BODIES: dict[str, type[_Body]] = {
    "open": OpenBody,
    "screen": ScreenBody,
    "cancel": CancelBody,
    "baseline": BaselineBody,
    "start": _Body,
    "dose": DoseBody,
    "o2": O2Body,
    "check": CheckBody,
    "stop": _Body,
    "discharge": DischargeBody,
    "close": CloseBody,
}


class BadForm(ValueError):
    """A form the station cannot send: the reason in words (HTTP 400)."""


def parse(op: str, body: Any) -> _Body:
    """The op's body, checked (BadForm: an unknown op, a missing, unknown or mistyped field)."""
    model = BODIES.get(op)
    if model is None:
        raise BadForm(f"no session step {op!r}: use one of {', '.join(BODIES)}")
    if not isinstance(body, dict):
        raise BadForm("the form must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "form"
        raise BadForm(f"{op}: {where}: {err.get('msg', 'invalid')}") from None


class ChairLink:
    """What SessionService needs of a DeviceLink, for a chair whose link a LinkThread owns;
    used in the store thread only."""

    def __init__(
        self, url: str, link: LinkThread, store: StoreThread, allowed: frozenset[str]
    ) -> None:
        self.url = url
        self._link = link
        self._store = store
        self._allowed = allowed

    @property
    def boot(self) -> int | None:
        b = getattr(self._link.link, "boot", None)
        return b if isinstance(b, int) else None

    def request(self, cmd: str, timeout: float = 3.0, **fields: Any) -> dict[str, Any]:
        if cmd not in self._allowed:
            raise PermissionError(f"the station does not send {cmd!r} to a bedside")
        return self._link.submit(cmd, fields, timeout).result(timeout + REPLY_SLACK_S)

    def poll(self, timeout: float = 0.0) -> list[Item]:
        """What the link thread queued for the store meanwhile (every chair's), in order."""
        return self._store.take_items()


def step(service: Any, op: str, form: _Body) -> Any:
    """Take one step with the services (in the store thread). Returns the StepResult;
    InvalidInput for bad values, LinkProblem when the device did not answer."""
    from bedside_host.session import Check, Screening

    by = form.by
    if isinstance(form, OpenBody):
        return service.open(by, form.patient, form.course_day, form.course_total)
    if isinstance(form, ScreenBody):  # the form's fields are the Screening's, plus `by`
        return service.screen(by, Screening(**form.model_dump(exclude={"by"})))
    if isinstance(form, CancelBody):
        return service.cancel(by, form.reason)
    if isinstance(form, BaselineBody):
        return service.baseline(by, form.action)
    if isinstance(form, DoseBody):
        return service.dose(by, form.rate, form.units, form.reason, form.note)
    if isinstance(form, O2Body):
        return service.o2(by, form.on, form.flow)
    if isinstance(form, CheckBody):  # the form's fields are the Check's, plus `by`
        return service.check(by, Check(**form.model_dump(exclude={"by"})))
    if isinstance(form, DischargeBody):
        return service.discharge(by, dict(form.aldrete), dict(form.padss))
    if isinstance(form, CloseBody):
        return service.close(by, form.escort, form.relationship, form.advice)
    if op == "start":
        return service.start(by)
    if op == "stop":
        return service.stop(by)
    raise BadForm(f"no session step {op!r}")


def result_json(res: Any) -> dict[str, Any]:
    """A StepResult as the form shows it."""
    out: dict[str, Any] = {
        "ok": bool(res.ok),
        "op": res.op,
        "error": res.error,
        "refused_by": res.refused_by,
        "phase_before": res.phase_before,
        "phase_after": res.phase_after,
        "state": res.state,
        "criteria": [asdict(c) for c in res.criteria],
        "failing": [c.name for c in res.criteria if not c.ok],
        "warnings": list(res.warnings),
        "session_id": res.session_id,
        "step_id": res.step_id,
    }
    if res.screening is not None:
        out["screening"] = {
            "findings": list(res.screening.findings),
            "passed": res.screening.passed,
            "overridden": res.screening.overridden,
            "why": res.screening.why,
        }
    if res.scores:
        out["scores"] = [_plain(s) for s in res.scores]
    return out


def view_json(v: Any, hints: list[Any]) -> dict[str, Any]:
    """A SessionView (``show``) and the discharge hints as the page shows them."""
    return {
        "state": v.state,
        "session_id": v.session_id,
        "infusion": v.infusion,
        "steps": v.steps[-50:],
        "doses": v.doses,
        "o2": v.o2,
        "checks": v.checks,
        "screenings": v.screenings,
        "discharge": v.discharge,
        "criteria": [asdict(c) for c in v.criteria],
        "escort": v.escort,
        "warnings": v.warnings,
        "hints": [asdict(h) for h in hints],
    }


def forms() -> dict[str, Any]:
    """The forms' items and wording, from the services (one source of truth for the page)."""
    from bedside_host.session import ALDRETE, CONTRAINDICATIONS, PADSS, rules, scores, service

    allowed: dict[str, list[str]] = {}
    for r in rules.RULES:  # where each form's step is allowed: the host rules' table
        op = {"screened": "screen"}.get(r["trigger"], r["trigger"].split("_")[0])
        src = r["source"]
        allowed.setdefault(op, list(src) if isinstance(src, list) else [src])
    return {
        "allowed": allowed,
        "contraindications": CONTRAINDICATIONS,
        "aldrete": {k: {"title": t, "levels": list(w)} for k, (t, w) in ALDRETE.items()},
        "padss": {k: {"title": t, "levels": list(w)} for k, (t, w) in PADSS.items()},
        "padss_bleeding": list(scores.PADSS_BLEEDING),
        "moaas": {v: {str(k): w for k, w in d.items()} for v, d in scores.MOAAS.items()},
        "levels": list(scores.LEVELS),
        "rass": list(scores.RASS_RANGE),
        "dose_reasons": list(service.DOSE_REASONS),
    }


def _plain(x: Any) -> Any:
    try:
        return asdict(x)
    except TypeError:
        return str(x)


ServiceFactory = Callable[[Store, ChairLink], Any]


def service_factory(clinic: Any = None) -> ServiceFactory:
    """SessionService per chair with these clinic settings (None: the host config's, read
    when the first step is taken; ``bedside station`` reads them at start)."""

    def make(store: Store, link: ChairLink) -> Any:
        from bedside_host.session import SessionService, load_clinic

        return SessionService(link, store, clinic if clinic is not None else load_clinic())

    return make


default_service = service_factory()



class SessionDesk:
    """The session steps of the chairs on this station's ports: each runs in the store thread
    with its chair's ChairLink and one SessionService per chair (created there)."""

    def __init__(
        self,
        store: StoreThread,
        allowed: frozenset[str],
        factory: ServiceFactory = default_service,
    ) -> None:
        self.store = store
        self.allowed = allowed
        self.factory = factory
        self.links: dict[str, tuple[str, LinkThread]] = {}  # chair -> (device key, thread)
        self._services: dict[str, Any] = {}  # store thread only

    def add(self, chair: str, url: str, link: LinkThread) -> None:
        self.links[chair] = (url, link)

    def _service(self, store: Store, chair: str) -> Any:
        svc = self._services.get(chair)
        if svc is None:
            url, link = self.links[chair]
            svc = self._services[chair] = self.factory(
                store, ChairLink(url, link, self.store, self.allowed)
            )
        return svc

    async def step(self, chair: str, op: str, form: _Body) -> Any:
        """The StepResult (KeyError: no link to this chair here)."""
        import asyncio

        if chair not in self.links:
            raise KeyError(chair)
        fut = self.store.call(lambda store: step(self._service(store, chair), op, form))
        return await asyncio.wrap_future(fut)

    async def show(self, chair: str) -> dict[str, Any]:
        import asyncio

        if chair not in self.links:
            raise KeyError(chair)

        def run(store: Store) -> dict[str, Any]:
            svc = self._service(store, chair)
            v = svc.show()
            in_recovery = v.state.get("phase") == "recovery"
            return view_json(v, svc.discharge_hints(v.state) if in_recovery else [])

        return await asyncio.wrap_future(self.store.call(run))
