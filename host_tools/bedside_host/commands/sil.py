"""``bedside sil``: run the firmware core in software-in-the-loop with a PC board layer.

Contract (docs/sil.md; tests/test_sil.py): prints exactly one JSON line naming the device-side
paths a peer must open, then keeps stdout for logs; sounder and LEDs go to the annunciator log
as JSON lines; buttons are read from stdin one word per line (ack, reset, check, nibp); flash
files live in --state-dir; SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import queue
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn, TextIO

from bedside_host import ensure_firmware_on_path, keys
from bedside_host.sil.capture import CaptureWriter, CapturingStream
from bedside_host.sil.pcboard import (
    AnnunciatorLog,
    DirStore,
    DisplayLog,
    LogLeds,
    LogSounder,
    PtyStream,
    SerialStream,
    Stream,
    open_stream,
)

ensure_firmware_on_path()

from bedside import auth as fw_auth  # noqa: E402
from bedside import settings as fw_settings  # noqa: E402
from bedside.alarms.conditions import PRIORITY_NAMES  # noqa: E402
from bedside.buttons import K_ACK, K_CHECK, K_NIBP  # noqa: E402
from bedside.device import TICK_MS, Device  # noqa: E402
from bedside.hostlink import HOST_BAUD  # noqa: E402
from bedside.mainloop import MainLoop  # noqa: E402
from bedside.sensors import OXIMETER_FORMATS, oximeter_link  # noqa: E402
from bedside.sensors.suntech import BAUD as NIBP_BAUD  # noqa: E402
from bedside.ticks import MASK  # noqa: E402

HELP = "run the firmware core in software-in-the-loop (ptys, annunciator log, stdin buttons)"
# stdin word -> (key levels held, ms held): the SIL presses the same keys as a nurse, through
# the same debounce and key mapping the Pico runs (bedside.buttons.Keys via MainLoop).
PRESSES: dict[str, tuple[int, int]] = {
    "ack": (K_ACK, 150),
    "reset": (K_ACK, 1700),
    "check": (K_CHECK, 150),
    "nibp": (K_NIBP, 150),
    "selftest": (K_CHECK | K_NIBP, 3200),
    "check_hold": (K_CHECK, 1700),  # the session's MOAA/S score entry (docs/session.md)
    "nibp_hold": (K_NIBP, 1700),  # the session's infusion start/stop, confirmed by check
}
BUTTONS = tuple(PRESSES)
RELEASE_MS = 100  # keys released between two presses
KEY_QUEUE = 16  # words waiting; more are dropped (and counted): a flood never stalls the loop
RUNNING_MARK = "sil.running"  # present while running: found at start = unclean stop
BOARD_ID_FILE = "board.id"  # the simulated board's unique id (hello `device`)
LOCK_FILE = "sil.lock"  # flock()ed while running: one `bedside sil` per state directory


def _provision_self(state_dir: Path, store: DirStore) -> tuple[str | None, str | None]:
    """The SIL's board id (kept in the state directory, like a Pico's unique id) and its
    command key: made on first start and stored as `bedside provision` would (the device file
    through the flash store, the host copy in the host's key directory), so DeviceLink signs
    for it (docs/sil.md). A state directory that cannot be written: no id, no key (the device
    then refuses state-changing commands: not provisioned)."""
    id_file = state_dir / BOARD_ID_FILE
    try:
        device_id = id_file.read_text().strip() if id_file.exists() else ""
        if not device_id:
            device_id = "sil-" + secrets.token_hex(6)
            id_file.write_text(device_id + "\n")
        raw = store.read(fw_auth.KEY_FILE)
        if raw is None:
            key = keys.new_key()
            store.write(fw_auth.KEY_FILE, fw_auth.auth_file(key.hex().encode()))
        else:
            parsed = fw_auth.parse_key(bytes(raw)[9:-1])
            if parsed is None:
                return device_id, None  # corrupt: the device says so (key_unreadable)
            key = parsed
        if keys.load_key(device_id) != key:
            keys.save_key(device_id, key)
    except (OSError, ValueError) as e:
        return None, f"sil: no command key ({e}): state-changing commands will be refused"
    return device_id, None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--oximeter", metavar="PORT", help="oximeter port or pyserial URL (default: a pty)"
    )
    p.add_argument("--nibp", metavar="PORT", help="NIBP module port or URL (default: a pty)")
    p.add_argument("--host", metavar="PORT", help="host link port or URL (default: a pty)")
    p.add_argument(
        "--annunciator-log",
        metavar="FILE",
        help="sounder/LED JSON-lines log, appended (- = stdout)",
    )
    p.add_argument(
        "--state-dir", metavar="DIR", help="flash files (default: a temporary directory)"
    )
    p.add_argument(
        "--display-file",
        metavar="FILE",
        help="OLED frames: each changed frame appended as a JSON line "
        '{"t_ms", "lines" (8 x 16 chars), "tall", "inverse"}, at most 4 a second',
    )
    p.add_argument(
        "--oximeter-format",
        choices=sorted(OXIMETER_FORMATS),
        help="oximeter wire format (setting oxi_format)",
    )
    p.add_argument(
        "--nibp-patient",
        choices=fw_settings.SPEC["nibp_patient"][1],
        help="NIBP patient type (setting nibp_patient)",
    )
    p.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override a setting at start (responsible-organisation level)",
    )
    p.add_argument(
        "--capture",
        metavar="FILE",
        help="write the raw bytes read from the oximeter, NIBP and host ports and the key "
        "presses, with times, to FILE (JSON lines; `bedside replay FILE` runs a firmware "
        "build over it)",
    )
    p.add_argument(
        "--clock-start-ms",
        type=int,
        default=0,
        metavar="MS",
        help="first tick value (tests start just below the 2**30 wrap)",
    )


class Clock:
    """Milliseconds since start, and the wrap-aware 30-bit tick the core sees; `tick_ms` is the
    time since start at the last tick() (what the annunciator log stamps)."""

    def __init__(self, start_tick: int) -> None:
        self._t0 = time.monotonic()
        self._start_tick = start_tick
        self.tick_ms = 0.0

    def since_start_ms(self) -> float:
        return (time.monotonic() - self._t0) * 1000.0

    def tick(self) -> int:
        self.tick_ms = self.since_start_ms()
        return int((self._start_tick + int(self.tick_ms)) & MASK)


def _fail(msg: str) -> NoReturn:
    """A start-up problem: one line on stderr, exit 2 (docs/sil.md)."""
    print(f"bedside sil: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _parse_overrides(items: list[str], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in fw_settings.SPEC:
            _fail(f"--set wants NAME=VALUE with a known setting, not {item!r}")
        value: Any = text
        if not fw_settings.is_choice(name):
            try:
                value = int(text)
            except ValueError:
                _fail(f"{name} wants a whole number, not {text!r}")
        err = fw_settings.check(name, value)
        if err:
            _fail(err)
        out[name] = value
    if args.oximeter_format:
        out["oxi_format"] = args.oximeter_format
    if args.nibp_patient:
        out["nibp_patient"] = args.nibp_patient
    return out


def _stdin_reader(q: queue.Queue[str | None], stream: TextIO) -> None:
    dropped = 0
    for line in stream:
        try:
            q.put_nowait(line.strip())
        except queue.Full:
            dropped += 1
            if dropped in (1, 10, 100, 1000, 10000):
                _log(f"sil: key queue full, {dropped} words dropped")
    q.put(None)


class KeyPresser:
    """Turns stdin words into key levels over time, one press after another."""

    def __init__(self) -> None:
        self.levels = 0
        self.word: str | None = None  # the word of the press now held (None: released)
        self._until = 0.0

    def step(self, t_ms: float, words: queue.Queue[str | None]) -> int:
        if t_ms < self._until:
            return self.levels
        if self.levels:  # a press ended: release before the next one
            self.levels = 0
            self.word = None
            self._until = t_ms + RELEASE_MS
            return 0
        try:
            word = words.get_nowait()
        except queue.Empty:
            return 0
        if not word:
            return 0
        press = PRESSES.get(word)
        if press is None:
            _log(f"sil: unknown button {word!r}; use one of {', '.join(BUTTONS)}")
            return 0
        _log(f"sil: button {word}")
        self.word = word
        self.levels, held = press
        self._until = t_ms + held
        return self.levels


def _start_capture(
    args: argparse.Namespace, settings: Any, reset_cause: str, device_id: str | None
) -> CaptureWriter:
    """The capture file with its header (format version, oximeter format, settings in force)."""
    from bedside import VERSION as fw_version

    defaults = fw_settings.defaults()
    values = dict(settings.values)
    header = {
        "oximeter_format": settings["oxi_format"],
        "clock_start_ms": args.clock_start_ms & MASK,
        "reset_cause": reset_cause,
        "firmware": fw_version,
        "device": device_id,  # the board id: `bedside replay` signs with its key when it has it
        "settings": values,
        "changed": {k: v for k, v in values.items() if defaults.get(k) != v},
    }
    try:
        return CaptureWriter(args.capture, header)
    except OSError as e:
        print(f"bedside sil: cannot write --capture {args.capture}: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _log(msg: str) -> None:
    print(msg, flush=True)


def _lock_state_dir(state_dir: Path) -> int:
    """An exclusive flock on the state directory's lock file, held until the process ends.
    A read-only directory (it runs with STORAGE_FAULT) is locked through the lock file if it
    exists there, else through the directory itself."""
    fd = -1
    for path, flags in (
        (state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT),
        (state_dir / LOCK_FILE, os.O_RDONLY),
        (state_dir, os.O_RDONLY),
    ):
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
            break
        except OSError:
            continue
    if fd < 0:
        _fail(f"cannot use --state-dir {state_dir}: it cannot be opened")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        _fail(f"--state-dir {state_dir} is in use by another bedside sil (one per directory)")
    return fd


def _open_append(path: str, option: str) -> TextIO:
    """A log file opened for appending (a rerun never truncates it), or exit 2."""
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as e:
        _fail(f"cannot write {option} {path}: {e.strerror or e}")


def run(args: argparse.Namespace) -> int:
    overrides = _parse_overrides(args.set, args)
    ann_path = None if args.annunciator_log in (None, "-") else args.annunciator_log
    log_file = _open_append(ann_path, "--annunciator-log") if ann_path else None
    display_file = _open_append(args.display_file, "--display-file") if args.display_file else None
    temp_dir = None if args.state_dir else tempfile.mkdtemp(prefix="bedside-sil-")
    state_dir = Path(args.state_dir) if args.state_dir else Path(str(temp_dir))
    if state_dir.exists() and not state_dir.is_dir():
        print(f"bedside sil: --state-dir {state_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        store = DirStore(state_dir)
    except OSError as e:
        print(f"bedside sil: cannot use --state-dir {state_dir}: {e}", file=sys.stderr)
        return 2
    _lock_state_dir(state_dir)  # released by the kernel when the process ends, however
    mark = state_dir / RUNNING_MARK
    reset_cause = "unclean" if mark.exists() else "power_on"
    warning = None
    try:  # a read-only or full flash must not stop the device: it raises STORAGE_FAULT
        mark.write_text("running\n")
    except OSError as e:
        warning = f"sil: state directory not writable ({e}); running with STORAGE_FAULT"

    device_id, key_warning = _provision_self(state_dir, store)
    if key_warning:
        warning = f"{warning}\n{key_warning}" if warning else key_warning

    settings = fw_settings.read_settings(store)
    err = settings.set_many(overrides, fw_settings.ORG)
    if err:
        print(f"bedside sil: {err}", file=sys.stderr)
        return 2
    fmt = settings["oxi_format"]
    baud, bits, parity = oximeter_link(settings)
    oxi: PtyStream | SerialStream | CapturingStream  # --capture: wrapped below
    nibp: PtyStream | SerialStream | CapturingStream
    host: PtyStream | SerialStream | CapturingStream
    try:
        oxi = open_stream(args.oximeter, baud, bytesize=bits, parity=parity)
        nibp = open_stream(args.nibp, NIBP_BAUD)
        host = open_stream(args.host, HOST_BAUD)
    except Exception as e:  # serial.SerialException, OSError, ValueError
        print(f"bedside sil: cannot open port: {e}", file=sys.stderr)
        return 2
    capture = _start_capture(args, settings, reset_cause, device_id) if args.capture else None
    if capture is not None:  # the device reads through the recording wrappers
        oxi, nibp = capture.wrap(oxi, "oximeter"), capture.wrap(nibp, "nibp")
        host = capture.wrap(host, "host")  # the operator's commands, as the device reads them
    streams: list[Stream] = [oxi, nibp, host]
    print(json.dumps({"oximeter": oxi.path, "nibp": nibp.path, "host": host.path}), flush=True)
    if warning:
        _log(warning)  # after the ports line: the first line stays the contract's JSON

    clock = Clock(args.clock_start_ms & MASK)
    if capture is not None:
        capture.clock = clock
    log_out = sys.stdout if args.annunciator_log == "-" else log_file
    alog = AnnunciatorLog(log_out, clock)
    screen = DisplayLog(display_file, clock) if display_file is not None else None

    stop = threading.Event()

    def _stop(_sig: int, _frm: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    buttons: queue.Queue[str | None] = queue.Queue(maxsize=KEY_QUEUE)
    threading.Thread(target=_stdin_reader, args=(buttons, sys.stdin), daemon=True).start()

    try:
        dev = Device(
            clock.tick(),
            oxi,
            host,
            LogSounder(alog),
            LogLeds(alog),
            store=store,
            nibp_uart=nibp,
            reset_cause=reset_cause,
            settings=settings,
            device_id=device_id or "",
        )
    except ValueError as e:
        print(f"bedside sil: {e}", file=sys.stderr)
        return 2
    # power-on self-test records are marked (dev.selftest: the running test, None after it)
    alog.selftest = lambda: dev.selftest is not None and bool(dev.selftest.running)
    _log(f"sil: running, oximeter format {fmt}, state in {state_dir}, reset cause {reset_cause}")
    period = TICK_MS / 1000.0
    next_t = time.monotonic()
    loop = MainLoop(dev, screen)
    presser = KeyPresser()
    held = 0
    playing: Any = None
    try:
        while not stop.is_set():
            now = clock.tick()
            levels = presser.step(clock.tick_ms, buttons)
            if levels != held:
                held = levels
                if capture is not None:
                    capture.keys(levels, presser.word)
            loop.step(now, levels)
            sig = dev.annunciator.playing()
            if sig != playing:  # the pattern in force changed: one "signal" record
                playing = sig
                alog.write(
                    {
                        "dev": "signal",
                        "on": bool(sig[0] or sig[1] or sig[2]),
                        "auditory": PRIORITY_NAMES[sig[0]],
                        "visual": PRIORITY_NAMES[sig[1]],
                        "audio_off": bool(sig[2]),
                        "reminder_min": settings["audio_off_reminder_min"],
                    }
                )
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_t = time.monotonic()  # overran: do not try to catch up in a burst
    finally:
        if dev.annunciator.tone_on:
            dev.annunciator.sounder.off()
        for st in streams:
            st.close()
        if log_file is not None:
            log_file.close()
        if display_file is not None:
            display_file.close()
        try:
            mark.unlink(missing_ok=True)
        except OSError:
            pass
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
            if device_id:  # a throw-away device: its host key goes with it
                try:
                    keys.forget(device_id)
                except (OSError, ValueError):
                    pass
        _log("sil: stopped")
    return 0
