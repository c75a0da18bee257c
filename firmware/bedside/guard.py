# guard.py: Catch, the tick's exception guard that keeps its callers' frames off the heap.
# MicroPython runs a function on the C stack only while its frame is at most 11 words (locals,
# value stack, 3 per exception-stack level: py/objfun.c fun_bc_call); `try: ... except
# Exception as e:` alone needs about 15, so a function holding one has its frame allocated on
# the heap and freed on every call. `with catch:` needs one level and a few slots, and the
# exception object still reaches the handler (tests/test_mpy_frames.py checks the per-tick
# frames).


class Catch:
    """`with c:` hands an Exception raised in the block to handler(e) and swallows it; any
    other BaseException (KeyboardInterrupt, SystemExit) goes on, as `except Exception` lets it.
    A handler must not raise (what it raises leaves the with-block)."""

    def __init__(self, handler):
        self.handler = handler

    def __enter__(self):
        return None

    def __exit__(self, kind, e, tb):
        if e is None or not isinstance(e, Exception):
            return False
        self.handler(e)
        return True
