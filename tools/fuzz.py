"""`make fuzz`: every byte input of the firmware fuzzed with a fast mutation loop (CPython).

Targets: each oximeter decoder (firmware/bedside/sensors/), the SunTech reply parser, the host
command parser (HostLink framing + command table + authentication, through a whole Device),
the settings file reader, the flash log reader, the auth key/counter file reader.

Why a mutation loop and not hypothesis for the million: hypothesis runs a few hundred examples
a second on these targets (its shrinking and database cost more than the target); this loop
runs tens of thousands a second, so `make fuzz` runs >= 1,000,000 inputs per target in
minutes. hypothesis property tests stay in tests/test_sensor_properties.py; atheris does not
install for CPython 3.11 here. Each input is mutated from the corpus (valid frames made by the
simulators, plus inputs that gave a new outcome): bit flips, interesting bytes, inserts,
deletes, duplicated chunks, splices of two inputs, truncation, random bytes.

Checks per input: no exception escapes (and, for the Device, none is caught inside its tick:
`faults` stays 0); every output in range (SpO2 0..100, pulse 0..the decoder's PR_MAX, NIBP
0..300 mmHg,
settings valid and consistent, log records well formed); memory bounded (the sizes of every
buffer an object holds never grow past a fixed bound). A failing input is saved in
tests/fuzz/crashes/<target>/ with its traceback and the run exits 1; `tests/test_fuzz.py`
replays the corpus and every saved crash in `make test` and runs a short fuzz per target.

    python tools/fuzz.py [--n 1000000] [--seed 1] [--target NAME ...] [--save-corpus]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "host_tools"), str(ROOT / "tests" / "mp")]

from bedside import settings as fw_settings  # noqa: E402
from bedside.alarmlog import AlarmLog  # noqa: E402
from bedside.auth import CTR_FILE, KEY_FILE, Auth  # noqa: E402
from bedside.readings import NONE, NibpReading, OxiReading  # noqa: E402
from bedside.sensors import OXIMETER_FORMATS, load_oximeter, oximeter_module  # noqa: E402
from bedside.sensors.suntech import SuntechNibp  # noqa: E402

FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS_KEEP = 48  # inputs kept per target (seeds first)
_INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x0A, 0x0D, 0x22, 0x2C, 0x3A, 0x7B, 0x7D, 0x7F,
                0x80, 0xFE, 0xFF)  # fmt: skip


class Failure(Exception):
    """An output out of range or a resource bound broken (a defect, like an exception)."""


def _sizes(obj: Any, depth: int = 0) -> int:
    """Total length of the buffers (bytes, bytearray, list, dict, str) an object holds."""
    total = 0
    for v in list(vars(obj).values()) if hasattr(obj, "__dict__") else []:
        if isinstance(v, bytes | bytearray | list | dict | str | tuple):
            total += len(v)
        elif depth < 1 and hasattr(v, "__dict__") and not callable(v):
            total += _sizes(v, depth + 1)
    return total


class Uart:
    """The UART a driver writes to (its reads come through feed())."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: Any) -> int:
        self.n += len(data)
        return len(data)

    def readinto(self, buf: Any) -> None:
        return None


# --- targets: a factory for the state, a runner for one input ----------------------------------
class OxiTarget:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.reset()

    def reset(self) -> None:
        self.r = OxiReading()
        self.d = load_oximeter(self.fmt, self.r)
        self.now = (1 << 30) - 5000
        self.bound = _sizes(self.d) + 1024
        self.pr_max = getattr(oximeter_module(self.fmt), "PR_MAX", 400)  # the decoder's bound

    def run(self, data: bytes) -> None:
        mv = memoryview(bytearray(data))
        for i in range(0, len(data), 64):  # as the device reads: 64-byte chunks
            n = min(64, len(data) - i)
            self.d.feed(mv[i : i + n], n, self.now)
            self.now = (self.now + 10) & ((1 << 30) - 1)
            r = self.r
            if r.spo2 != NONE and not 0 <= r.spo2 <= 100:
                raise Failure(f"spo2 {r.spo2} out of 0..100")
            if r.pr != NONE and not 0 <= r.pr <= self.pr_max:
                raise Failure(f"pulse {r.pr} out of 0..{self.pr_max}")
            if not 0 <= r.quality <= 3 or not 0 <= r.flags < 1 << 16:
                raise Failure(f"quality {r.quality} / flags {r.flags} out of range")
            if r.pi_x100 != NONE and not 0 <= r.pi_x100 <= 100000:
                raise Failure(f"perfusion index x100 {r.pi_x100} out of range")
        if _sizes(self.d) > self.bound:
            raise Failure(f"decoder buffers grew to {_sizes(self.d)} (bound {self.bound})")


