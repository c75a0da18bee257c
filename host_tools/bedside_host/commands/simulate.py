"""``bedside simulate``: drive the device with a simulated oximeter and SunTech NIBP module.

Runs in real time: oximeter units are scheduled from the start time against a monotonic clock
(no drift) and written in ~10 ms ticks; the SunTech emulator answers commands on ``--nibp``.
A status line goes to stderr every few seconds unless ``--quiet``. Stops at ``--duration``, on
SIGINT or SIGTERM. Exit 0 when stopped normally, 2 on a bad option or port.
Not a certified medical device: a bench tool.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import serial  # type: ignore[import-untyped]  # pyserial ships no stubs

from bedside_host.sim.encoders import (
    DEFAULT_FORMAT,
    OXIMETER_FORMATS,
    Emitter,
    LinkSettings,
    make_encoder,
)
from bedside_host.sim.patient import DEFAULT_SCENARIO, SCENARIOS, Patient

HELP = "simulate the pulse oximeter and SunTech NIBP module on serial ports (bench testing)"
TICK_S = 0.01
STATUS_EVERY_S = 5.0
WRITE_TIMEOUT_S = 0.2

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


class UsageError(Exception):
    """A bad option or port: reported in one line, exit status 2."""


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--oximeter", metavar="PORT", help="oximeter port (path or pyserial URL)")
    parser.add_argument(
        "--oximeter-format",
        choices=OXIMETER_FORMATS,
        default=DEFAULT_FORMAT,
        help=f"oximeter wire format (default {DEFAULT_FORMAT})",
    )
    parser.add_argument(
        "--baud",
        type=int,
        metavar="N",
        help="override the oximeter baud rate (BerryMed default 115200 is UNCONFIRMED for OEM"
        " boards; the others are documented)",
    )
    parser.add_argument("--nibp", metavar="PORT", help="SunTech NIBP port (path or pyserial URL)")
    parser.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default=DEFAULT_SCENARIO,
        help=f"patient course (default {DEFAULT_SCENARIO})",
    )
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="scenario time runs FACTOR x wall time; wire rates stay real (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter and faults")
    parser.add_argument(
        "--duration", type=_positive_float, metavar="S", help="stop after S seconds"
    )
    parser.add_argument("--quiet", action="store_true", help="no status lines on stderr")


@dataclass
class Port:
    role: str
    url: str
    ser: Any  # serial.SerialBase
    written: int = 0
    stalls: int = 0
    faults: list[str] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            n = self.ser.write(data)
            self.written += len(data) if n is None else int(n)
        except serial.SerialTimeoutException:
            self.stalls += 1  # nobody reading: drop this chunk, keep the schedule


def open_port(role: str, url: str, link: LinkSettings) -> Port:
    try:
        ser = serial.serial_for_url(
            url,
            baudrate=link.baud,
            bytesize=link.bytesize,
            parity=_PARITY[link.parity],
            stopbits=link.stopbits,
            timeout=0,
            write_timeout=WRITE_TIMEOUT_S,
        )
    except (serial.SerialException, OSError, ValueError) as e:
        raise UsageError(f"cannot open --{role} {url}: {e}") from None
    return Port(role, url, ser)


class _Stop:
    def __init__(self) -> None:
        self.flag = False
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.flag = True
        self.signum = signum


def _install_signals(stop: _Stop) -> list[tuple[signal.Signals, Any]]:
    if threading.current_thread() is not threading.main_thread():
        return []
    old: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        old.append((sig, signal.signal(sig, stop)))
    return old


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as e:
        print(f"bedside simulate: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if not args.oximeter and not args.nibp:
        raise UsageError("give at least one of --oximeter PORT, --nibp PORT")
    patient = Patient(args.scenario, seed=args.seed)
    ports: list[Port] = []
    emitter: Emitter | None = None
    oxi: Port | None = None
    try:
        if args.oximeter:
            try:
                encoder = make_encoder(args.oximeter_format, baud=args.baud)
            except ValueError as e:
                raise UsageError(str(e)) from None
            oxi = open_port("oximeter", args.oximeter, encoder.link)
            ports.append(oxi)
            emitter = Emitter(encoder, patient.state, speed=args.speed)
        if args.nibp:
            raise UsageError("--nibp is not implemented yet")
        stop = _Stop()
        old = _install_signals(stop)
        try:
            _loop(args, patient, emitter, oxi, stop)
        finally:
            for sig, handler in old:
                signal.signal(sig, handler)
    finally:
        for p in ports:
            p.ser.close()
    return 0


def _status(t: float, args: argparse.Namespace, patient: Patient, oxi: Port | None) -> str:
    st = patient.state(t * args.speed)
    parts = [f"t={t:6.1f}s", f"{args.scenario}", f"SpO2 {st.spo2}", f"PR {st.pr}"]
    flags = [
        n
        for n, on in (
            ("finger-out", st.no_finger and not st.sensor_off),
            ("unplugged", st.sensor_off),
            ("artifact", st.artifact),
            ("searching", st.searching),
            ("low-perf", st.low_perfusion),
        )
        if on
    ]
    if flags:
        parts.append("[" + ",".join(flags) + "]")
    parts.append(f"BP {st.sys}/{st.dia} ({st.map})")
    if oxi is not None:
        parts.append(f"oxi {oxi.written} B" + (f" ({oxi.stalls} stalls)" if oxi.stalls else ""))
    return "  ".join(parts)


def _loop(
    args: argparse.Namespace,
    patient: Patient,
    emitter: Emitter | None,
    oxi: Port | None,
    stop: _Stop,
) -> None:
    start = time.monotonic()
    next_status = 0.0
    tick = 0
    while not stop.flag:
        t = time.monotonic() - start
        if args.duration is not None and t >= args.duration:
            break
        if emitter is not None and oxi is not None:
            oxi.write(emitter.emit_until(t))
        if not args.quiet and t >= next_status:
            print(_status(t, args, patient, oxi), file=sys.stderr, flush=True)
            next_status += STATUS_EVERY_S
        # sleep to the next tick boundary measured from start: no accumulated drift; after a
        # stall skip the missed ticks (the emitter catches up on the bytes it owes)
        tick = max(tick + 1, int((time.monotonic() - start) / TICK_S) + 1)
        delay = start + tick * TICK_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bedside simulate", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
