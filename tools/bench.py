"""`make bench`: speed and memory figures for the firmware core, printed (never asserted).

Runs each benchmark on CPython and on the MicroPython unix port with a Pico-sized heap.
Figures come from this PC's CPU, not an RP2040 (expect it to be one to two orders slower).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import micropython

ROOT = micropython.ROOT
BENCHES = ("tools/bench_decoders.py", "tools/bench_device.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--heap", default=micropython.HEAP)
    args = ap.parse_args()
    for script in BENCHES:
        print(f"== {script} (CPython {sys.version.split()[0]})", flush=True)
        subprocess.run([sys.executable, str(ROOT / script)], cwd=ROOT, check=True)
        if micropython.executable() is None:
            print(f"== {script} (MicroPython): skipped, unix port not installed")
            continue
        print(f"== {script} (MicroPython unix port, -X heapsize={args.heap})", flush=True)
        # the core and the test helpers compiled ahead, as flashed (.mpy): no compiler on the heap
        fw = micropython.compile_firmware()
        res = micropython.run(ROOT / script, heap=args.heap, path=[fw], cwd=ROOT)
        sys.stdout.write(res.stdout + res.stderr)
        if res.returncode:
            return res.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