class SuntechTarget:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.r = NibpReading()
        self.d = SuntechNibp(Uart(), self.r)
        self.now = (1 << 30) - 5000
        self.bound = _sizes(self.d) + 1024
        self.k = 0

    def run(self, data: bytes) -> None:
        d = self.d
        self.k += 1
        if self.k % 3 == 0 and not d.busy:
            d.start(self.now)
        elif self.k % 17 == 0 and d.busy:
            d.abort(self.now)
        mv = memoryview(bytearray(data))
        for i in range(0, len(data), 64):
            n = min(64, len(data) - i)
            d.feed(mv[i : i + n], n, self.now)
            d.step(self.now)
            self.now = (self.now + 250) & ((1 << 30) - 1)
        r = self.r
        if r.valid:
            for name in ("sys", "dia", "map"):
                v = getattr(r, name)
                if not 0 <= v <= 300:
                    raise Failure(f"NIBP {name} {v} out of 0..300")
            if r.pr != NONE and not 0 <= r.pr <= 350:
                raise Failure(f"NIBP pulse {r.pr} out of range")
        if d.cuff_mmhg != NONE and not 0 <= d.cuff_mmhg <= 400:
            raise Failure(f"cuff {d.cuff_mmhg} out of range")
        if _sizes(d) > self.bound:
            raise Failure(f"driver buffers grew to {_sizes(d)} (bound {self.bound})")


