"""Oximeter wire-format encoders, written from shared/reference/protocols.md (section 1).

Deliberately independent of the firmware decoders in ``firmware/bedside/sensors``: the simulator
and the firmware are two implementations of the same reference that the tests make agree.

Every stream encoder emits one *unit* (a Nonin frame, a BCI packet, a Format #1 triple, a Masimo
line) per ``period_s`` of wire time; ``Emitter`` schedules units from the start time so a paced
writer never drifts. Anything the reference marks UNCONFIRMED is a constructor option with a
named default.
"""

from __future__ import annotations

import datetime as _dt
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
# Nonin Format #1 (protocols.md 1.2): 3 bytes once per second, no checksum

N1_SNSD = 0x40
N1_OOT = 0x20
N1_LPRF = 0x10
N1_MPRF = 0x08
N1_ARTF = 0x04
# UNCONFIRMED: what Format #1 shows when only the finger is removed (S2 names SNSD "sensor
# disconnected"). Default: set SNSD for finger-out as well as for an unplugged probe.
NONIN1_FINGER_OUT_SETS_SNSD = True
# UNCONFIRMED whether #1 carries display values (10 s hold) or recording values. Default: 0
# (recording: values go missing at once); set e.g. 10.0 to emulate display-style holding.
NONIN1_DISPLAY_HOLD_S = 0.0


def nonin1_packet(hr: int, spo2: int, flags: int = 0) -> bytes:
    """Format #1: [1 SNSD OOT LPRF MPRF ARTF HR8 HR7] [0 HR6..0] [0 SpO2]."""
    return bytes((0x80 | (flags & 0x7C) | ((hr >> 7) & 0x03), hr & 0x7F, spo2 & 0x7F))


class Nonin1Encoder:
    """Nonin Format #1 stream: one 3-byte packet per second at 9600 8N1."""

    def __init__(
        self,
        *,
        finger_out_sets_snsd: bool = NONIN1_FINGER_OUT_SETS_SNSD,
        display_hold_s: float = NONIN1_DISPLAY_HOLD_S,
    ) -> None:
        self.name = "nonin1"
        self.period_s = 1.0
        self.link = LinkSettings(NONIN_BAUD)
        self.finger_out_sets_snsd = finger_out_sets_snsd
        self.display_hold_s = display_hold_s
        self._held = (NONIN_HR_MISSING, NONIN_SPO2_MISSING)
        self._invalid_since: float | None = None

    def encode(self, state: PatientState, t_s: float) -> bytes:
        flags = 0
        if state.sensor_off or (state.no_finger and self.finger_out_sets_snsd):
            flags |= N1_SNSD
        if state.searching:
            flags |= N1_OOT
        if state.perfusion == "low":
            flags |= N1_LPRF
        elif state.perfusion == "marginal":
            flags |= N1_MPRF
        if state.artifact:
            flags |= N1_ARTF
        if state.signal_lost or state.searching:
            if self._invalid_since is None:
                self._invalid_since = t_s
            if t_s - self._invalid_since < self.display_hold_s:
                hr, spo2 = self._held
            else:
                hr, spo2 = NONIN_HR_MISSING, NONIN_SPO2_MISSING
        else:
            self._invalid_since = None
            hr, spo2 = _clamp(state.pr, 0, 510), _clamp(state.spo2, 0, 100)
            self._held = (hr, spo2)
        return nonin1_packet(hr, spo2, flags)


# --------------------------------------------------------------------------------------------
# BerryMed BCI (protocols.md 1.8): 5 bytes, sync bit, no checksum

