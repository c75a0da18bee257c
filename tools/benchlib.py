"""Shared by the `make bench` parts (tools/bench_*.py, CPython): figures, parts files, stats.

A part writes `bench/parts/<section>.json` (the directory can be moved with BEDSIDE_BENCH_PARTS);
what else a part leaves for people to read (the SIL subset's protocol) goes under bench-out/
(BEDSIDE_BENCH_OUT moves it: tests running side by side each use their own):
    {"section": str, "figures": [{"name": str, "value": number|null, "unit": str,
                                  "target": str|null, "method": str, "met": bool|null?}]}
`met` is optional: tools/bench.py derives it from a target such as "<= 50" when it is missing.
BEDSIDE_BENCH_QUICK=1 asks a part for a short run (fewer trials, less virtual time): the
pytest schema check uses it so the bench cannot rot; its figures are not the published ones.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def parts_dir() -> Path:
    return Path(os.environ.get("BEDSIDE_BENCH_PARTS", ROOT / "bench" / "parts"))


def out_dir() -> Path:
    return Path(os.environ.get("BEDSIDE_BENCH_OUT", ROOT / "bench-out"))


def quick() -> bool:
    return os.environ.get("BEDSIDE_BENCH_QUICK") == "1"


def figure(
    name: str,
    value: float | int | None,
    unit: str,
    target: str | None,
    method: str,
    met: bool | None = None,
) -> dict[str, Any]:
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    if met is None:
        met = target_met(target, value)
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "target": target,
        "met": met,
        "method": method,
    }


_TARGET = re.compile(r"^\s*(<=|>=|<|>|==|=)\s*(-?[0-9][0-9_,]*(?:\.[0-9]+)?)")


def target_met(target: str | None, value: float | int | None) -> bool | None:
    """Whether `value` meets a target written "<= 50", ">= 20000/s", "== 0 B" (the number is
    in the figure's unit); None when there is no target, no value or the target is prose."""
    if target is None or value is None or isinstance(value, bool):
        return None
    m = _TARGET.match(target)
    if not m:
        return None
    op, num = m.group(1), float(m.group(2).replace("_", "").replace(",", ""))
    v = float(value)
    return {
        "<=": v <= num,
        ">=": v >= num,
        "<": v < num,
        ">": v > num,
        "==": v == num,
        "=": v == num,
    }[op]


def write_part(section: str, figures: list[dict[str, Any]], **extra: Any) -> Path:
    out = parts_dir() / f"{section}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {"section": section, "figures": figures, **extra}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    tmp.replace(out)
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list: a value that occurred."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
