"""`make bench` part "latency": alarm signal generation delay (issue 15 figure 1).

Virtual time through the core (CPython, the firmware core with board doubles, 10 ms ticks): for
every physiological condition, the data that makes it true is given to the device at tick T
(the whole oximeter packet, or the NIBP result packet, read in that tick's poll); the condition
is true from T + its configured condition delay; the figure is the number of ticks from then to
the first sounder tone (FakeSounder), the worst over several phases of the data against the
rule-evaluation cadence. Target: <= 1 tick.

End to end in the SIL (real time): `bedside sil` with Nonin Format #2 on a pty; after normal
data, a packet with SpO2 80 % (SPO2_DESAT, no condition delay): its first 24 frames are written,
then the decisive 25th frame (the one that completes the reading); the clock starts just before
the write of that frame's last byte and stops when this process reads the first `buzzer on`
line from the annunciator log, which is a FIFO here, so the read wakes as soon as the SIL
flushes the line. Both times are time.monotonic() in this process (CLOCK_MONOTONIC, one clock
for the whole machine), so no clock offset is involved; the delay includes the pty, the SIL's
main-loop period, the core, and the JSON log write (an upper bound on the signal delay).
Each trial then presses ACK (the SIL's stdin), which stops the HIGH burst at once, and feeds
normal data until the device reports SPO2_DESAT inactive, so the next trial is a new occurrence
and a trial takes well under a second instead of a whole burst.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in ("firmware", "host_tools", "tests/mp", "tools/mpbench", "tools"):
    sys.path.insert(0, str(ROOT / p))

import benchlib  # noqa: E402
from authkit import line, provision_store  # noqa: E402
from bedside.device import TICK_MS, Device  # noqa: E402
from bedside.settings import defaults  # noqa: E402
from bedside.ticks import ticks_add, ticks_diff  # noqa: E402
from fakes import Clock, FakeLeds, FakeSounder, FakeUart, MemStore  # noqa: E402
from mputil import nonin2_packet  # noqa: E402
from nibpmod import NibpModule  # noqa: E402

QUICK = benchlib.quick()
PHASES = 2 if QUICK else 10  # data offsets (ms) 0, 10, .. against the 100 ms rule cadence
TRIALS = 6 if QUICK else 105  # SIL trials (the first WARMUP are not counted)
WARMUP = 1 if QUICK else 5

# condition -> (oximeter (hr, spo2) or None, NIBP (sys, dia, map) or None, delay setting)
STIMULI: dict[str, tuple[tuple[int, int] | None, tuple[int, int, int] | None, str | None]] = {
    "SPO2_DESAT": ((72, 80), None, None),
    "SPO2_LOW": ((72, 88), None, "spo2_low_delay_s"),
    "PR_LOW": ((40, 97), None, "pr_delay_s"),
    "PR_HIGH": ((150, 97), None, "pr_delay_s"),
    "NIBP_SYS_HIGH": (None, (200, 100, 133), None),
    "NIBP_SYS_LOW": (None, (80, 50, 70), None),
    "NIBP_DIA_HIGH": (None, (170, 120, 140), None),
    "NIBP_MAP_LOW": (None, (100, 50, 60), None),
    "BP_RISE": (None, (160, 90, 113), None),
}
BASELINE = (120, 80, 93)  # the NIBP baseline readings (BP_RISE: the session's baseline)


class _Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.oxi = FakeUart()
        self.nibp = NibpModule(self.clock, duration_ms=5000)
        self.tones: list[int] = []
        self.sounder = FakeSounder(self.clock, self._sound)
        self.leds = FakeLeds(self.clock, lambda t, c, on: None)
        # fixed SPO2_LOW delay (the integral mode has no single "true from" moment), manual NIBP
        stored = dict(defaults(), spo2_delay_mode="fixed", nibp_interval_min=0)
        store = MemStore({"settings.json": json.dumps(stored).encode()})
        provision_store(store)  # the test key: the session ops are signed (docs/protocol.md)
        self.host = FakeUart()
        self.dev = Device(
            self.clock.now,
            self.oxi,
            self.host,
            self.sounder,
            self.leds,
            store=store,
            nibp_uart=self.nibp,
            selftest=False,
        )
        self.t = 0
        self.hr_spo2 = (72, 97)
        self.talking = False  # a host that sent a command keeps the link alive (pings)

    def _sound(self, t: int, hz: int, duty: int) -> None:
        if hz:
            self.tones.append(t)

    def tick(self) -> None:
        if self.t % 330 == 0:
            self.oxi.push(nonin2_packet(*self.hr_spo2))
        if self.talking and self.t % 5000 == 0:
            self.host.push(b'{"cmd":"ping"}\n')
        self.clock.advance(TICK_MS)
        self.t += TICK_MS
        self.dev.poll(self.clock.now)
        self.dev.background(self.clock.now)

    def run(self, ms: int) -> None:
        for _ in range(ms // TICK_MS):
            self.tick()

    def op(self, name: str, **args: Any) -> None:
        """One signed `session` op, given a second to be handled."""
        self.talking = True
        self.host.push(line(self.dev, {"cmd": "session", "op": name, "by": "bench", **args}))
        self.run(1000)

    def session_baseline(self) -> None:
        """BP_RISE compares with the session's accepted baseline (docs/session.md): open,
        screened, two readings baseline_gap_min apart, accept."""
        self.op("open", patient="BENCH", course_day=1, course_total=1)
        self.op("screened", override=False)
        self.measure_nibp(BASELINE)
        self.run(self.dev.settings["baseline_gap_min"] * 60000 + 5000)
        self.measure_nibp(BASELINE)
        self.run(1000)
        self.op("baseline", action="accept")
        if self.dev.obs.bp_baseline_sys != BASELINE[0]:
            raise RuntimeError("the session baseline was not accepted")
        if self.dev.alarms.audible_priority():
            raise RuntimeError("an alarm sounds after the session baseline")
        self.tones.clear()  # the information pulses of the session steps are not alarms

    def measure_nibp(self, values: tuple[int, int, int]) -> int:
        """One NIBP measurement with these values; the tick its result was read."""
        self.nibp.set_result(*values)
        done = self.nibp.results
        assert self.dev.nibp_request("start") is None
        for _ in range(8000):  # the schedule keeps 30 s between measurements
            self.tick()
            if self.nibp.results > done:
                assert self.nibp.t_result is not None
                return self.nibp.t_result
        raise RuntimeError("no NIBP result")


def virtual_delay(cond: str, phase_ms: int) -> int:
    """Ticks from the moment `cond` is true (after its delay) to the first tone."""
    oxi, nibp, delay_name = STIMULI[cond]
    r = _Rig()
    r.run(3000 + phase_ms)
    if cond == "BP_RISE":
        r.session_baseline()
        r.run(2000)
    elif nibp is not None:
        r.measure_nibp(BASELINE)
        r.run(2000)
    if r.tones:
        raise RuntimeError(f"{cond}: a tone before the stimulus at {r.tones[0]}")
    delay_ms = r.dev.settings[delay_name] * 1000 if delay_name else 0
    if oxi is not None:
        r.run(330 - r.t % 330)  # the next packet slot
        r.hr_spo2 = oxi
        t_data = ticks_add(r.clock.now, TICK_MS)  # the packet is pushed and read in this tick
    else:
        assert nibp is not None
        t_data = r.measure_nibp(nibp)
    true_at = ticks_add(t_data, delay_ms)
    for _ in range((delay_ms + 5000) // TICK_MS):
        r.tick()
        if r.tones and ticks_diff(r.tones[-1], true_at) >= 0:
            break
    after = [t for t in r.tones if ticks_diff(t, t_data) >= 0]
    if not after:
        raise RuntimeError(f"{cond}: no tone within {delay_ms + 5000} ms")
    if os.environ.get("BENCH_LATENCY_DEBUG"):
        print(cond, phase_ms, "tone - data:", ticks_diff(after[0], t_data), "ms")
    return ticks_diff(after[0], true_at) // TICK_MS


def bench_virtual() -> list[dict[str, Any]]:
    figs = []
    for cond in STIMULI:
        delays = [virtual_delay(cond, ph * TICK_MS) for ph in range(PHASES)]
        worst = max(delays)
        print(f"virtual time: {cond:14s} {delays} ticks (worst {worst})", flush=True)
        figs.append(
            benchlib.figure(
                f"alarm signal delay, virtual time: {cond}",
                worst,
                "ticks",
                "<= 1",
                f"core + board doubles on CPython, {TICK_MS} ms ticks: data true at tick T "
                f"(+ condition delay) -> first sounder tone; worst of {PHASES} data phases "
                "(tools/bench_latency.py)",
            )
        )
    return figs


# --- SIL, real time -------------------------------------------------------------------------
def _sil(tmp: Path, fifo: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host_tools"))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bedside_host.cli",
            "sil",
            "--annunciator-log",
            str(fifo),
            "--state-dir",
            str(tmp / "state"),
            "--set",
            "nibp_interval_min=0",  # no NIBP module attached
            "--set",
            "latch_high=0",  # DESAT ends with the data: the next trial starts from silence
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp,
    )


class _AnnReader:
    """The annunciator FIFO: lines with the monotonic time this process read them."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def read(self, timeout: float) -> list[tuple[float, dict[str, Any]]]:
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return []
        t = time.monotonic()
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [(t, json.loads(ln)) for ln in lines if ln.strip()]


