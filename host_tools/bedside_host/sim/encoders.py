"""Oximeter wire-format encoders, written from shared/reference/protocols.md (section 1).

Deliberately independent of the firmware decoders in ``firmware/bedside/sensors``: the simulator
and the firmware are two implementations of the same reference that the tests make agree.

Every stream encoder emits one *unit* (a Nonin frame, a BCI packet, a Format #1 triple, a Masimo
line) per ``period_s`` of wire time; ``Emitter`` schedules units from the start time so a paced
writer never drifts. Anything the reference marks UNCONFIRMED is a constructor option with a
named default.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bedside_host.sim.patient import PatientState

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True)
class LinkSettings:
    baud: int
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: int = 1


class StreamEncoder(Protocol):
    name: str
    period_s: float  # wire time per unit
    link: LinkSettings

    def encode(self, state: PatientState, t_s: float) -> bytes:
        """The next unit of the stream; ``t_s`` is its wire time (s since start)."""
        ...


# --------------------------------------------------------------------------------------------
# Nonin Format #2 / #7 (protocols.md 1.3, 1.4)

NONIN_BAUD = 9600
NONIN_FRAMES_PER_S = 75
NONIN_FRAMES_PER_PACKET = 25
NONIN_HR_MISSING = 511
NONIN_SPO2_MISSING = 127

# STATUS bits (Format #2 byte 2, Format #7 byte 1)
ST_ALWAYS = 0x80
ST_SNSD = 0x40  # OEM III / Xpod: sensor not connected (reserved on the 9560)
ST_ARTF = 0x20
ST_OOT = 0x10
ST_SNSA = 0x08
ST_RPRF = 0x04
ST_GPRF = 0x02
ST_SYNC = 0x01
# perfusion codes (RPRF, GPRF): 01 green, 11 yellow, 10 red, 00 no pulse in progress
NONIN_PERF_CODE: dict[str, int] = {"good": ST_GPRF, "marginal": ST_RPRF | ST_GPRF, "low": ST_RPRF}
NONIN_PERF_FRAMES = 12  # each pulse sets RPRF/GPRF for 12 frames (160 ms)

# Named defaults for UNCONFIRMED or free details
NONIN_DEFAULT_SREV = 0x30  # firmware revision in frame 4 (vector 3 uses 48)
NONIN_DEFAULT_RESERVED = 0x00  # reserved FLOAT frames: "undefined (0..255)"; decoders ignore
NONIN_DISPLAY_HOLD_S = 10.0  # display values held after finger removal, SNSA set (S1)
NONIN_DISPLAY_PERIOD_S = 1.5  # display values update every 1.5 s (S1)
NonInVariant = Literal["oem3", "9560"]
# oem3: STATUS bit 6 = SNSD, frames 5-8 reserved (S3; TMR/STAT2 there UNCONFIRMED)
# 9560: bit 6 reserved (0), frames 6/7 = TMR 1/3-s counter, frame 8 = STAT2 (S1)


def nonin2_frame(status: int, pleth: int, flt: int) -> bytes:
    """Format #2 frame: 01 STATUS PLETH FLOAT CHK, CHK = sum of the first four mod 256."""
    b = (0x01, 0x80 | status, pleth & 0xFF, flt & 0xFF)
    return bytes((*b, sum(b) & 0xFF))


def nonin7_frame(status: int, pleth: int, flt: int) -> bytes:
    """Format #7 frame: STATUS PLETH_MSB PLETH_LSB FLOAT CHK (no start byte, 16-bit pleth)."""
    b = (0x80 | status, (pleth >> 8) & 0xFF, pleth & 0xFF, flt & 0xFF)
    return bytes((*b, sum(b) & 0xFF))


def _hr_msb(hr: int) -> int:
    return (hr >> 7) & 0x03  # 0 R R R R R HR8 HR7, reserved bits sent as 0


def _hr_lsb(hr: int) -> int:
    return hr & 0x7F


