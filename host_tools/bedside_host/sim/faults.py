"""Fault injection on a simulated byte stream, deterministic for a given seed.

Spec syntax (``--fault``, repeatable): ``KIND:ARG[@STREAM]``

==================  ===========================================================================
``garbage:RATE``    after each byte, insert a random byte with probability RATE
``drop:RATE``       drop each byte with probability RATE
``corrupt:RATE``    flip one random bit of each byte with probability RATE (bad checksums)
``silence:A-B``     send nothing from A to B seconds after start (bytes due then are lost)
==================  ===========================================================================

RATE is a probability ``0 < RATE <= 1`` (``0.01``) or a percentage (``1%``). STREAM is
``oximeter`` (default) or ``nibp`` (the SunTech emulator's replies). Examples:
``garbage:0.01``, ``silence:30-40``, ``corrupt:2%@nibp``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FAULT_KINDS = ("garbage", "drop", "corrupt", "silence")
STREAMS = ("oximeter", "nibp")
SYNTAX = (
    "KIND:ARG[@STREAM], KIND one of garbage|drop|corrupt (ARG = rate 0..1 or N%) or "
    "silence (ARG = START-END seconds), STREAM oximeter (default) or nibp"
)


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    stream: str = "oximeter"
    rate: float = 0.0  # garbage / drop / corrupt
    start: float = 0.0  # silence window, seconds since start
    end: float = 0.0

    def __str__(self) -> str:
        arg = f"{self.start:g}-{self.end:g}" if self.kind == "silence" else f"{self.rate:g}"
        return f"{self.kind}:{arg}@{self.stream}"


def _rate(text: str, spec: str) -> float:
    t = text.strip()
    try:
        v = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise ValueError(f"bad rate {text!r} in fault {spec!r}") from None
    if not 0.0 < v <= 1.0:
        raise ValueError(f"rate {text!r} in fault {spec!r} must be in (0, 1] or (0%, 100%]")
    return v


def parse_fault(spec: str) -> FaultSpec:
    """Parse one fault spec; ValueError with a one-line explanation when it is wrong."""
    body, _, stream = spec.strip().partition("@")
    stream = stream.strip() or "oximeter"
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r} in fault {spec!r} (oximeter or nibp)")
    kind, sep, arg = body.partition(":")
    kind = kind.strip().lower()
    if kind not in FAULT_KINDS or not sep:
        raise ValueError(f"bad fault {spec!r}: expected {SYNTAX}")
    if kind == "silence":
        a, dash, b = arg.partition("-")
        try:
            start, end = float(a), float(b)
        except ValueError:
            raise ValueError(
                f"bad silence window {arg!r} in fault {spec!r}: expected START-END seconds"
            ) from None
        if not dash or start < 0 or end <= start:
            raise ValueError(
                f"bad silence window {arg!r} in fault {spec!r}: need 0 <= START < END"
            )
        return FaultSpec(kind, stream, start=start, end=end)
    return FaultSpec(kind, stream, rate=_rate(arg, spec))


class FaultInjector:
    """Apply the specs for one stream. Same seed, specs and chunking -> same output bytes."""

    def __init__(self, specs: Iterable[FaultSpec], seed: int = 0, stream: str = "oximeter"):
        self.specs: Sequence[FaultSpec] = [s for s in specs if s.stream == stream]
        self._rng = random.Random(f"faults/{seed}/{stream}")
        self.injected = 0  # bytes inserted, dropped or corrupted, and bytes lost to silence

    def __bool__(self) -> bool:
        return bool(self.specs)

    def silent(self, t_s: float) -> bool:
        return any(s.kind == "silence" and s.start <= t_s < s.end for s in self.specs)

    def apply(self, data: bytes, t_s: float) -> bytes:
        if not self.specs or not data:
            return data
        if self.silent(t_s):
            self.injected += len(data)
            return b""
        rng = self._rng
        out = bytearray()
        for b in data:
            keep = True
            for s in self.specs:
                if s.kind == "drop" and rng.random() < s.rate:
                    keep = False
                elif s.kind == "corrupt" and rng.random() < s.rate:
                    b ^= 1 << rng.randrange(8)
                    self.injected += 1
            if keep:
                out.append(b)
            else:
                self.injected += 1
            for s in self.specs:
                if s.kind == "garbage" and rng.random() < s.rate:
                    out.append(rng.randrange(256))
                    self.injected += 1
        return bytes(out)