BCI_PR_INVALID = 255
BCI_SPO2_INVALID = 127
BCI_RATE_HZ_V12 = 100  # v1.2 (2017); v1.1 (2015) sends 50 Hz
BCI_RATE_HZ_V11 = 50
# Baud is not in the BCI PDFs: 115200 is BerryMed's USB demo (S13); 9600 for a bare OEM board is
# UNCONFIRMED and cannot carry 100 Hz. Override with --baud.
BCI_DEFAULT_BAUD = 115200
# Signal strength (0..8) sent per perfusion class (a free choice within the documented range)
BCI_STRENGTH: dict[str, int] = {"good": 7, "marginal": 4, "low": 1}
BCI_BEEP_PACKETS = 1  # packets carrying the pulse-beep flag per beat


def bci_packet(
    strength: int,
    pleth: int,
    bar: int,
    pr: int,
    spo2: int,
    *,
    beep: bool = False,
    no_signal: bool = False,
    probe_unplugged: bool = False,
    no_finger: bool = False,
    searching: bool = False,
) -> bytes:
    """BCI packet: [1 beep unplugged nosignal SS3..0] [0 pleth] [0 PR7 search nofinger bar3..0]
    [0 PR6..0] [0 SpO2]."""
    b1 = 0x80 | (strength & 0x0F)
    b1 |= (0x10 if no_signal else 0) | (0x20 if probe_unplugged else 0) | (0x40 if beep else 0)
    b3 = (bar & 0x0F) | (0x10 if no_finger else 0) | (0x20 if searching else 0)
    b3 |= (pr >> 1) & 0x40
    return bytes((b1, pleth & 0x7F, b3, pr & 0x7F, spo2 & 0x7F))


class BerryMedEncoder:
    """BerryMed BCI stream at 100 Hz (v1.2) or 50 Hz (v1.1).

    Finger out: no-finger bit, pleth/bar/strength 0, PR 255, SpO2 127. Probe unplugged: also the
    probe-unplugged bit (vector 13; the real flag combination is UNCONFIRMED). Loss of track: the
    pulse-search bit with invalid values.
    """

    def __init__(self, *, rate_hz: int = BCI_RATE_HZ_V12, baud: int = BCI_DEFAULT_BAUD) -> None:
        if rate_hz <= 0:
            raise ValueError("BCI rate must be > 0")
        self.name = "berrymed"
        self.period_s = 1.0 / rate_hz
        self.link = LinkSettings(baud)
        self._last_beat: int | None = None
        self._beep_left = 0

    def encode(self, state: PatientState, t_s: float) -> bytes:
        if state.beat != self._last_beat:
            self._beep_left = BCI_BEEP_PACKETS
        self._last_beat = state.beat
        beep = self._beep_left > 0 and not state.signal_lost and not state.searching
        self._beep_left = max(0, self._beep_left - 1)
        if state.signal_lost:
            return bci_packet(
                0, 0, 0, BCI_PR_INVALID, BCI_SPO2_INVALID,
                probe_unplugged=state.sensor_off, no_finger=True,
            )  # fmt: skip
        strength = BCI_STRENGTH[state.perfusion]
        pleth = _clamp(1 + round(state.pleth * 99), 1, 100)
        bar = _clamp(round(state.pleth * 15), 1, 15)
        if state.searching:
            return bci_packet(
                strength, pleth, bar, BCI_PR_INVALID, BCI_SPO2_INVALID, searching=True
            )
        pr = _clamp(state.pr, 0, 254)
        return bci_packet(strength, pleth, bar, pr, _clamp(state.spo2, 0, 100), beep=beep)


# --------------------------------------------------------------------------------------------
# Masimo Rad-8 ASCII 1 (protocols.md 1.9 and vectors 22/23)

MASIMO_BAUD = 9600
MASIMO_LINE_PERIOD_S = 1.0  # real ASCII 1 lines arrive about once per second (S22)
MASIMO_DEFAULT_SN = "0000012345"
MASIMO_DEFAULT_START = _dt.datetime(2025, 1, 1, 12, 0, 0)  # timestamp of the first line
MASIMO_EOL = b"\r\n"  # CR LF: UNCONFIRMED (S21)
# EXC bits (S21, UNCONFIRMED)
EXC_NO_SENSOR = 0x001
EXC_DEFECTIVE_SENSOR = 0x002
EXC_LOW_PERFUSION = 0x004
EXC_PULSE_SEARCH = 0x008
EXC_INTERFERENCE = 0x010
EXC_SENSOR_OFF = 0x020