class HostTarget:
    """Bytes on the USB host link into a whole Device (provisioned with the test key)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        from authkit import provision
        from bedside.device import Device
        from fakes import FakeLeds, FakeSounder, FakeUart, MemStore

        class Clock:
            now = (1 << 30) - 5000

        self.clock = Clock()
        self.host = FakeUart()
        self.dev = Device(
            self.clock.now,
            FakeUart(),
            self.host,
            FakeSounder(self.clock),
            FakeLeds(self.clock),
            store=MemStore(),
            selftest=False,
        )
        provision(self.dev)
        self.n = 0

    def run(self, data: bytes) -> None:
        dev = self.dev
        self.host.push(data + b"\n")
        for _ in range(3):
            self.clock.now = (self.clock.now + 10) & ((1 << 30) - 1)
            dev.poll(self.clock.now)
            dev.background(self.clock.now)
        self.host.clear()
        if dev.faults:
            raise Failure(f"an exception was caught in the tick: {dev.last_fault}")
        s = dev.settings
        for name in fw_settings.NAMES:
            err = fw_settings.check(name, s[name])
            if err:
                raise Failure(f"setting out of range after a command: {err}")
        for low, high, gap in fw_settings.INVARIANTS:
            if s[low] + gap > s[high]:
                raise Failure(f"invariant {low} < {high} broken")
        self.n += 1
        if self.n % 2000 == 0:
            self.reset()  # the flash store grows with the event log


def _settings_run(data: bytes) -> None:
    try:
        schema, values = fw_settings.decode(data)
    except ValueError:
        return
    s = fw_settings.Settings()
    s.load(values, schema)
    for name in fw_settings.NAMES:
        if fw_settings.check(name, s[name]):
            raise Failure(f"loaded setting {name}={s[name]!r} is invalid")
    for low, high, gap in fw_settings.INVARIANTS:
        if s[low] + gap > s[high]:
            raise Failure(f"loaded settings break {low} < {high}")


def _log_run(data: bytes) -> None:
    from fakes import MemStore

    half = len(data) // 2
    store = MemStore({"alarmlog.0": data[:half], "alarmlog.1": data[half:]})
    log = AlarmLog(store, segments=4, per_segment=8)
    boot = log.open()
    if not isinstance(boot, int) or boot < 1:
        raise Failure(f"boot counter {boot!r}")
    rd = log.reader(0)
    seen = 0
    for _ in range(64):
        rec = rd.next()
        if rec is None:
            if rd.done:
                break
            continue
        seen += 1
        if not isinstance(rec, dict) or not all(isinstance(rec.get(k), int) for k in "nbu"):
            raise Failure(f"record without n/b/u: {rec!r}")
    log.append(1000, {"event": "boot"})  # writing after a hostile log works


def _auth_run(data: bytes) -> None:
    from fakes import MemStore

    half = len(data) // 2
    a = Auth(MemStore({KEY_FILE: data[:half], CTR_FILE: data[half:]}))
    if a.state not in (0, 1, 2):
        raise Failure(f"auth state {a.state}")
    if not isinstance(a.last, int) or not 0 <= a.last < 1 << 30:
        raise Failure(f"counter {a.last!r} out of range")


def _seeds(name: str) -> list[bytes]:
    """Valid inputs of each target, from the simulators and the firmware's own encoders."""
    out: list[bytes] = []
    if name.startswith("oxi_"):
        from bedside_host.sim.encoders import make_encoder
        from bedside_host.sim.patient import PatientState

        enc = make_encoder(name[4:])
        for k, (spo2, pr) in enumerate(((97, 72), (85, 130), (70, 40), (100, 250))):
            data = b""
            for j in range(8):
                t = k * 10 + j * 0.25
                data += enc.encode(PatientState(t, spo2, pr, 120, 80, 93, pleth=0.5), t)
            out.append(data)
    elif name == "suntech":
        from bedside_host.sim.suntech import BpResult, bp_packet, cuff_packet, status_packet

        out += [cuff_packet(150), cuff_packet(0), status_packet("A"), status_packet("O")]
        out.append(bp_packet(BpResult(120, 80, 93, 72)))
        out.append(b"".join(out))
    elif name == "host":
        from authkit import line

        class Dummy:
            class auth:
                last = 0

        out += [
            b'{"cmd": "ping", "id": 1}',
            b'{"cmd": "get_settings"}',
            b'{"cmd": "log", "from": 0, "log": "event", "count": 4}',
            b'{"cmd": "replay", "from": 1}',
            b'{"cmd": "set", "name": "spo2_low", "value": 91, "by": "x"}',
            b'{"cmd": "provision", "key": "' + b"ab" * 32 + b'", "by": "x"}',
        ]
        for obj in (
            {"cmd": "set", "name": "spo2_low", "value": 91, "confirm": True},
            {"cmd": "nibp", "action": "start"},
            {"cmd": "audio_off", "on": True, "lease_s": 30},
            {"cmd": "selftest", "priority": "low"},
        ):
            out.append(line(Dummy, obj).rstrip(b"\n"))
    elif name == "settings":
        values = fw_settings.defaults()
        out.append(fw_settings.encode(values))
        out.append(json.dumps(values).encode())  # schema 1
        out.append(fw_settings.encode(dict(values, spo2_low=95, pr_high=150)))
    elif name == "log":
        from bedside.alarmlog import encode

        recs = [
            {"n": i, "b": 1, "u": 100 * i, "event": "raise", "condition": "SPO2_LOW"}
            for i in range(6)
        ]
        out.append(b"".join(encode(r) for r in recs))
    elif name == "auth":
        from bedside.auth import auth_file

        out.append(auth_file(b"ab" * 32) + auth_file(b"1234"))
        out.append(auth_file(b"00" * 32) + auth_file(b"0"))
    return out


def targets() -> dict[str, Callable[[], Callable[[bytes], None]]]:
    """name -> a factory returning the function that runs one input (fresh state)."""
    t: dict[str, Callable[[], Callable[[bytes], None]]] = {}
    for fmt in sorted(OXIMETER_FORMATS):
        t["oxi_" + fmt] = lambda fmt=fmt: OxiTarget(fmt).run
    t["suntech"] = lambda: SuntechTarget().run
    t["host"] = lambda: HostTarget().run
    t["settings"] = lambda: _settings_run
    t["log"] = lambda: _log_run
    t["auth"] = lambda: _auth_run
    return t