def bench_sil() -> list[dict[str, Any]]:
    good = nonin2_packet(72, 97)
    desat = nonin2_packet(72, 80)
    head, decisive = desat[:-5], desat[-5:]  # frame 25 completes the packet's reading
    lat: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as d:
        tmp = Path(d)
        fifo = tmp / "annunciator.fifo"
        os.mkfifo(fifo)
        afd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # before the SIL opens it to write
        proc = _sil(tmp, fifo)
        try:
            assert proc.stdout is not None
            ports = json.loads(proc.stdout.readline())
            oxi = os.open(ports["oximeter"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            host = os.open(ports["host"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            ann = _AnnReader(afd)
            next_pkt = time.monotonic()
            host_buf = b""
            desat = "inactive"  # SPO2_DESAT's state in the device's last alarm message

            def drain_host() -> None:
                """Read the host pty (it must not fill up) and follow SPO2_DESAT's state."""
                nonlocal host_buf, desat
                try:
                    host_buf += os.read(host, 65536)
                except BlockingIOError:
                    return
                *lines, host_buf = host_buf.split(b"\n")
                for ln in lines:
                    try:
                        m = json.loads(ln)
                    except ValueError:
                        continue
                    if isinstance(m, dict) and m.get("type") == "alarm":
                        if m.get("condition") == "SPO2_DESAT":
                            desat = str(m.get("state"))

            def feed_until(end: float) -> list[tuple[float, dict[str, Any]]]:
                """Normal packets at 3 a second until `end`; the annunciator lines seen."""
                nonlocal next_pkt
                seen = []
                while True:
                    now = time.monotonic()
                    if now >= end:
                        return seen
                    if now >= next_pkt:
                        os.write(oxi, good)
                        next_pkt = now + 1 / 3
                    drain_host()
                    seen += ann.read(min(end, next_pkt) - time.monotonic())

            def quiet_for(s: float, limit: float = 20.0) -> None:
                """Feed normal data until the sounder has been off for `s` seconds and
                SPO2_DESAT has ended (the next desaturation is a new occurrence)."""
                t_end = time.monotonic() + limit
                last_on = time.monotonic()
                on = True
                while time.monotonic() < t_end:
                    for t, rec in feed_until(time.monotonic() + 0.05):
                        if rec.get("dev") == "buzzer":
                            on = bool(rec.get("on"))
                            last_on = t
                    if not on and time.monotonic() - last_on >= s and desat == "inactive":
                        return
                raise RuntimeError("the sounder did not go quiet")

            quiet_for(2.0, limit=30.0)  # the power-on self-test is over
            for trial in range(TRIALS):
                feed_until(next_pkt + random.uniform(0.0, 0.02))  # a random phase vs the tick
                os.write(oxi, head)
                time.sleep(0.03)  # frames 1-24 read by the SIL
                t0 = time.monotonic()
                os.write(oxi, decisive)
                next_pkt = t0 + 1 / 3
                t_on = None
                end = t0 + 2.0
                while t_on is None and time.monotonic() < end:
                    for t, rec in ann.read(end - time.monotonic()):
                        if rec.get("dev") == "buzzer" and rec.get("on") and t_on is None:
                            t_on = t
                if t_on is None:
                    raise RuntimeError(f"trial {trial}: no buzzer within 2 s")
                if trial >= WARMUP:
                    lat.append((t_on - t0) * 1000)
                # a nurse's ACK stops the burst at once (docs/alarms.md section 5) instead of
                # waiting about 2 s for it to finish: the trials take about a third of the time
                assert proc.stdin is not None
                proc.stdin.write("ack\n")
                proc.stdin.flush()
                quiet_for(0.3)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            os.close(afd)
    n = len(lat)
    p50, p99, mx = (benchlib.percentile(lat, 50), benchlib.percentile(lat, 99), max(lat))
    print(f"SIL SPO2_DESAT: {n} trials, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {mx:.1f} ms")
    method = (
        "bedside sil, Nonin #2 on a pty: time.monotonic() before writing the last byte of the "
        "decisive frame -> this process reads the first `buzzer on` line from the annunciator "
        f"log (a FIFO); {n} trials after {WARMUP} warm-up, random phase, each ended by an ACK"
        " and the condition's end (tools/bench_latency.py)"
    )
    return [
        benchlib.figure(
            "alarm signal delay, SIL SPO2_DESAT p50", round(p50, 2), "ms", None, method
        ),
        benchlib.figure(
            "alarm signal delay, SIL SPO2_DESAT p99", round(p99, 2), "ms", "<= 50", method
        ),
        benchlib.figure(
            "alarm signal delay, SIL SPO2_DESAT max", round(mx, 2), "ms", None, method
        ),
        benchlib.figure("alarm signal delay, SIL trials", n, "trials", ">= 100", method),
    ]


def main() -> int:
    figs = bench_virtual()
    figs += bench_sil()
    benchlib.write_part("latency", figs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
