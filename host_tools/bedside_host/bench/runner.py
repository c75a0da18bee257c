"""Run a scenario against a device: the firmware core in virtual time, the SIL, or a real Pico.

One loop for all three (``run_scenario``): every tick the Stimulus says what the modules send,
the target delivers it, operator actions happen at their times, and the device's host-link
messages are collected through DeviceLink (the one host-side client; commands go through
DeviceLink.send). Targets differ only in how bytes, keys and time reach the device:

- VirtualTarget: bedside.device.Device driven by bedside.mainloop.MainLoop in-process, the
  clock advanced 10 ms per tick (no sleeping): hours of infusion in seconds. The sounder, LEDs
  and display are recorded with their virtual times.
- SilTarget: starts ``bedside sil`` and drives its ptys in real time; keys go to its stdin; the
  annunciator log and display file are read back.
- PortTarget: a real Pico through USB-UART adapters wired to its sensor UARTs and its USB host
  port; keys are pressed by a jig command (``--keys``) or by the operator when prompted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import serial

from bedside_host import ensure_firmware_on_path
from bedside_host.bench.scenario import Action, Scenario
from bedside_host.bench.stimulus import Stimulus
from bedside_host.link.client import DeviceLink
from bedside_host.link.messages import LinkProblem, Received
from bedside_host.link.transport import PortGone, Transport

ensure_firmware_on_path()

from bedside import VERSION as FW_VERSION  # noqa: E402
from bedside import settings as fw_settings  # noqa: E402
from bedside.alarms.patterns import COLOR_NAMES  # noqa: E402
from bedside.buttons import EVENTS  # noqa: E402
from bedside.display import Display  # noqa: E402
from bedside.ticks import MASK  # noqa: E402

TICK_S = 0.01
FAST_STEP_MS = 50  # virtual target: tick length while nothing needs 10 ms
LINK_POLL_MS = 500  # virtual target: DeviceLink polled this often (messages carry t_ms)
VIRTUAL_EPOCH = 1_800_000_000.0  # wall time a virtual run pretends to start at
KEY_WORDS = tuple(e for e in EVENTS if e)


class BenchError(Exception):
    """The run could not be set up or went wrong (the scenario's outcome is ERROR)."""


class SkipScenario(Exception):
    """The device lacks what the scenario requires (its outcome is SKIP)."""


@dataclass
class Observation:
    """Everything seen during one scenario run, on the scenario's time axis (s)."""

    scenario: Scenario
    mode: str
    stimulus: Stimulus
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    annunciator: list[tuple[float, dict[str, Any]]] | None = None
    display: list[tuple[float, list[str]]] | None = None
    actions: list[tuple[float, Action, str]] = field(default_factory=list)
    sent: list[tuple[float, int]] = field(default_factory=list)  # (action at_s, command id)
    device: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    gaps: int = 0
    wall_s: float = 0.0
    start_wall: float = 0.0

    def alarm_events(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m.get("type") == "alarm"]

    def heartbeats(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m.get("type") == "heartbeat"]

    def of_type(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m.get("type") == kind]


# --- in-process fakes for the virtual target ------------------------------------------------


class _Port:
    """A device UART fed by the bench: reads return what was pushed; writes are kept."""

    def __init__(self) -> None:
        self.rx = bytearray()
        self.tx = bytearray()

    def readinto(self, buf: Any) -> int | None:
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def write(self, data: Any) -> int:
        self.tx += bytes(data)
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.tx)
        self.tx.clear()
        return out


class _VirtualTransport(Transport):
    """DeviceLink's transport bound to the in-process device's host port."""

    def __init__(self, port: _Port) -> None:
        super().__init__("virtual:")
        self.port = port
        self._up = False

    @property
    def is_open(self) -> bool:
        return self._up

    def open(self) -> None:
        self._up = True

    def read(self, timeout: float = 0.0) -> bytes:
        if not self._up:
            raise PortGone("port not open")
        return self.port.take()

    def write(self, data: bytes) -> None:
        if not self._up:
            raise PortGone("port not open")
        self.port.rx += data

    def close(self) -> None:
        self._up = False


