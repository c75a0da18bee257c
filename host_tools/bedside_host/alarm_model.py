"""Reference model of the alarm system, for property tests and the docs (docs/alarms.md).

The occurrence state machine of every condition is a `transitions` Machine built FROM the
firmware's table (``bedside.alarms.fsm.TRANSITIONS``): same states, events and guards. Around it
this module re-implements, independently of ``bedside.alarms.engine``/``rules``, what decides
when events happen: limit predicates with hysteresis, condition delays, escalation, audio-pause
expiry, acknowledge and reset. tests/test_alarm_model.py drives this model and the firmware
AlarmEngine with the same random readings, presses and time steps and requires identical states
and priorities. Times are plain (unwrapped) milliseconds here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transitions import Machine

from bedside_host import ensure_firmware_on_path

ensure_firmware_on_path()

from bedside.alarms import conditions as fw_conditions  # noqa: E402
from bedside.alarms import fsm  # noqa: E402
from bedside.observations import OFF_CONFIRM_MS  # noqa: E402

STATES: tuple[str, ...] = tuple(fsm.STATE_NAMES)
EVENTS: tuple[str, ...] = tuple(fsm.EVENT_NAMES)
P_NONE, P_LOW, P_MEDIUM, P_HIGH = 0, 1, 2, 3

# Hysteresis of the limit predicates (docs/alarms.md): SpO2 1 %-point, pulse 2 /min.
HYST_SPO2 = 1
HYST_PR = 2

# The conditions the model covers: (id, quantity, direction, limit setting, hysteresis).
LIMITS: tuple[tuple[str, str, str, str, int], ...] = (
    ("SPO2_DESAT", "spo2", "low", "spo2_desat", HYST_SPO2),
    ("SPO2_LOW", "spo2", "low", "spo2_low", HYST_SPO2),
    ("PR_LOW", "pr", "low", "pr_low", HYST_PR),
    ("PR_HIGH", "pr", "high", "pr_high", HYST_PR),
)
MODELLED: tuple[str, ...] = (*(row[0] for row in LIMITS), "OXI_SENSOR_OFF")


def transition_rows() -> list[dict[str, Any]]:
    """fsm.TRANSITIONS as `transitions` definitions (guards as conditions/unless)."""
    rows: list[dict[str, Any]] = []
    for event, src, dst, guard in fsm.TRANSITIONS:
        row: dict[str, Any] = {
            "trigger": EVENTS[event],
            "source": STATES[src],
            "dest": STATES[dst],
        }
        if guard == fsm.G_LATCHING:
            row["conditions"] = "is_latching"
        elif guard == fsm.G_NONLATCHING:
            row["unless"] = "is_latching"
        rows.append(row)
    return rows


class Occurrence:
    """One condition's occurrence; `state` and `trigger` are provided by the Machine."""

    state: str
    trigger: Callable[..., bool]

    def __init__(self, cid: str, latching: Callable[[Occurrence], bool]) -> None:
        self.cid = cid
        self._latching = latching
        self.prio = P_NONE
        self.raw = False
        self.exists = False
        self.t_raw = 0
        self.t_start = 0
        self.pause_end = 0
        self.latched_once = False  # latched since the last reset: stays latching until reset
        self.machine = Machine(
            model=self,
            states=list(STATES),
            transitions=transition_rows(),
            initial=STATES[fsm.S_INACTIVE],
            auto_transitions=False,
            ignore_invalid_triggers=True,
        )

    def is_latching(self) -> bool:
        return self.latched_once or self._latching(self)

    def fire(self, event: str) -> bool:
        """Send an event; True if a transition took place."""
        moved = bool(self.trigger(event))
        if self.state in ("latched", "latched_acknowledged"):
            self.latched_once = True
        elif self.state == "inactive":
            self.latched_once = False
        return moved