def mutate(rng: random.Random, data: bytes, corpus: list[bytes], max_len: int = 600) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        op = rng.randrange(9)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:
            i = rng.randrange(n + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i : i + rng.randrange(1, 17)]
        elif op == 4 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 33))
            b[i:i] = b[i:j] * rng.randrange(1, 4)
        elif op == 5:
            other = rng.choice(corpus)
            i = rng.randrange(len(b) + 1)
            j = rng.randrange(len(other) + 1)
            b = b[:i] + other[j:]
        elif op == 6 and n:
            del b[rng.randrange(n) :]
        elif op == 7 and n:
            i = rng.randrange(n)
            b[i] = (b[i] + rng.choice((-1, 1, 16, -16, 128))) & 0xFF
        elif op == 8:
            b = bytearray(rng.randbytes(rng.randrange(1, 80)))
    return bytes(b[:max_len])


def load_corpus(name: str) -> list[bytes]:
    found = sorted((FUZZ_DIR / "corpus" / name).glob("*.bin"))
    return [p.read_bytes() for p in found]


def save_crash(name: str, data: bytes, text: str) -> Path:
    d = FUZZ_DIR / "crashes" / name
    d.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha1(data).hexdigest()[:16]
    (d / f"{h}.bin").write_bytes(data)
    (d / f"{h}.txt").write_text(text)
    return d / f"{h}.bin"


def fuzz(
    name: str, n: int, seed: int = 1, save: bool = False, seconds: float | None = None
) -> tuple[int, float, list[str]]:
    """Run n mutated inputs on target `name` (or fewer, if `seconds` run out first); returns
    (inputs run, seconds, failures)."""
    make = targets()[name]
    run = make()
    rng = random.Random(seed)
    corpus = _seeds(name) + load_corpus(name)
    seeds = len(corpus)
    for data in corpus:
        run(data)  # every seed and corpus input must pass first
    failures: list[str] = []
    outcomes: set[str] = set()
    t0 = time.perf_counter()
    done = 0
    for i in range(n):
        if seconds is not None and i % 256 == 0 and time.perf_counter() - t0 > seconds:
            break
        done = i + 1
        data = mutate(rng, rng.choice(corpus), corpus)
        try:
            run(data)
        except Exception as e:
            text = f"{name}: {type(e).__name__}: {e}\n" + traceback.format_exc()
            path = save_crash(name, data, text)
            failures.append(f"{path}: {type(e).__name__}: {e}")
            run = make()  # fresh state after a failure
            if len(failures) >= 10:
                break
            continue
        if i % 64 == 0 and len(corpus) < seeds + CORPUS_KEEP:
            key = hashlib.sha1(data[:8]).hexdigest()[:3]  # a cheap novelty proxy
            if key not in outcomes:
                outcomes.add(key)
                corpus.append(data)
    secs = time.perf_counter() - t0
    if save:
        d = FUZZ_DIR / "corpus" / name
        d.mkdir(parents=True, exist_ok=True)
        for data in corpus[seeds : seeds + 16]:
            (d / f"{hashlib.sha1(data).hexdigest()[:16]}.bin").write_bytes(data)
    return done, secs, failures


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="inputs per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", action="append", choices=sorted(targets()))
    ap.add_argument("--save-corpus", action="store_true", help="keep new inputs in the corpus")
    args = ap.parse_args()
    bad = 0
    for name in args.target or sorted(targets()):
        done, secs, failures = fuzz(name, args.n, args.seed, args.save_corpus)
        rate = done / secs if secs else 0.0
        print(f"{name:16s} {done:>9d} inputs  {secs:8.1f} s  {rate:9.0f}/s  "
              f"{'OK' if not failures else 'FAILED'}", flush=True)  # fmt: skip
        for f in failures:
            print("   ", f)
        bad += bool(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