class _Recorder:
    """Sounder and LEDs that record each change with the virtual time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.log: list[tuple[float, dict[str, Any]]] = []
        self.on = False
        self.state = [False] * len(COLOR_NAMES)
        self.selftest: Callable[[], bool] = lambda: False

    def _rec(self, rec: dict[str, Any]) -> None:
        if self.selftest():
            rec["selftest"] = True
        self.log.append((self.clock(), rec))

    # sounder
    def tone(self, hz: int, duty: int) -> None:
        self.on = True
        self._rec({"dev": "buzzer", "on": True, "hz": hz, "duty": duty})

    def off(self) -> None:
        self.on = False
        self._rec({"dev": "buzzer", "on": False})

    # leds
    def set(self, color: int, on: bool) -> None:
        self.state[color] = bool(on)
        self._rec({"dev": "led", "color": COLOR_NAMES[color], "on": bool(on)})


class _Leds:
    def __init__(self, rec: _Recorder) -> None:
        self._rec = rec
        self.state = rec.state

    def set(self, color: int, on: bool) -> None:
        self._rec.set(color, on)


class _Screen:
    """The OLED in virtual time: renders at most every 250 ms, keeps each changed frame."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.view = Display()
        self.frames: list[tuple[float, list[str]]] = []
        self.errors = 0
        self._next = 0.0

    def update(self, dev: Any, now: int) -> None:
        t = self.clock()
        if t < self._next:
            return
        self._next = t + 0.25
        self.view.render(dev, now)
        if self.view.changed:
            self.frames.append((t, list(self.view.lines)))


class _MemStore:
    """Flash files in memory (the store interface of bedside.alarmlog / persist); `failing`:
    every write and append raises OSError, as a worn-out or full flash does."""

    def __init__(self, files: dict[str, bytes] | None = None, failing: bool = False) -> None:
        self.files: dict[str, bytearray] = {k: bytearray(v) for k, v in (files or {}).items()}
        self.failing = failing

    def read(self, name: str) -> bytes | None:
        f = self.files.get(name)
        return None if f is None else bytes(f)

    def size(self, name: str) -> int | None:
        f = self.files.get(name)
        return None if f is None else len(f)

    def read_into(self, name: str, offset: int, buf: Any) -> int:
        f = self.files.get(name)
        if f is None:
            return 0
        chunk = f[offset : offset + len(buf)]
        buf[: len(chunk)] = chunk
        return len(chunk)

    def write(self, name: str, data: bytes) -> None:
        if self.failing:
            raise OSError(5, "flash write failed (bench: failing flash)")
        self.files[name] = bytearray(data)

    def append(self, name: str, data: bytes) -> None:
        if self.failing:
            raise OSError(5, "flash append failed (bench: failing flash)")
        self.files.setdefault(name, bytearray()).extend(data)


CORRUPT_SETTINGS = b"0badc0de {not the settings file\n"  # a torn write: checksum mismatch


def has_session_commands() -> bool:
    """Whether this firmware tree has the infusion-session commands (issue 11)."""
    from bedside.commands import TABLE

    return "session" in TABLE


class Target:
    """How bytes, keys and time reach one device (see the module doc)."""

    mode = "?"
    realtime = True
    poll_every = 1  # ticks between DeviceLink polls

    def inject_exception(self) -> None:
        raise BenchError(f"a core exception cannot be injected on the {self.mode} target")

    def restart(self, t: float) -> str:
        raise BenchError(f"the device cannot be restarted by the bench on the {self.mode} target")

    def has_session(self) -> bool:
        return has_session_commands()

    def start(self, sc: Scenario) -> DeviceLink:
        raise NotImplementedError

    def wait_until(self, t: float) -> None:
        pass

    def tick(self, t: float) -> None:
        pass

    def step_ms(self) -> int:
        """Milliseconds to the next tick: the main loop's 10 ms, or (virtual) longer while
        nothing on the device needs finer time."""
        return 10

    def write(self, stream: str, data: bytes) -> None:
        raise NotImplementedError

    def read_nibp(self) -> bytes:
        raise NotImplementedError

    def key(self, word: str, t: float) -> str:
        raise NotImplementedError

    def sim_time(self, item: Received) -> float:
        raise NotImplementedError

    def finish(self, obs: Observation) -> None:
        pass

    def close(self) -> None:
        pass


