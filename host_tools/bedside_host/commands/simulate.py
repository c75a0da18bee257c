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
from dataclasses import dataclass
from types import FrameType
from typing import Any

import serial

from bedside_host.sim.encoders import (
    DEFAULT_FORMAT,
    OXIMETER_FORMATS,
    Emitter,
    LinkSettings,
    make_encoder,
)
from bedside_host.sim.faults import SYNTAX as FAULT_SYNTAX
from bedside_host.sim.faults import FaultInjector, FaultSpec, parse_fault
from bedside_host.sim.patient import DEFAULT_SCENARIO, SCENARIOS, Patient
from bedside_host.sim.suntech import BAUD as NIBP_BAUD
from bedside_host.sim.suntech import (
    DEFAULT_DURATION_S,
    MAX_CUFF_MMHG,
    SuntechConfig,
    SuntechEmulator,
)

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


_FAULT_HELP = FAULT_SYNTAX.replace("%", "%%")  # argparse %-formats help strings


def _fault(text: str) -> FaultSpec:
    try:
        return parse_fault(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _scenario(text: str) -> str:
    if text in SCENARIOS or text.endswith(".toml"):
        return text
    raise argparse.ArgumentTypeError(
        f"unknown scenario {text!r} (choose from {', '.join(sorted(SCENARIOS))}, or a .toml file)"
    )


def _error_code(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an error code: {text!r} (e.g. 0x57 or 87)"
        ) from None
    if not 0 <= v <= 255:
        raise argparse.ArgumentTypeError(f"error code must be 0..255: {text!r}")
    return v


def _mmhg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pressure in mmHg: {text!r}") from None
    if not 1 <= v <= MAX_CUFF_MMHG:
        raise argparse.ArgumentTypeError(f"cuff pressure must be 1..{MAX_CUFF_MMHG}: {text!r}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "scenarios:\n"
        + "\n".join(f"  {name:16} {sc.description}" for name, sc in sorted(SCENARIOS.items()))
        + (
            "\n\nexample (with `bedside sil`):\n"
            "  bedside simulate --oximeter /dev/pts/5 --nibp /dev/pts/7 --scenario desat\n"
            "\nNIBP cuff stuck inflated (neonate limit 150 mmHg), the first 2 aborts ignored:\n"
            "  bedside simulate --nibp /dev/pts/7 --nibp-cuff-stuck 290 --nibp-ignore-aborts 2"
        )
    )
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
        type=_scenario,
        default=DEFAULT_SCENARIO,
        metavar="NAME|FILE",
        help=f"patient course: a name below (default {DEFAULT_SCENARIO}) or a bench scenario"
        " file (.toml, docs/scenarios.md): its physiology, faults and NIBP module played in"
        " real time, each injection and operator action printed",
    )
    parser.add_argument(
        "--host",
        metavar="PORT",
        help="with a scenario file: the device's host port, for its host actions and faults",
    )
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="scenario time runs FACTOR x wall time; wire rates stay real (default 1)",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="SPEC",
        help=f"inject a fault (repeatable): {_FAULT_HELP}; e.g. garbage:0.01,"
        " silence:30-40, corrupt:2%%@nibp",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter and faults")
    parser.add_argument(
        "--duration", type=_positive_float, metavar="S", help="stop after S seconds"
    )
    nibp = parser.add_argument_group("SunTech NIBP emulator")
    nibp.add_argument(
        "--nibp-error",
        type=_error_code,
        default=0,
        metavar="EC",
        help="error code reported by every measurement, e.g. 0x57 leak (default 0)",
    )
    nibp.add_argument(
        "--nibp-bps", type=_error_code, default=1, metavar="N", help="BP status byte (default 1)"
    )
    nibp.add_argument(
        "--nibp-duration",
        type=_positive_float,
        default=DEFAULT_DURATION_S,
        metavar="S",
        help=f"measurement duration, start to 'K' (default {DEFAULT_DURATION_S:g}; UNCONFIRMED)",
    )
    nibp.add_argument(
        "--nibp-stuck", action="store_true", help="fault: never send the completion 'K'"
    )
    nibp.add_argument(
        "--nibp-cuff-stuck",
        type=_mmhg,
        metavar="MMHG",
        help="fault: every measurement inflates the cuff to MMHG and holds it there (no 'K');"
        " only an abort deflates it",
    )
    nibp.add_argument(
        "--nibp-ignore-aborts",
        type=_count,
        default=0,
        metavar="N",
        help="fault: the first N aborts of each measurement are answered 'A' but leave the"
        " cuff inflated (a stuck valve); a later abort deflates it (default 0)",
    )
    nibp.add_argument(
        "--nibp-mute-after",
        type=_positive_float,
        metavar="S",
        help="fault: stop answering S seconds into a measurement (for good)",
    )
    nibp.add_argument(
        "--nibp-silent-bad-checksum",
        action="store_true",
        help="do not reply 'N' to a bad checksum (real behaviour UNCONFIRMED)",
    )
    parser.add_argument("--quiet", action="store_true", help="no status lines on stderr")