@dataclass
class NoninPacketValues:
    """The FLOAT bytes of one 25-frame packet (table "FLOAT byte by frame")."""

    hr: int = NONIN_HR_MISSING
    spo2: int = NONIN_SPO2_MISSING
    srev: int = NONIN_DEFAULT_SREV
    spo2_d: int = NONIN_SPO2_MISSING
    spo2_fast: int = NONIN_SPO2_MISSING
    spo2_bb: int = NONIN_SPO2_MISSING
    e_hr: int = NONIN_HR_MISSING
    e_spo2: int = NONIN_SPO2_MISSING
    e_spo2_d: int = NONIN_SPO2_MISSING
    hr_d: int = NONIN_HR_MISSING
    e_hr_d: int = NONIN_HR_MISSING
    tmr: int | None = None  # 9560 only: 14-bit 1/3-s timer in frames 6/7
    stat2: int | None = None  # 9560 only: frame 8
    reserved: int = NONIN_DEFAULT_RESERVED

    def floats(self) -> list[int]:
        f = [self.reserved & 0x7F] * NONIN_FRAMES_PER_PACKET
        table = {
            1: _hr_msb(self.hr),
            2: _hr_lsb(self.hr),
            3: self.spo2 & 0x7F,
            4: self.srev & 0x7F,
            9: self.spo2_d & 0x7F,
            10: self.spo2_fast & 0x7F,
            11: self.spo2_bb & 0x7F,
            14: _hr_msb(self.e_hr),
            15: _hr_lsb(self.e_hr),
            16: self.e_spo2 & 0x7F,
            17: self.e_spo2_d & 0x7F,
            20: _hr_msb(self.hr_d),
            21: _hr_lsb(self.hr_d),
            22: _hr_msb(self.e_hr_d),
            23: _hr_lsb(self.e_hr_d),
        }
        if self.tmr is not None:
            table[6] = (self.tmr >> 7) & 0x7F
            table[7] = self.tmr & 0x7F
        if self.stat2 is not None:
            table[8] = self.stat2 & 0x7F
        for frame, v in table.items():
            f[frame - 1] = v
        return f


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def _avg(xs: list[int]) -> int:
    return round(sum(xs) / len(xs))