class VirtualTarget(Target):
    """The firmware core in-process in virtual time (for CI). ``device_hook(dev)`` may alter the
    device before the run (the fault-injection proof breaks a rule or adds a delay this way)."""

    mode = "virtual"
    realtime = False
    poll_every = 10

    def __init__(
        self, device_hook: Callable[[Any], None] | None = None, fast: bool = True
    ) -> None:
        self.device_hook = device_hook
        self.fast = fast
        self.t = 0.0
        self._now = 0
        self._boot_at: dict[Any, float] = {}  # boot counter -> virtual time of that boot

    def start(self, sc: Scenario) -> DeviceLink:
        from bedside import auth as fw_auth

        # a provisioned device (docs/protocol.md "Authentication"): a fresh key on its flash,
        # and the same key for the link, which signs the state-changing commands with it
        key = secrets.token_bytes(32)
        files = {fw_auth.KEY_FILE: fw_auth.auth_file(key.hex().encode())}
        if sc.start_mode == "corrupt_settings":
            files[fw_settings.SETTINGS_FILE] = CORRUPT_SETTINGS
        store = _MemStore(files, failing=sc.flash == "failing")
        settings = fw_settings.read_settings(store)
        wanted = dict(sc.settings)
        wanted["oxi_format"] = sc.oximeter_format
        err = settings.set_many(wanted, fw_settings.ORG)
        if err:
            raise BenchError(f"settings refused by the firmware: {err}")
        self.start_tick = ((1 << 30) - 30_000) & MASK  # starts just below the tick wrap
        self.oxi = _Port()
        self.nibp = _Port()
        self.host = _Port()
        self.rec = _Recorder(lambda: self.t)
        self.screen = _Screen(lambda: self.t)
        self.store, self.settings = store, settings
        self._boot(self.start_tick, "unclean" if sc.start_mode == "restart" else "power_on")
        from bedside_host.commands.sil import PRESSES, RELEASE_MS

        self._presses = PRESSES
        self._release_ms = RELEASE_MS
        self._keyq: list[str] = []
        self._levels = 0
        self._until = 0.0
        link = DeviceLink("virtual:", clock=lambda: self.t, wall=lambda: VIRTUAL_EPOCH + self.t)
        link._transport = _VirtualTransport(self.host)  # the in-process host port
        link.use_key(key)
        return link

    def _boot(self, now: int, cause: str) -> None:
        from bedside.device import Device
        from bedside.mainloop import MainLoop

        self.dev = Device(
            now,
            self.oxi,
            self.host,
            self.rec,
            _Leds(self.rec),
            store=self.store,
            nibp_uart=self.nibp,
            settings=self.settings,
            reset_cause=cause,
        )
        self._boot_at[self.dev.boot] = self.t  # messages carry t_ms since their boot
        dev = self.dev  # dev.selftest: the power-on self-test while it runs, then None
        self.rec.selftest = lambda: dev.selftest is not None and bool(dev.selftest.running)
        if self.device_hook is not None:
            self.device_hook(self.dev)
        self.loop = MainLoop(self.dev, self.screen)

    def restart(self, t: float) -> str:
        """Power lost and back: a new Device on the same flash (the store keeps what the
        write-behind queue had written; the settings are those on flash), the sounder and LEDs
        off, the same UARTs and host port; the clock goes on."""
        self.t = t
        self._now = (self.start_tick + round(t * 1000.0)) & MASK
        self.rec.off()
        for color in range(len(COLOR_NAMES)):
            self.rec.set(color, False)
        self._boot(self._now, "unclean")
        return "restarted (same flash)"

    def tick(self, t: float) -> None:
        self.t = t
        ms = t * 1000.0
        if ms >= self._until:
            if self._levels:
                self._levels = 0
                self._until = ms + self._release_ms
            elif self._keyq:
                self._levels, held = self._presses[self._keyq.pop(0)]
                self._until = ms + held
        self._now = (self.start_tick + round(ms)) & MASK
        self.loop.step(self._now, self._levels)

    def step_ms(self) -> int:
        """10 ms while a key is pressed or a sounder pulse is due within 60 ms; else 50 ms
        (FAST_STEP_MS): the core sees a slower but regular main loop (as a busy Pico's), its
        decisions keep their rules' resolution (100 ms), and quiet hours run 5 x faster."""
        if not self.fast or self._levels or self._keyq:
            return 10
        if self.dev.annunciator.quiet_ms(self._now) < 60:
            return 10
        return FAST_STEP_MS

    def write(self, stream: str, data: bytes) -> None:
        if data:
            (self.oxi if stream == "oximeter" else self.nibp).rx += data

    def inject_exception(self) -> None:
        """The oximeter decoder raises once (a caught fault: CORE_FAULT, alarms go on)."""
        dec = self.dev.decoder
        feed = dec.feed

        def boom(*args: Any) -> int:
            dec.feed = feed
            raise RuntimeError("bench: injected core exception")

        dec.feed = boom

    def read_nibp(self) -> bytes:
        return self.nibp.take()

    def key(self, word: str, t: float) -> str:
        self._keyq.append(word)
        return "pressed"

    def sim_time(self, item: Received) -> float:
        since = self._boot_at.get(item.msg.get("boot"), 0.0)
        return since + float(item.msg.get("t_ms", 0)) / 1000.0

    def finish(self, obs: Observation) -> None:
        obs.annunciator = list(self.rec.log)
        obs.display = list(self.screen.frames)
        obs.settings = dict(self.dev.settings.values)
        obs.device = {"dut_id": "virtual", "fw": FW_VERSION, "target": "firmware core in-process"}