@dataclass
class Port:
    role: str
    url: str
    ser: Any  # serial.SerialBase
    written: int = 0
    stalls: int = 0

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
    if args.scenario.endswith(".toml"):
        return _run_file(args)
    if args.host:
        raise UsageError("--host goes with a scenario file (--scenario FILE.toml)")
    if not args.oximeter and not args.nibp:
        raise UsageError("give at least one of --oximeter PORT, --nibp PORT")
    if any(f.stream == "nibp" for f in args.fault) and not args.nibp:
        raise UsageError("a fault @nibp needs --nibp PORT")
    if any(f.stream == "oximeter" for f in args.fault) and not args.oximeter:
        raise UsageError("an oximeter fault needs --oximeter PORT (use @nibp for the NIBP port)")
    patient = Patient(args.scenario, seed=args.seed)
    sim = _Sim(args, patient)
    try:
        if args.oximeter:
            try:
                encoder = make_encoder(args.oximeter_format, baud=args.baud)
            except ValueError as e:
                raise UsageError(str(e)) from None
            sim.oxi = open_port("oximeter", args.oximeter, encoder.link)
            sim.emitter = Emitter(encoder, patient.state, speed=args.speed)
            sim.oxi_faults = FaultInjector(args.fault, args.seed, "oximeter")
        if args.nibp:
            sim.nibp = open_port("nibp", args.nibp, LinkSettings(NIBP_BAUD))
            cfg = SuntechConfig(
                duration_s=args.nibp_duration,
                error_code=args.nibp_error,
                bps=args.nibp_bps,
                bad_checksum_reply=not args.nibp_silent_bad_checksum,
                never_send_k=args.nibp_stuck,
                mute_after_s=args.nibp_mute_after,
                cuff_stuck_mmhg=args.nibp_cuff_stuck,
                ignore_aborts=args.nibp_ignore_aborts,
            )
            speed = args.speed
            sim.emulator = SuntechEmulator(lambda t: patient.state(t * speed), cfg)
            sim.nibp_faults = FaultInjector(args.fault, args.seed, "nibp")
        stop = _Stop()
        old = _install_signals(stop)
        try:
            sim.loop(stop)
        finally:
            for sig, handler in old:
                signal.signal(sig, handler)
    finally:
        for p in (sim.oxi, sim.nibp):
            if p is not None:
                p.ser.close()
    if not args.quiet:
        print(sim.status(sim.t) + "  (stopped)", file=sys.stderr, flush=True)
    return 0


