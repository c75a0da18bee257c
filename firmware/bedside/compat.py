# compat.py: the few names that differ between MicroPython and CPython.
# MicroPython's compiler folds `X = const(n)` wherever the name `const` is called,
# so core modules write `from bedside.compat import const` and run on both.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]
        return x