class _RealTime(Target):
    def __init__(self) -> None:
        self.t0 = 0.0
        self.wall0 = 0.0
        self.link: DeviceLink | None = None

    def begin_clock(self) -> None:
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def wait_until(self, t: float) -> None:
        delay = self.t0 + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def sim_time(self, item: Received) -> float:
        w = item.wall_time if item.wall_time is not None else item.rx_time
        return w - self.wall0

    def _live(self, link: DeviceLink, timeout: float = 10.0) -> None:
        if not link.wait_live(timeout):
            raise BenchError(f"the device on {link.url} did not answer hello ({link.last_error})")

    def _apply_settings(self, link: DeviceLink, sc: Scenario) -> dict[str, Any]:
        """Bring operator settings to the scenario's values; ORG ones must already match."""
        reply = link.request("get_settings", timeout=5.0)
        have: dict[str, Any] = dict(reply.get("settings") or {})
        wanted = dict(sc.settings)
        wanted["oxi_format"] = sc.oximeter_format
        for name, value in wanted.items():
            if have.get(name) == value:
                continue
            if fw_settings.SPEC[name][4] != fw_settings.OPERATOR:
                raise BenchError(
                    f"device setting {name} is {have.get(name)!r}, the scenario needs {value!r}"
                    " (an organisation setting: configure the device first)"
                )
            link.request("set", timeout=5.0, name=name, value=value, by="bench")
            have[name] = value
        return have