def _run_file(args: argparse.Namespace) -> int:
    """Play a bench scenario file by hand: the Stimulus in real time on the ports given."""
    from bedside_host.bench.scenario import ScenarioError, load_scenario
    from bedside_host.bench.stimulus import Stimulus

    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    if not args.oximeter and not args.nibp:
        raise UsageError("give at least one of --oximeter PORT, --nibp PORT")
    stim = Stimulus(sc)
    oxi = open_port("oximeter", args.oximeter, stim.encoder.link) if args.oximeter else None
    nibp = open_port("nibp", args.nibp, LinkSettings(NIBP_BAUD)) if args.nibp else None
    link = None
    if args.host:
        from bedside_host.link.client import DeviceLink

        link = DeviceLink(args.host, operator="simulate")
    print(f"scenario {sc.id}: {sc.title} ({sc.duration_s:g} s, {sc.oximeter_format})", flush=True)
    for name, value in sorted(sc.settings.items()):
        print(f"  needs setting {name} = {value}", flush=True)
    stop = _Stop()
    old = _install_signals(stop)
    start = time.monotonic()
    end = min(sc.duration_s, args.duration or sc.duration_s)
    actions = list(sc.actions)
    shown = 0
    try:
        while not stop.flag:
            t = time.monotonic() - start
            if t >= end:
                break
            rx = b""
            if nibp is not None:
                try:
                    rx = bytes(nibp.ser.read(4096))
                except (serial.SerialException, OSError):
                    rx = b""
            o, n = stim.step(t, rx)
            if oxi is not None:
                oxi.write(o)
            if nibp is not None:
                nibp.write(n)
            while actions and actions[0].at_s <= t:
                a = actions.pop(0)
                stim.log.append(f"t={t:7.2f}s  action: {_perform(a, link)}")
            if link is not None and not stim.host_silent(t):
                link.poll(0.0)
            for line in stim.log[shown:]:
                print(line, flush=True)
            shown = len(stim.log)
            time.sleep(TICK_S)
    finally:
        for sig, handler in old:
            signal.signal(sig, handler)
        for p in (oxi, nibp):
            if p is not None:
                p.ser.close()
        if link is not None:
            link.close()
    print(f"stopped at t={time.monotonic() - start:.1f}s: {stim.oxi_bytes} oximeter bytes,"
          f" {stim.nibp_bytes} NIBP bytes sent", flush=True)  # fmt: skip
    return 0


def _perform(a: Any, link: Any) -> str:
    """An operator action of a scenario file: host actions are sent when --host is given,
    keys are prompted (the person at the bench presses them)."""
    from bedside_host.bench.runner import KEY_WORDS, Target, _do_action

    if a.do in KEY_WORDS:
        return f"PRESS {a.do.upper()} on the device now ({a.describe()})"
    if link is None:
        return f"{a.describe()} (not sent: no --host)"
    return f"{a.describe()} -> " + _do_action(Target(), link, a, a.at_s)


class _Sim:
    def __init__(self, args: argparse.Namespace, patient: Patient) -> None:
        self.args = args
        self.patient = patient
        self.oxi: Port | None = None
        self.nibp: Port | None = None
        self.emitter: Emitter | None = None
        self.emulator: SuntechEmulator | None = None
        self.oxi_faults = FaultInjector([])
        self.nibp_faults = FaultInjector([])
        self.t = 0.0
        self._log_seen = 0

    def step(self, t: float) -> None:
        self.t = t
        if self.emitter is not None and self.oxi is not None:
            self.oxi.write(self.oxi_faults.apply(self.emitter.emit_until(t), t))
        if self.emulator is not None and self.nibp is not None:
            try:
                data = self.nibp.ser.read(4096)
            except (serial.SerialException, OSError):
                data = b""  # e.g. pty peer not open yet
            if data:
                self.emulator.feed(bytes(data), t)
            self.nibp.write(self.nibp_faults.apply(self.emulator.poll(t), t))
            if not self.args.quiet:
                for line in self.emulator.log[self._log_seen :]:
                    print(f"t={t:6.1f}s  nibp: {line}", file=sys.stderr, flush=True)
            self._log_seen = len(self.emulator.log)

    def status(self, t: float) -> str:
        st = self.patient.state(t * self.args.speed)
        parts = [f"t={t:6.1f}s", self.args.scenario, f"SpO2 {st.spo2}", f"PR {st.pr}"]
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
        if self.oxi is not None:
            parts.append(self._port_text("oxi", self.oxi, self.oxi_faults))
        if self.nibp is not None and self.emulator is not None:
            emu = self.emulator
            cuff = f"cuff {emu.cuff_pressure(t)} mmHg" if emu.measuring else "idle"
            parts.append(
                f"nibp {cuff}, {emu.commands} cmds, {emu.measurements} done"
                + self._port_text("", self.nibp, self.nibp_faults)
            )
        return "  ".join(parts)

    @staticmethod
    def _port_text(label: str, port: Port, faults: FaultInjector) -> str:
        text = f"{label} {port.written} B" if label else ""
        if port.stalls:
            text += f" ({port.stalls} write stalls)"
        if faults:
            text += f" ({faults.injected} B faulted)"
        return text

    def loop(self, stop: _Stop) -> None:
        args = self.args
        start = time.monotonic()
        next_status = 0.0
        tick = 0
        while not stop.flag:
            t = time.monotonic() - start
            if args.duration is not None and t >= args.duration:
                break
            self.step(t)
            if not args.quiet and t >= next_status:
                print(self.status(t), file=sys.stderr, flush=True)
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