def masimo_line(
    when: _dt.datetime,
    sn: str,
    spo2: int | None,
    bpm: int | None,
    pi: float | None,
    exc: int = 0,
    alarm: int = 0,
    eol: bytes = MASIMO_EOL,
) -> bytes:
    """One ASCII 1 line; None -> dashes. SpCO/SpMet/DESAT/PIDELTA are always absent."""
    s = "---" if spo2 is None else f"{spo2:03d}"
    b = "---" if bpm is None else f"{bpm:03d}"
    p = "--.--" if pi is None else f"{min(pi, 99.99):05.2f}"
    text = (
        f"{when:%m/%d/%y %H:%M:%S} SN={sn} SPO2={s}% BPM={b} PI={p}% SPCO=--.-% SPMET=--.-%"
        f" DESAT=-- PIDELTA=+-- ALARM={alarm:04X} EXC={exc:06X}"
    )
    return text.encode("ascii") + eol


class MasimoEncoder:
    """Masimo Rad-8 ASCII 1 lines, one per ``period_s``; ALARM is always 0000 (the Rad-8's own
    alarms are not modelled). Finger out: EXC sensor off; unplugged: no sensor + sensor off."""

    def __init__(
        self,
        *,
        sn: str = MASIMO_DEFAULT_SN,
        start: _dt.datetime = MASIMO_DEFAULT_START,
        period_s: float = MASIMO_LINE_PERIOD_S,
        eol: bytes = MASIMO_EOL,
    ) -> None:
        self.name = "masimo"
        self.period_s = period_s
        self.link = LinkSettings(MASIMO_BAUD)
        self.sn = sn
        self.start = start
        self.eol = eol

    def encode(self, state: PatientState, t_s: float) -> bytes:
        when = self.start + _dt.timedelta(seconds=int(t_s))
        exc = 0
        if state.sensor_off:
            exc |= EXC_NO_SENSOR | EXC_SENSOR_OFF
        elif state.no_finger:
            exc |= EXC_SENSOR_OFF
        if not state.signal_lost:
            if state.low_perfusion:
                exc |= EXC_LOW_PERFUSION
            if state.searching:
                exc |= EXC_PULSE_SEARCH
            if state.artifact:
                exc |= EXC_INTERFERENCE
        if state.signal_lost or state.searching:
            return masimo_line(when, self.sn, None, None, None, exc, eol=self.eol)
        return masimo_line(
            when, self.sn, _clamp(state.spo2, 0, 100), _clamp(state.pr, 0, 999), state.pi, exc,
            eol=self.eol,
        )  # fmt: skip


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


def make_encoder(fmt: str, *, baud: int | None = None) -> StreamEncoder:
    """Encoder for a format name in OXIMETER_FORMATS, with its named defaults.

    ``baud`` overrides the line speed (only BerryMed's is uncertain; others warn by design)."""
    enc: StreamEncoder
    if fmt == "nonin2":
        enc = NoninEncoder("nonin2")
    elif fmt == "nonin7":
        enc = NoninEncoder("nonin7")
    elif fmt == "nonin1":
        enc = Nonin1Encoder()
    elif fmt == "berrymed":
        enc = BerryMedEncoder()
    elif fmt == "masimo":
        enc = MasimoEncoder()
    else:
        choices = ", ".join(OXIMETER_FORMATS)
        raise ValueError(f"unknown oximeter format {fmt!r} (choose from {choices})")
    if baud is not None:
        enc.link = LinkSettings(baud, enc.link.bytesize, enc.link.parity, enc.link.stopbits)
    return enc