class SilTarget(_RealTime):
    """Starts `bedside sil` (fresh state directory per scenario) and drives its ptys."""

    mode = "sil"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__()
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None
        self.fds: dict[str, int] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self, sc: Scenario) -> DeviceLink:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bedside-bench-")
            base = Path(self._tmp.name)
        else:
            base = self.workdir
        work = base / sc.id
        work.mkdir(parents=True, exist_ok=True)
        self.ann = work / "annunciator.jsonl"
        self.disp = work / "display.jsonl"
        for p in (self.ann, self.disp):
            p.unlink(missing_ok=True)
        state = work / "state"
        if state.exists():
            import shutil

            shutil.rmtree(state)
        state.mkdir(parents=True)
        if sc.start_mode == "restart":
            (state / "sil.running").write_text("running\n")  # as after an unclean stop
        elif sc.start_mode == "corrupt_settings":
            (state / fw_settings.SETTINGS_FILE).write_bytes(CORRUPT_SETTINGS)
        if sc.flash != "ok":
            raise BenchError("a failing flash cannot be injected into the SIL from the bench")
        args = [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "sil",
            "--annunciator-log",
            str(self.ann),
            "--display-file",
            str(self.disp),
            "--state-dir",
            str(work / "state"),
            "--oximeter-format",
            sc.oximeter_format,
        ]
        for name, value in sc.settings.items():
            args += ["--set", f"{name}={value}"]
        env = dict(os.environ)
        # the SIL runs this very tree (host tools and, through them, firmware/), never another
        # copy an installed package or the caller's environment would point to
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [here, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
        )
        self.errlog = open(work / "sil.log", "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errlog,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            self.proc.wait(timeout=10)
            raise BenchError(f"bedside sil did not start; see {work / 'sil.log'}")
        ports: dict[str, str] = json.loads(first)
        out = self.proc.stdout
        threading.Thread(target=_drain, args=(out, self.errlog), daemon=True).start()
        for k in ("oximeter", "nibp"):
            self.fds[k] = os.open(ports[k], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        link = DeviceLink(ports["host"], operator="bench")
        self.link = link  # closed by close() even if the device never answers
        self._live(link)
        self.settings = self._apply_settings(link, sc)
        self.begin_clock()
        return link

    def write(self, stream: str, data: bytes) -> None:
        if data:
            try:
                os.write(self.fds[stream], data)
            except BlockingIOError:
                pass

    def read_nibp(self) -> bytes:
        try:
            return os.read(self.fds["nibp"], 4096)
        except (BlockingIOError, OSError):
            return b""

    def key(self, word: str, t: float) -> str:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return "pressed (SIL stdin)"

    def finish(self, obs: Observation) -> None:
        link = self.link
        self._keep_messages(obs, link)
        obs.settings = dict(self.settings)
        hello = link.hello if link is not None else None
        obs.device = {
            "dut_id": "sil",
            "fw": (hello or {}).get("fw", "?"),
            "target": "bedside sil (firmware core, PC board layer)",
        }
        obs.annunciator = self._read_log(self.ann, obs, link)
        frames = self._read_log(self.disp, obs, link)
        obs.display = [(t, list(r.get("lines", []))) for t, r in frames]

    def _keep_messages(self, obs: Observation, link: DeviceLink | None) -> None:
        """Beside the annunciator and display logs: every device message the bench saw, on
        the scenario's time axis, then the link's counters and state changes (messages.jsonl),
        so a failed expectation can be traced to what arrived and when."""
        path = self.ann.with_name("messages.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t, m in obs.messages:
                f.write(json.dumps({"t_s": round(t, 3), "msg": m}, separators=(",", ":")) + "\n")
            if link is not None:
                f.write(json.dumps({"link": dataclasses.asdict(link.stats), "gaps": obs.gaps,
                                    "states": [list(x) for x in link.state_log]}) + "\n")

    def _read_log(
        self, path: Path, obs: Observation, link: DeviceLink | None
    ) -> list[tuple[float, dict[str, Any]]]:
        out: list[tuple[float, dict[str, Any]]] = []
        if not path.exists():
            return out
        boot = link.boot if link is not None else None
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            t_ms = rec.get("t_ms", 0)
            w = (
                link.wall_time(boot, int(t_ms))
                if (link is not None and boot is not None)
                else None
            )
            if w is None:
                continue
            out.append((w - self.wall0, rec))
        return out

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = {}
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stdin is not None:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            self.proc = None
        if getattr(self, "errlog", None) is not None:
            self.errlog.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _drain(src: IO[str], dst: IO[str]) -> None:
    try:
        for line in src:
            dst.write(line)
    except (OSError, ValueError):
        pass


class PortTarget(_RealTime):
    """A real Pico: the simulator on USB-UART adapters wired to its oximeter and NIBP UARTs,
    the host link on its USB port. Keys: `keys` is a command run with the key word appended
    (a relay jig, or with the SIL standing in, a writer to its stdin); without it the operator
    is prompted on stderr and the press is taken from the device's `button` message."""

    mode = "ports"

    def __init__(
        self,
        oximeter: str,
        nibp: str,
        host: str,
        keys: list[str] | None = None,
        dut_id: str = "",
    ) -> None:
        super().__init__()
        self.urls = {"oximeter": oximeter, "nibp": nibp, "host": host}
        self.keys = keys
        self.dut_id = dut_id
        self.ports: dict[str, Any] = {}
        self._session = False

    def start(self, sc: Scenario) -> DeviceLink:
        from bedside.sensors.suntech import BAUD as NIBP_BAUD

        from bedside_host.sim.encoders import make_encoder

        link = DeviceLink(self.urls["host"], operator="bench")
        self.link = link  # closed by close() even if the device never answers
        self._live(link)
        self.settings = self._apply_settings(link, sc)
        try:
            link.request("get_session", timeout=3.0)
            self._session = True
        except LinkProblem:
            self._session = False
        enc = make_encoder(sc.oximeter_format)
        baud = int(self.settings.get("oxi_baud") or 0) or enc.link.baud
        try:
            self.ports["oximeter"] = serial.serial_for_url(
                self.urls["oximeter"], baudrate=baud, timeout=0, write_timeout=0.2
            )
            self.ports["nibp"] = serial.serial_for_url(
                self.urls["nibp"], baudrate=NIBP_BAUD, timeout=0, write_timeout=0.2
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise BenchError(f"cannot open a simulator port: {e}") from None
        self.begin_clock()
        return link

    def write(self, stream: str, data: bytes) -> None:
        if data:
            try:
                self.ports[stream].write(data)
            except serial.SerialTimeoutException:
                pass

    def read_nibp(self) -> bytes:
        p = self.ports["nibp"]
        n = p.in_waiting
        return bytes(p.read(n)) if n else b""

    def key(self, word: str, t: float) -> str:
        if self.keys:
            try:
                subprocess.run([*self.keys, word], timeout=5, check=True)
            except (OSError, subprocess.SubprocessError) as e:
                return f"key command failed: {e}"
            return "pressed (key command)"
        print(f"\a*** t={t:.1f}s: press {word.upper()} on the device now ***", file=sys.stderr)
        return "operator prompted"

    def has_session(self) -> bool:
        return self._session

    def finish(self, obs: Observation) -> None:
        hello = self.link.hello if self.link is not None else None
        obs.settings = dict(self.settings)
        obs.device = {
            "dut_id": self.dut_id or _usb_serial(self.urls["host"]) or self.urls["host"],
            "fw": (hello or {}).get("fw", "?"),
            "target": "device on " + ", ".join(f"{k} {v}" for k, v in self.urls.items()),
        }

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        for p in self.ports.values():
            p.close()
        self.ports = {}


def _usb_serial(port: str) -> str | None:
    """The USB serial number of a port (the Pico's unique id), for the record's DUT id."""
    from serial.tools import list_ports

    real = os.path.realpath(port)
    for p in list_ports.comports():
        if p.device in (port, real) and p.serial_number:
            return f"usb:{p.serial_number}"
    return None


# --- the one loop ----------------------------------------------------------------------------


def _do_action(
    target: Target, link: DeviceLink, a: Action, t: float, obs: Observation | None = None
) -> str:
    try:
        if a.do == "restart":
            try:
                return target.restart(t)
            except BenchError as e:  # bedside simulate: a real device is not restarted
                return f"not done: {e}"
        if a.do in KEY_WORDS:
            return target.key(a.do, t)
        if a.do == "stat":
            link.send("nibp", action="start")
        elif a.do == "nibp_stop":
            link.send("nibp", action="stop")
        elif a.do == "audio_off":
            link.send("audio_off", on=True, lease_s=a.fields["lease_s"])
        elif a.do == "audio_on":
            link.send("audio_off", on=False)
        elif a.do == "set":
            link.send("set", name=a.fields["name"], value=a.fields["value"], by="bench")
        elif a.do == "test_alarm":
            link.send("selftest", priority=a.fields["priority"])
        elif a.do == "session":
            rid = link.send("session", op=a.fields["op"], by="bench", **a.fields["args"])
            if obs is not None:
                obs.sent.append((a.at_s, rid))  # the reply is judged by this id
        return "sent"
    except LinkProblem as e:
        return f"not sent: {e}"


def run_scenario(
    sc: Scenario,
    target: Target,
    *,
    on_log: Callable[[str], None] | None = None,
) -> Observation:
    """Run one scenario on target; returns what was observed (judge it with verdict.judge)."""
    stim = Stimulus(sc)
    obs = Observation(sc, target.mode, stim)
    wall0 = time.perf_counter()
    try:
        link = target.start(sc)
    except LinkProblem as e:
        target.close()
        raise BenchError(f"device setup failed: {e}") from None
    except BaseException:
        target.close()
        raise
    try:
        if "session" in sc.requires and not target.has_session():
            raise SkipScenario("the device has no infusion-session commands (issue 11)")
        _loop(sc, target, link, stim, obs, on_log)
        target.finish(obs)
        obs.start_wall = getattr(target, "wall0", VIRTUAL_EPOCH) or VIRTUAL_EPOCH
    finally:
        target.close()
    obs.wall_s = time.perf_counter() - wall0
    return obs


def _collect(link: DeviceLink, target: Target, obs: Observation) -> None:
    for item in link.poll(0.0):
        if isinstance(item, Received):
            if item.msg.get("type") == "log":
                continue
            obs.messages.append((target.sim_time(item), item.msg))
        else:
            obs.gaps += 1


def _loop(
    sc: Scenario,
    target: Target,
    link: DeviceLink,
    stim: Stimulus,
    obs: Observation,
    on_log: Callable[[str], None] | None,
) -> None:
    end_ms = round(sc.duration_s * 1000)
    actions = list(sc.actions)
    ai = 0
    garbage = [f for f in sc.faults if f.kind == "host_garbage"]
    next_garbage = {id(f): f.at_s for f in garbage}
    logged = 0
    boom = [f for f in sc.faults if f.kind == "core_exception"]
    # times the loop must land on exactly (a longer virtual step stops short of them)
    marks = sorted(
        {round(a.at_s * 1000) for a in actions}
        | {round(f.at_s * 1000) for f in sc.faults}
        | {round(f.end_s * 1000) for f in sc.faults if f.end_s is not None}
    )
    mi = 0
    if not target.realtime:
        link.poll(0.0)  # connect: the hello goes out before the first tick
    t_ms = 0
    next_poll = 0
    while t_ms <= end_ms:
        t = t_ms / 1000.0
        target.wait_until(t)
        oxi, nibp = stim.step(t, target.read_nibp())
        target.write("oximeter", oxi)
        target.write("nibp", nibp)
        for f in garbage:
            if f.active(t) and t >= next_garbage[id(f)]:
                next_garbage[id(f)] = t + 1.0 / f.rate_hz
                try:
                    link._transport.write(b'{"cmd": \x00\xff garbage\n')  # a bad line on the wire
                except PortGone:
                    pass
        for f in list(boom):
            if t >= f.at_s:
                boom.remove(f)
                target.inject_exception()
        while ai < len(actions) and actions[ai].at_s <= t + 1e-9:
            a = actions[ai]
            ai += 1
            res = _do_action(target, link, a, t, obs)
            obs.actions.append((t, a, res))
            stim.log.append(f"t={t:7.2f}s  action: {a.describe()} -> {res}")
        target.tick(t)
        if t_ms >= next_poll and not stim.host_silent(t):
            next_poll = t_ms + (LINK_POLL_MS if not target.realtime else 0)
            _collect(link, target, obs)
        if on_log is not None and len(stim.log) > logged:
            for line in stim.log[logged:]:
                on_log(line)
            logged = len(stim.log)
        step = target.step_ms()
        while mi < len(marks) and marks[mi] <= t_ms:
            mi += 1
        if mi < len(marks) and marks[mi] - t_ms < step:
            step = max(10, marks[mi] - t_ms)
        t_ms += step
    if target.realtime:
        time.sleep(0.3)  # the last reports on their way
    for _ in range(3):
        _collect(link, target, obs)