class NoninEncoder:
    """Nonin Format #2 (default) or #7 stream, one 5-byte frame per 1/75 s.

    Recording values (HR, SpO2, E-*, Fast, B-B) follow beat averages (4, 8, 2, 1 beats) and go
    missing at once when the finger is out or during loss of track. Display values (*-D) update
    every 1.5 s and hold the last reading ``display_hold_s`` after finger removal, with SNSA set.
    """

    def __init__(
        self,
        fmt: Literal["nonin2", "nonin7"] = "nonin2",
        *,
        variant: NonInVariant = "oem3",
        srev: int = NONIN_DEFAULT_SREV,
        reserved: int = NONIN_DEFAULT_RESERVED,
        display_hold_s: float = NONIN_DISPLAY_HOLD_S,
        display_period_s: float = NONIN_DISPLAY_PERIOD_S,
    ) -> None:
        if fmt not in ("nonin2", "nonin7"):
            raise ValueError(f"not a Nonin frame format: {fmt}")
        if variant not in ("oem3", "9560"):
            raise ValueError(f"unknown Nonin variant: {variant}")
        self.name: str = fmt
        self.period_s = 1.0 / NONIN_FRAMES_PER_S
        self.link = LinkSettings(NONIN_BAUD)
        self._frame_fn: Callable[[int, int, int], bytes] = (
            nonin2_frame if fmt == "nonin2" else nonin7_frame
        )
        self._wide = fmt == "nonin7"
        self.variant = variant
        self.display_hold_s = display_hold_s
        self.display_period_s = display_period_s
        self._vals = NoninPacketValues(srev=srev, reserved=reserved)
        self._floats = self._vals.floats()
        self._n = 0  # frames sent
        self._packets = 0
        self._last_beat: int | None = None
        self._perf_left = 0
        self._perf_status = 0
        self._hist: deque[tuple[int, int]] = deque(maxlen=8)  # (spo2, pr) per beat
        self._next_display_t = 0.0
        self._invalid_since: float | None = None

    def _recording(self) -> tuple[int, int, int, int, int, int]:
        """(hr, spo2, e_hr, e_spo2, spo2_fast, spo2_bb) from the beat history."""
        h = list(self._hist)
        if not h:
            m = NONIN_SPO2_MISSING
            return NONIN_HR_MISSING, m, NONIN_HR_MISSING, m, m, m
        s = [x[0] for x in h]
        p = [x[1] for x in h]
        hr = _clamp(_avg(p[-4:]), 0, 510)
        e_hr = _clamp(_avg(p), 0, 510)
        return hr, _avg(s[-4:]), e_hr, _avg(s), _avg(s[-2:]), s[-1]

    def _start_packet(self, state: PatientState, t_s: float) -> None:
        v = self._vals
        invalid = state.signal_lost or state.searching
        v.hr, v.spo2, v.e_hr, v.e_spo2, v.spo2_fast, v.spo2_bb = self._recording()
        if invalid:
            if self._invalid_since is None:
                self._invalid_since = t_s
            if t_s - self._invalid_since >= self.display_hold_s:
                v.hr_d = v.e_hr_d = NONIN_HR_MISSING
                v.spo2_d = v.e_spo2_d = NONIN_SPO2_MISSING
        else:
            self._invalid_since = None
        if t_s >= self._next_display_t:
            while self._next_display_t <= t_s:
                self._next_display_t += self.display_period_s
            if not invalid:
                v.hr_d, v.spo2_d, v.e_hr_d, v.e_spo2_d = v.hr, v.spo2, v.e_hr, v.e_spo2
        if self.variant == "9560":
            v.tmr = self._packets & 0x3FFF
            v.stat2 = 0
        self._floats = v.floats()
        self._packets += 1

    def encode(self, state: PatientState, t_s: float) -> bytes:
        i = self._n % NONIN_FRAMES_PER_PACKET
        if state.signal_lost or state.searching:
            self._hist.clear()
            self._perf_left = 0
        elif state.beat != self._last_beat:
            self._hist.append((state.spo2, state.pr))
            self._perf_left = NONIN_PERF_FRAMES
            self._perf_status = NONIN_PERF_CODE[state.perfusion]
            if state.artifact:
                self._perf_status |= ST_ARTF
        self._last_beat = state.beat
        if i == 0:
            self._start_packet(state, t_s)
        status = ST_ALWAYS | (ST_SYNC if i == 0 else 0)
        if state.sensor_off and self.variant == "oem3":
            status |= ST_SNSD
        if state.signal_lost:
            status |= ST_SNSA
        if state.searching:
            status |= ST_OOT
        if self._perf_left > 0:
            status |= self._perf_status
            self._perf_left -= 1
        if self._wide:
            pleth = _clamp(0x4000 + round(state.pleth * 0x7000), 0, 0xFFFF)
        else:
            pleth = _clamp(40 + round(state.pleth * 180), 0, 255)
        self._n += 1
        return self._frame_fn(status, pleth, self._floats[i])


# --------------------------------------------------------------------------------------------
# Emitter: schedule units from the start time (no drift)


class Emitter:
    """Produce an encoder's units due up to wire time ``t``; unit k is due at k * period.

    ``patient_time`` maps wire time to scenario time (``speed`` x faster for quick runs).
    """

    def __init__(
        self,
        encoder: StreamEncoder,
        state_at: Callable[[float], PatientState],
        speed: float = 1.0,
    ) -> None:
        self.encoder = encoder
        self.state_at = state_at
        self.speed = speed
        self.units = 0
        self.bytes = 0
        self.last_state: PatientState | None = None

    def emit_until(self, t_s: float) -> bytes:
        out = bytearray()
        period = self.encoder.period_s
        while self.units * period <= t_s:
            wire_t = self.units * period
            st = self.state_at(wire_t * self.speed)
            out += self.encoder.encode(st, wire_t)
            self.last_state = st
            self.units += 1
        self.bytes += len(out)
        return bytes(out)


OXIMETER_FORMATS = ("nonin2", "nonin7", "nonin1", "berrymed", "masimo")
DEFAULT_FORMAT = "nonin2"


def make_encoder(fmt: str) -> StreamEncoder:
    """Encoder for a format name in OXIMETER_FORMATS, with its named defaults."""
    if fmt == "nonin2":
        return NoninEncoder("nonin2")
    if fmt == "nonin7":
        return NoninEncoder("nonin7")
    choices = ", ".join(OXIMETER_FORMATS)
    raise ValueError(f"unknown oximeter format {fmt!r} (choose from {choices})")
