# bench_decoders.py: decode speed and allocation per frame for every oximeter format and the
# SunTech reply parser; on CPython also false sensor-off edges per hour under 1 % garbage,
# corruption and drops (simulator encoders + fault injector -> firmware decoder, probe on; see
# host_tools/bedside_host/sim/false_off.py). Prints (never asserts); main() returns the figures.
# `make bench` part "decoders": on CPython it also runs itself on the MicroPython unix port
# (BEDSIDE_MP_HEAP, the core as .mpy) and writes bench/parts/decoders.json. Run from the repo root:
#   MICROPYPATH=firmware micropython -X heapsize=192k tools/bench_decoders.py
#   python tools/bench_decoders.py        (BENCH_FALSE_OFF_MIN: simulated minutes, default 15)
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (_here + "/../firmware", "firmware"):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import gc  # noqa: E402
import time  # noqa: E402

from bedside.readings import NibpReading, OxiReading  # noqa: E402
from bedside.sensors import OXIMETER_FORMATS, load_oximeter  # noqa: E402

MP = sys.implementation.name == "micropython"
SECONDS = 4  # seconds of real traffic per buffer (at least 20 units)
REPEAT = 5  # buffers decoded per measurement
FALSE_OFF_MIN = 15.0  # simulated minutes per format and fault for the false sensor-off figure

if MP:

    def now_us():
        return time.ticks_us()

    def diff_us(a, b):
        return time.ticks_diff(a, b)

else:

    def now_us():
        return time.perf_counter()

    def diff_us(a, b):
        return (a - b) * 1e6


def _nonin_packet(start, hr=72, spo2=97):
    out = bytearray()
    for f in range(1, 26):
        flt = 0
        if f == 1:
            flt = (hr >> 7) & 3
        elif f == 2:
            flt = hr & 0x7F
        elif f == 3:
            flt = spo2
        st = 0x82 | (1 if f == 1 else 0)
        fr = (1, st, 0x40, flt) if start else (st, 0x81, 0x23, flt)
        out += bytes(fr) + bytes((sum(fr) & 0xFF,))
    return bytes(out)


_MASIMO = (
    b"01/01/25 12:00:00 SN=0000012345 SPO2=097% BPM=072 PI=02.50% SPCO=--.-% SPMET=--.-%"
    b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n"
)

# format -> (one unit of traffic, frames/lines/packets in it, units per second)
UNITS = {
    "nonin2": (_nonin_packet(True), 25, 3),
    "nonin7": (_nonin_packet(False), 25, 3),
    "nonin1": (bytes.fromhex("804862"), 1, 1),
    "berrymed": (bytes.fromhex("8432074862"), 1, 100),
    "masimo": (_MASIMO, 1, 1),
}


def bench(name, feed_one, frames, real_rate):
    """feed_one() decodes one buffer holding `frames` frames."""
    feed_one()  # warm up
    gc.collect()
    t0 = now_us()
    for _ in range(REPEAT):
        feed_one()
    dt = diff_us(now_us(), t0)
    per_s = frames * REPEAT * 1e6 / dt if dt > 0 else 0
    alloc = "n/a (CPython)"
    per_frame = None
    if MP:
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        for _ in range(REPEAT):
            feed_one()
        a1 = gc.mem_alloc()
        gc.enable()
        per_frame = (a1 - a0) / (frames * REPEAT)
        alloc = "%.2f B/frame" % per_frame
    print(
        "%-9s %11.0f frames/s  real %4d/s  x %9.0f  alloc %s"
        % (name, per_s, real_rate, per_s / real_rate, alloc)
    )
    return {"frames_per_s": per_s, "real_per_s": real_rate, "alloc_per_frame": per_frame}


def bench_oximeter(fmt):
    unit, frames_per_unit, units_per_s = UNITS[fmt]
    mod = __import__(OXIMETER_FORMATS[fmt][0], None, None, ["FRAME_RATE"])
    n_units = max(units_per_s * SECONDS, 20)
    buf = bytearray(unit * n_units)
    mv = memoryview(buf)
    n = len(buf)
    d = load_oximeter(fmt, OxiReading())

    def one():
        d.feed(mv, n, 0)

    return bench(fmt, one, n_units * frames_per_unit, mod.FRAME_RATE)


class _NullUart:
    def write(self, b):
        return len(b)


def bench_suntech():
    from bedside.sensors import suntech

    d = suntech.SuntechNibp(_NullUart(), NibpReading())
    d.start(0)
    d.feed(bytes.fromhex("3E044F6F"), 4, 0)  # measuring: cuff replies are used
    buf = bytearray((bytes.fromhex("3E05960027") + bytes.fromhex("3E050201BA")) * 50)
    mv = memoryview(buf)
    n = len(buf)

    def one():
        d.feed(mv, n, 10)

    return bench("suntech", one, 100, 5)  # real: one cuff reply per 200 ms poll


