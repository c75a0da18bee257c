# heapwalk.py: find numbers that would be bigints on the Pico (>= 2**30, MicroPython's 31-bit
# small ints) anywhere in an object graph. CPython only (it needs more than a Pico's heap).
SMALL = 1 << 30


def big_ints(root, name):
    """[(path, value)] of every int >= 2**30 reachable from root's attributes and items."""
    out = []
    seen = set()
    todo = [(root, name)]
    while todo:
        obj, path = todo.pop()
        if isinstance(obj, bool) or obj is None or isinstance(obj, (str, bytes, bytearray, float)):
            continue
        if isinstance(obj, int):
            if obj >= SMALL or obj < -SMALL:
                out.append((path, obj))
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            todo.extend((v, "%s[%d]" % (path, i)) for i, v in enumerate(obj))
        elif isinstance(obj, dict):
            todo.extend((v, "%s[%r]" % (path, k)) for k, v in obj.items())
        elif hasattr(obj, "__dict__"):
            todo.extend((v, "%s.%s" % (path, k)) for k, v in vars(obj).items())
    assert len(seen) > 50, "the walk did not reach the object's parts"
    return out
