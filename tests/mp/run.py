# run.py: run the core test modules under MicroPython (unix port), no pytest needed.
# Usage: MICROPYPATH=tests/mp:firmware micropython -X heapsize=192k tests/mp/run.py [module ...]
# Every tests/mp/test_*.py is plain Python valid on both MicroPython and CPython: module-level
# functions named test_* that use assert. pytest collects the same files on CPython.
# A test that raises mputil.Skipped (mputil.skip(reason)) counts as skipped, never as passed.
# Output: "ok|FAIL|skip module.test" per test, then
# "micropython: N passed, M failed, K skipped" (tools/run_micropython_tests.py parses it).
import sys

from mputil import Skipped

try:
    import os

    _listdir = os.listdir
except ImportError:  # pragma: no cover
    _listdir = None

# Arguments: module names, or "module.test" for one test; "--list" prints the tests only.
LIST = "--list" in sys.argv
MODULES = [a for a in sys.argv[1:] if a != "--list"]
if not MODULES:
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    MODULES = sorted(n[:-3] for n in _listdir(here) if n.startswith("test_") and n.endswith(".py"))

try:
    from gc import collect as _collect
    from gc import threshold as _threshold

    # collect after every 8 KB allocated, as a long-running firmware would configure: freed
    # blocks are reused before the allocator walks on, so long-lived objects stay packed
    _threshold(8192)
except ImportError:  # pragma: no cover
    _collect = None

passed = 0
failed = 0
skipped = 0
for arg in MODULES:
    modname, _, only = arg.partition(".")
    if _collect is not None:
        _collect()  # a collected heap before the import, as at boot
    mod = __import__(modname)
    for name in sorted(dir(mod)):
        if not name.startswith("test_") or (only and name != only):
            continue
        fn = getattr(mod, name)
        if not callable(fn):
            continue
        if LIST:
            print("test", modname + "." + name)
            continue
        if _collect is not None:
            _collect()  # each test starts from a collected heap, as a fresh board would
        try:
            fn()
        except Skipped as e:
            skipped += 1
            print("skip", modname + "." + name, e)
        except Exception as e:  # report and go on, like a test runner
            failed += 1
            print("FAIL", modname + "." + name, type(e).__name__, e)
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
        else:
            passed += 1
            print("ok", modname + "." + name)
    del mod
    sys.modules.pop(modname, None)  # free it: the next module gets the heap back
    try:
        import gc

        gc.collect()
    except ImportError:  # pragma: no cover
        pass
print("micropython: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