def bench_false_sensor_off(results):
    """False sensor-off edges per hour (probe on) under each fault, per format (CPython only:
    the traffic comes from the simulator's encoders). Adds results[fmt]["false_off_per_h"]."""
    if MP:
        print("false sensor-off: n/a on MicroPython (uses the simulator; run on CPython)")
        return
    import os

    for _p in (_here + "/../host_tools", "host_tools"):
        if _p not in sys.path:
            sys.path.insert(0, _p)
    from bedside_host.sim.false_off import FAULTS, PROBE_ON_SCENARIO, false_sensor_off

    quick = os.environ.get("BEDSIDE_BENCH_QUICK") == "1"
    minutes = float(os.environ.get("BENCH_FALSE_OFF_MIN", 2 if quick else FALSE_OFF_MIN))
    print(
        "false sensor-off edges per hour, probe on (scenario %s, %g simulated min each):"
        % (PROBE_ON_SCENARIO, minutes)
    )
    print("%-9s %s" % ("format", "  ".join("%14s" % f for f in FAULTS)))
    for fmt in sorted(OXIMETER_FORMATS):
        figures = {}
        for fault in FAULTS:
            r = false_sensor_off(fmt, fault, minutes * 60)
            figures[fault] = r.per_hour
        results.setdefault(fmt, {})["false_off_per_h"] = figures
        print("%-9s %s" % (fmt, "  ".join("%14.1f" % figures[f] for f in FAULTS)))


def main():
    heap = "gc heap %d B" % (gc.mem_free() + gc.mem_alloc()) if MP else "no heap limit"
    ver = ".".join(str(x) for x in sys.implementation.version[:3])
    print("bench_decoders on %s %s, %s" % (sys.implementation.name, ver, heap))
    results = {}
    for fmt in sorted(OXIMETER_FORMATS):
        if fmt in UNITS:
            results[fmt] = bench_oximeter(fmt)
        else:
            print("%-9s no bench traffic defined here" % fmt)
    results["suntech"] = bench_suntech()
    bench_false_sensor_off(results)
    if MP:
        import json

        print("BENCH " + json.dumps(results))
    return results


def write_part(cpy):
    """CPython: run this script on MicroPython too and write bench/parts/decoders.json."""
    import json
    from pathlib import Path

    tools = str(Path(__file__).resolve().parent)
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import benchlib
    import micropython

    mp = None
    heap = micropython.HEAP
    if micropython.executable() is not None:
        fw = micropython.compile_firmware()
        res = micropython.run(Path(__file__).resolve(), heap=heap, path=[fw], cwd=micropython.ROOT)
        out = res.stdout + res.stderr
        sys.stdout.write(
            "".join(ln + "\n" for ln in out.splitlines() if not ln.startswith("BENCH "))
        )
        for line in res.stdout.splitlines():
            if line.startswith("BENCH "):
                mp = json.loads(line[6:])
    fig = benchlib.figure
    figs = []
    m = "tools/bench_decoders.py: %d-frame buffers of real traffic fed to the decoder, %d times"
    m = m % (SECONDS, REPEAT)
    for fmt in sorted(cpy):
        if "frames_per_s" not in cpy[fmt]:
            continue
        if mp is not None and fmt in mp:
            d = mp[fmt]
            figs.append(
                fig(
                    "decode only, MicroPython: %s" % fmt,
                    round(d["frames_per_s"]),
                    "frames/s",
                    None,
                    m + ", ticks_us (heap %s, .mpy); real rate %d/s" % (heap, d["real_per_s"]),
                )
            )
            figs.append(
                fig(
                    "decode only, allocation per frame: %s" % fmt,
                    d["alloc_per_frame"],
                    "B",
                    "<= 0",
                    m + ", gc disabled, mem_alloc() before and after (MicroPython)",
                )
            )
        figs.append(
            fig(
                "decode only, CPython: %s" % fmt,
                round(cpy[fmt]["frames_per_s"]),
                "frames/s",
                None,
                m + ", time.perf_counter",
            )
        )
    for fmt in sorted(cpy):
        for fault, per_h in sorted(cpy[fmt].get("false_off_per_h", {}).items()):
            figs.append(
                fig(
                    "false sensor-off edges, %s, %s" % (fmt, fault),
                    per_h,
                    "/h",
                    None,
                    "host_tools/bedside_host/sim/false_off.py: simulator encoders + fault "
                    "injector -> firmware decoder, probe on (CPython)",
                )
            )
    benchlib.write_part("decoders", figs)


_results = main()
if not MP and __name__ == "__main__":
    write_part(_results)
