"""SunTech Advantage OEM NIBP module emulator (protocols.md section 2.1).

A pure object: ``feed(bytes, now_s)`` takes host bytes, ``poll(now_s)`` returns the bytes the
module sends by then. No ports and no clock of its own, so it is testable step by step.

Framing: host ``':' CMD.. CHK`` (no length byte), module ``'>' LEN DATA.. CHK`` with LEN counting
the whole packet; both checksums make the packet sum to 0 mod 256. Multi-byte values are LE.
Everything the reference marks UNCONFIRMED (measurement duration, reply to a bad checksum, field
contents on error, BPS values) is a ``SuntechConfig`` field with a named default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bedside_host import ensure_firmware_on_path
from bedside_host.sim.patient import PatientState

ensure_firmware_on_path()

# the one source of the NIBP link speed (re-exported for `bedside simulate`)
from bedside.sensors.suntech import BAUD as BAUD  # noqa: E402

CMD_START = 0x3A  # ':'
RSP_START = 0x3E  # '>'

# command opcode -> total command length in bytes (start, opcode, data, CHK)
OPCODE_LEN: dict[int, int] = {
    0x20: 3,  # start BP, adult
    0x87: 3,  # start BP, pediatric
    0x28: 3,  # start BP, neonate
    0x79: 5,  # 0x79 sub-commands (abort, get data, get cuff, ...)
    0x17: 5,  # set initial inflate pressure, uint16 LE
    0x00: 3,  # get module data (S32 only, UNCONFIRMED: answered with 'K')
}
START_MODES: dict[int, str] = {0x20: "adult", 0x87: "pediatric", 0x28: "neonate"}
SUB_ABORT = (0x01, 0x00)
SUB_GET_DATA = (0x03, 0x00)
SUB_GET_CUFF = (0x05, 0x00)
SUB_RETURN_STRING = (0x02, 0x40)  # S32 only, UNCONFIRMED: LEN 0x43, text starting "LX"

EC_OK = 0x00
EC_ABORTED = 0x56  # reading aborted by user
EC_LEAK = 0x57  # inflate timeout, air leak or loose cuff
BPS_VALID = 0x01

# Named defaults for UNCONFIRMED behaviour
DEFAULT_DURATION_S = 35.0  # typical duration UNCONFIRMED (only host timeouts are known)
DEFAULT_INITIAL_INFLATE = 160  # mmHg, adult; S33 sends 160
MODE_INFLATE: dict[str, int] = {"pediatric": 120, "neonate": 100}  # UNCONFIRMED, plausible
# Highest pressure a healthy module inflates to per mode (UNCONFIRMED, plausible), below the
# firmware's cuff limits (CUFF_LIMITS: 300 / 250 / 150) so that only a fault goes above them.
MODE_MAX_INFLATE: dict[str, int] = {"adult": 280, "pediatric": 230, "neonate": 140}
MAX_CUFF_MMHG = 999  # highest pressure a fault option may hold the cuff at
INFLATE_RATE_MMHG_S = 40.0
DEFLATE_STEP_MMHG = 8
DUMP_S = 1.5  # final deflation to 0
VERSION_TEXT = "LX SIMULATED ADVANTAGE"  # return string text; "LX" prefix per S32 (UNCONFIRMED)


def checksum(data: bytes) -> int:
    """CHK making the whole packet sum to 0 mod 256 (both directions)."""
    return (0x100 - (sum(data) & 0xFF)) & 0xFF


def command(*body: int) -> bytes:
    """A host command ``3A body.. CHK`` (e.g. command(0x20) == 3A 20 A6)."""
    b = bytes((CMD_START, *body))
    return b + bytes((checksum(b),))


def packet(data: bytes) -> bytes:
    """A module packet ``3E LEN data CHK``; LEN counts the whole packet."""
    b = bytes((RSP_START, len(data) + 3)) + data
    return b + bytes((checksum(b),))


def status_packet(char: str) -> bytes:
    """``3E 04 <char> CHK``: 'O' = 3E 04 4F 6F, 'K' = 3E 04 4B 73; also A B E N D S T."""
    return packet(char.encode("ascii"))


def cuff_packet(mmhg: int) -> bytes:
    """Reply to get-cuff-pressure: ``3E 05 Plo Phi CHK``, signed int16 LE."""
    return packet((mmhg & 0xFFFF).to_bytes(2, "little"))


@dataclass(frozen=True)
class BpResult:
    sys: int = 0
    dia: int = 0
    beats: int = 0
    bps: int = 0
    tc: bytes = bytes(8)
    hr: int = 0
    map: int = 0
    ec: int = 0


def bp_packet(r: BpResult) -> bytes:
    """The 24-byte BP data packet (offsets per protocols.md 2.1; HR as uint16 LE at 16..17)."""
    tc = (r.tc + bytes(8))[:8]
    data = (
        r.sys.to_bytes(2, "little")
        + r.dia.to_bytes(2, "little")
        + bytes((r.beats & 0xFF, r.bps & 0xFF))
        + tc
        + r.hr.to_bytes(2, "little")
        + r.map.to_bytes(2, "little")
        + bytes((r.ec & 0xFF, 0, 0))
    )
    return packet(data)


ErrorFields = Literal["zero", "values"]


@dataclass
class SuntechConfig:
    duration_s: float = DEFAULT_DURATION_S  # total measurement, start to 'K'
    error_code: int = EC_OK  # EC reported for every measurement (e.g. 0x57 leak)
    bps: int = BPS_VALID  # BP status for a successful measurement (others UNCONFIRMED)
    error_fields: ErrorFields = "zero"  # SYS/DIA/... on error: zeros (vector 21) or values
    bad_checksum_reply: bool = True  # reply 'N' to a bad checksum (False: stay silent)
    never_send_k: bool = False  # fault: measurement never completes with 'K' (stuck)
    cuff_stuck_mmhg: int | None = None  # fault: inflate to this and hold it; no 'K'; only an
    # abort that is not ignored deflates the cuff
    ignore_aborts: int = 0  # fault: the first N aborts of each measurement are answered 'A'
    # but do not deflate the cuff (a stuck valve); a later abort deflates it
    mute_after_s: float | None = None  # fault: stop answering this long into a measurement
    mute_for_s: float | None = None  # ... for this long (None: for good)
    reply_delay_s: float = 0.02  # module latency before each reply
    k_delay_s: float = 0.2  # 'K' after set-initial-inflate / abort
    receive_timeout_s: float | None = 1.0  # incomplete command older than this -> 'T'
    initial_inflate: int = DEFAULT_INITIAL_INFLATE


@dataclass
class _Measurement:
    mode: str
    start_s: float
    target: int
    inflate_s: float
    step_s: float
    steps: int
    end_s: float
    leak: bool
    dump_s: float = DUMP_S
    aborted_at: float | None = None
    abort_p: float = 0.0
    stuck: bool = False  # cuff_stuck_mmhg: hold `target` after inflating, never end by itself
    aborts_ignored: int = 0


@dataclass
class SuntechEmulator:
    """SunTech Advantage emulator. ``state_at(now_s)`` gives the patient for the readings."""

    state_at: Callable[[float], PatientState]
    config: SuntechConfig = field(default_factory=SuntechConfig)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rx = bytearray()
        self._rx_t = 0.0  # when the pending partial command started
        self._out: list[tuple[float, bytes]] = []
        self._m: _Measurement | None = None
        self._result = BpResult()  # before any measurement: all zero, BPS 0
        self._initial = self.config.initial_inflate
        self._mute_from: float | None = None
        self.measurements = 0
        self.commands = 0
        self.rejected = 0

    # -- time ---------------------------------------------------------------------------------

    @property
    def measuring(self) -> bool:
        return self._m is not None

    def muted(self, now_s: float) -> bool:
        if self._mute_from is None or now_s < self._mute_from:
            return False
        d = self.config.mute_for_s
        return d is None or now_s < self._mute_from + d

    def _send(self, now_s: float, data: bytes, delay: float | None = None) -> None:
        d = self.config.reply_delay_s if delay is None else delay
        self._out.append((now_s + d, data))

    def _advance(self, now_s: float) -> None:
        m = self._m
        if m is None:
            return
        end = m.end_s if m.aborted_at is None else m.aborted_at + DUMP_S
        if now_s >= end:
            self._m = None
            if m.aborted_at is None:
                self._finish(m, now_s)

    def _finish(self, m: _Measurement, now_s: float) -> None:
        cfg = self.config
        st = self.state_at(m.end_s)
        deflate_s = m.steps * m.step_s
        ok = cfg.error_code == EC_OK
        if ok or cfg.error_fields == "values":
            self._result = BpResult(
                sys=st.sys,
                dia=st.dia,
                beats=min(255, round(st.pr * deflate_s / 60.0)),
                bps=cfg.bps if ok else 0,
                hr=st.pr,
                map=st.map,
                ec=cfg.error_code,
            )
        else:
            self._result = BpResult(ec=cfg.error_code)
        self.measurements += 1
        self.log.append(f"measurement done: {self._result}")
        if not cfg.never_send_k and not self.muted(now_s):
            self._send(max(now_s, m.end_s), status_packet("K"), 0.0)

    def cuff_pressure(self, now_s: float) -> int:
        """Cuff pressure (mmHg) that a poll at ``now_s`` reports."""
        m = self._m
        if m is None:
            return 0
        if m.aborted_at is not None:
            tau = now_s - m.aborted_at
            return max(0, round(m.abort_p * (1.0 - tau / DUMP_S)))
        return round(self._pressure(m, now_s))

    def _pressure(self, m: _Measurement, now_s: float) -> float:
        tau = now_s - m.start_s
        if tau < 0:
            return 0.0
        top = 25.0 if m.leak else float(m.target)
        if tau < m.inflate_s:
            return top * tau / m.inflate_s
        if m.stuck:
            return top
        tau -= m.inflate_s
        if m.leak:  # cuff never reaches pressure: plateau, then dump
            after = tau - m.steps * m.step_s
            return top if after < 0 else max(0.0, top * (1.0 - after / m.dump_s))
        k = min(int(tau / m.step_s), m.steps)
        if k >= m.steps:
            p0 = m.target - m.steps * DEFLATE_STEP_MMHG
            return max(0.0, p0 * (1.0 - (tau - m.steps * m.step_s) / m.dump_s))
        into = tau - k * m.step_s
        p = float(m.target - k * DEFLATE_STEP_MMHG)
        if k > 0 and into < 0.2:  # quick valve release from the previous step
            p += DEFLATE_STEP_MMHG * (1.0 - into / 0.2)
        st = self.state_at(now_s)
        if st.dia - 10 <= p <= st.sys + 10:  # oscillometric pulses on the plateau
            p += 1.5 * math.sin(2 * math.pi * st.pr / 60.0 * now_s)
        return p

    def _plan(self, mode: str, now_s: float) -> _Measurement:
        cfg = self.config
        st = self.state_at(now_s)
        if cfg.cuff_stuck_mmhg is not None:
            p = cfg.cuff_stuck_mmhg
            return _Measurement(
                mode=mode, start_s=now_s, target=p, inflate_s=max(0.1, p / INFLATE_RATE_MMHG_S),
                step_s=1.0, steps=1, end_s=math.inf, leak=False, stuck=True,
            )  # fmt: skip
        base = self._initial if mode == "adult" else MODE_INFLATE[mode]
        target = min(MODE_MAX_INFLATE[mode], max(base, st.sys + 25))
        # the whole measurement takes duration_s; very short settings compress every phase
        total = max(0.5, cfg.duration_s)
        inflate_s = min(target / INFLATE_RATE_MMHG_S, 0.3 * total)
        dump_s = min(DUMP_S, 0.1 * total)
        end_p = max(30, st.dia - 15)
        steps = max(1, math.ceil((target - end_p) / DEFLATE_STEP_MMHG))
        deflate_s = total - inflate_s - dump_s
        return _Measurement(
            mode=mode,
            start_s=now_s,
            target=target,
            inflate_s=inflate_s,
            step_s=deflate_s / steps,
            steps=steps,
            end_s=now_s + total,
            leak=cfg.error_code == EC_LEAK,
            dump_s=dump_s,
        )

    # -- I/O ----------------------------------------------------------------------------------

    def feed(self, data: bytes, now_s: float) -> None:
        self._advance(now_s)
        if self.muted(now_s):
            return
        self._check_timeout(now_s)
        if not self._rx and data:
            self._rx_t = now_s
        self._rx += data
        self._parse(now_s)

    def poll(self, now_s: float) -> bytes:
        self._advance(now_s)
        if not self.muted(now_s):
            self._check_timeout(now_s)
        due = [d for t, d in self._out if t <= now_s]
        self._out = [(t, d) for t, d in self._out if t > now_s]
        if self.muted(now_s):
            return b""
        return b"".join(due)

    def _check_timeout(self, now_s: float) -> None:
        limit = self.config.receive_timeout_s
        if self._rx and limit is not None and now_s - self._rx_t > limit:
            self._rx.clear()
            self.rejected += 1
            self.log.append("receive timeout")
            self._send(now_s, status_packet("T"))

    def _parse(self, now_s: float) -> None:
        rx = self._rx
        while rx:
            if rx[0] != CMD_START:
                i = rx.find(CMD_START)
                del rx[: len(rx) if i < 0 else i]  # noise between commands: skip
                continue
            if len(rx) < 2:
                return
            n = OPCODE_LEN.get(rx[1])
            if n is None:
                self.rejected += 1
                self.log.append(f"unknown command {rx[1]:02X}")
                self._send(now_s, status_packet("N"))
                del rx[:1]  # resynchronise on the next ':'
                continue
            if len(rx) < n:
                return
            cmd = bytes(rx[:n])
            del rx[:n]
            self._rx_t = now_s
            if sum(cmd) & 0xFF:
                self.rejected += 1
                self.log.append(f"bad checksum {cmd.hex(' ')}")
                if self.config.bad_checksum_reply:
                    self._send(now_s, status_packet("N"))
                continue
            self.commands += 1
            self._execute(cmd, now_s)

    def _execute(self, cmd: bytes, now_s: float) -> None:
        op = cmd[1]
        cfg = self.config
        if op in START_MODES:
            if self._m is not None:
                self._send(now_s, status_packet("B"))
                return
            self._m = self._plan(START_MODES[op], now_s)
            self._send(now_s, status_packet("O"))
            if cfg.mute_after_s is not None:
                self._mute_from = now_s + cfg.mute_after_s
            stuck = " and hold it (stuck)" if self._m.stuck else ""
            self.log.append(f"start {self._m.mode}: inflate to {self._m.target} mmHg{stuck}")
        elif op == 0x17:
            if self._m is not None:
                self._send(now_s, status_packet("B"))
                return
            self._initial = int.from_bytes(cmd[2:4], "little")
            self._send(now_s, status_packet("O"))
            self._send(now_s, status_packet("K"), cfg.k_delay_s)
        elif op == 0x00:
            self._send(now_s, status_packet("K"))
        elif op == 0x79:
            sub = (cmd[2], cmd[3])
            if sub == SUB_GET_CUFF:
                self._send(now_s, cuff_packet(self.cuff_pressure(now_s)))
            elif sub == SUB_GET_DATA:
                self._send(now_s, bp_packet(self._result))
            elif sub == SUB_ABORT:
                self._send(now_s, status_packet("A"))
                m = self._m
                if m is not None and m.aborted_at is None and m.aborts_ignored < cfg.ignore_aborts:
                    m.aborts_ignored += 1
                    self.log.append(
                        f"abort ignored ({m.aborts_ignored} of {cfg.ignore_aborts}), cuff"
                        f" {self.cuff_pressure(now_s)} mmHg"
                    )
                elif m is not None and m.aborted_at is None:
                    m.abort_p = float(self.cuff_pressure(now_s))
                    m.aborted_at = now_s
                    self._result = BpResult(ec=EC_ABORTED)
                    self._send(now_s, status_packet("K"), cfg.k_delay_s)
                    self.log.append("aborted")
            elif sub == SUB_RETURN_STRING:
                self._send(now_s, packet(VERSION_TEXT.encode("ascii").ljust(0x40, b"\0")))
            else:
                self._send(now_s, status_packet("D"))