class AlarmModel:
    """Reference alarm system for the modelled conditions, fed with readings and presses."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings
        self.table = {row[0]: row for row in fw_conditions.CONDITIONS}
        self.occ = {cid: Occurrence(cid, self._latching) for cid in MODELLED}
        for cid, o in self.occ.items():
            o.prio = self.table[cid][2]
        self.log: list[tuple[int, str, str, str]] = []  # (t, condition, event, new state)
        self.off_since: int | None = None  # sensor-off flags present since (confirmation)

    # --- configuration (the same settings and condition table as the firmware) -------------
    def _latching(self, o: Occurrence) -> bool:
        code = self.table[o.cid][3]
        if code == fw_conditions.L_YES:
            return True
        if code != fw_conditions.L_SETTING:
            return False
        if o.prio == P_HIGH:
            return bool(self.settings["latch_high"])
        if o.prio == P_MEDIUM:
            return bool(self.settings["latch_medium"])
        return False

    def _delay_ms(self, cid: str) -> int:
        d = self.table[cid][4]
        return int(self.settings[d]) * 1000 if isinstance(d, str) else int(d)

    def _fire(self, o: Occurrence, event: str, t: int) -> None:
        if o.fire(event):
            self.log.append((t, o.cid, event, o.state))

    # --- inputs ---------------------------------------------------------------------------
    def readings(self, spo2: int | None, pr: int | None, sensor_off: bool, t: int) -> None:
        """The predicates at t (None: no value). Sensor-off counts only once its flags have
        held for OFF_CONFIRM_MS; until then the SpO2 and pulse conditions stay as they are
        (none starts, none ends: one bad frame never ends an alarm)."""
        if not sensor_off:
            self.off_since = None
        elif self.off_since is None:
            self.off_since = t
        confirmed = sensor_off and t - (self.off_since or t) >= OFF_CONFIRM_MS
        pending = sensor_off and not confirmed
        values = {"spo2": None if sensor_off else spo2, "pr": None if sensor_off else pr}
        for cid, qty, direction, limit_name, hyst in LIMITS:
            o = self.occ[cid]
            v = values[qty]
            limit = int(self.settings[limit_name])
            if pending:
                holds = o.exists
            elif v is None:
                holds = False
            elif direction == "low":
                holds = v < (limit + hyst if o.exists else limit)
            else:
                holds = v > (limit - hyst if o.exists else limit)
            self._predicate(o, holds, t)
        self._predicate(self.occ["OXI_SENSOR_OFF"], confirmed, t)

    def _predicate(self, o: Occurrence, holds: bool, t: int) -> None:
        if holds and not o.raw:
            o.t_raw = t
        o.raw = holds

    def step(self, t: int) -> None:
        for cid, o in self.occ.items():
            base_prio = self.table[cid][2]
            if o.raw:
                if not o.exists and t - o.t_raw >= self._delay_ms(cid):
                    o.exists = True
                    o.t_start = t
                    o.prio = base_prio
                    self._fire(o, "raise", t)
            elif o.exists:
                o.exists = False
                self._fire(o, "end", t)
            esc = self.table[cid][5]
            if esc and o.exists and o.prio < esc[1]:
                esc_s = int(self.settings[esc[0]])
                if esc_s and t - o.t_start >= esc_s * 1000:
                    o.prio = esc[1]
                    self._fire(o, "escalate", t)
            if o.state == "audio_paused" and t >= o.pause_end:
                self._fire(o, "pause_end", t)

    def ack(self, t: int) -> None:
        for o in self.occ.values():
            if o.state in ("active", "latched"):
                o.pause_end = t + int(self.settings["audio_pause_s"]) * 1000
                self._fire(o, "ack", t)

    def reset(self, t: int) -> None:
        for o in self.occ.values():
            if o.state in ("latched", "latched_acknowledged"):
                self._fire(o, "reset", t)

    # --- outputs --------------------------------------------------------------------------
    def states(self) -> dict[str, tuple[str, int]]:
        return {cid: (o.state, o.prio) for cid, o in self.occ.items()}

    def audible_priority(self) -> int:
        return max(
            (o.prio for o in self.occ.values() if o.state in ("active", "latched")),
            default=P_NONE,
        )

    def visible_priority(self) -> int:
        return max((o.prio for o in self.occ.values() if o.state != "inactive"), default=P_NONE)


def mermaid_diagram() -> str:
    """The occurrence state diagram (mermaid) generated from fsm.TRANSITIONS."""
    from transitions.extensions.diagrams import GraphMachine

    class _Model:
        def is_latching(self) -> bool:  # pragma: no cover - guard name for the diagram only
            return False

    model = _Model()
    GraphMachine(
        model=model,
        states=list(STATES),
        transitions=transition_rows(),
        initial=STATES[fsm.S_INACTIVE],
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title="Alarm condition occurrence (fsm.TRANSITIONS)",
    )
    graph: Any = model.get_graph()  # type: ignore[attr-defined]
    return str(graph.draw(None))
