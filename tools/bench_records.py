"""`make bench`: how many device messages a second the record store takes (CPython, this PC).

A realistic mix (1 Hz oxi and heartbeat, alarm events, NIBP, key events, replies) is built in
memory first, then timed through Store.add and the final flush into a new file on disk (WAL,
synchronous=NORMAL, the default batch size). Target: >= 20,000 messages/s.
Prints one line and writes bench/parts/records.json (``--out``) in the `make bench` part shape
``{"section", "figures": [{"name", "value", "unit", "target", "method"}]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from bedside_host.store import Store  # noqa: E402

TARGET = 20_000
PART = ROOT / "bench" / "parts" / "records.json"
METHOD = (
    "tools/bench_records.py: {n} generated device messages (1 Hz oxi and heartbeat, alarm "
    "events, NIBP, key events, replies) built in memory, then timed through Store.add and the "
    "final flush into a new SQLite file on disk (WAL, synchronous=NORMAL, default batch of "
    "{batch} items); CPython on this PC, one run"
)


@dataclass(frozen=True)
class _Received:
    port: str
    line: str
    msg: dict[str, Any]
    rx_time: float
    wall_time: float | None
    replayed: bool


def _messages(n: int) -> list[_Received]:
    out = []
    t0 = 1_780_000_000.0
    conds = ("SPO2_LOW", "PR_HIGH", "NIBP_SYS_HIGH")
    for seq in range(1, n + 1):
        t_ms = seq * 500
        m: dict[str, Any] = {"v": 2, "seq": seq, "boot": 1, "t_ms": t_ms}
        k = seq % 20
        if k == 7:
            m |= {
                "type": "alarm",
                "condition": conds[seq % 3],
                "priority": "medium",
                "state": "active",
                "event": "raise" if seq % 40 == 7 else "end",
                "kind": "physiological",
                "value": 88,
                "limit": 90,
            }
        elif k == 11:
            m |= {"type": "nibp", "sys": 120, "dia": 80, "map": 93, "pr": 70, "age_s": 1}
        elif k == 13:
            m |= {"type": "button", "button": "ack", "affected": 1}
        elif k == 17:
            m |= {"type": "reply", "cmd": "ping", "id": seq, "ok": True}
        elif seq % 2:
            m |= {
                "type": "oxi",
                "spo2": 97,
                "pr": 72,
                "spo2_age_s": 0,
                "flags": [],
                "quality": "good",
                "pi": 2.5,
            }
        else:
            m |= {
                "type": "heartbeat",
                "priority": "none",
                "audible": "none",
                "top": None,
                "alarms": [],
                "active": [],
                "audio_paused_s": 0,
                "audio_off": False,
                "phase": "monitoring",
                "rx_errors": 0,
                "tx_dropped": 0,
                "uptime_s": t_ms // 1000,
            }
        line = json.dumps(m)
        wall = t0 + t_ms / 1000
        out.append(_Received("/dev/ttyACM0", line, m, wall + 0.01, wall, False))
    return out


def bench_store(n: int = 50_000) -> float:
    """Messages per second through Store.add + flush into a fresh file."""
    msgs = _messages(n)
    with tempfile.TemporaryDirectory() as d:
        st = Store(Path(d) / "bench.db")
        t = time.perf_counter()
        for m in msgs:
            st.add(m)
        st.flush()
        dt = time.perf_counter() - t
        st.close()
    return n / dt


def part(rate: float, n: int) -> dict[str, Any]:
    """The bench part for `make bench` (merged into bench/results.json)."""
    from bedside_host.store import BATCH_ITEMS

    return {
        "section": "records",
        "figures": [
            {
                "name": "recorder messages stored per second",
                "value": round(rate),
                "unit": "messages/s",
                "target": f">= {TARGET}",
                "method": METHOD.format(n=n, batch=BATCH_ITEMS),
            }
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50_000, help="messages to store (default 50000)")
    ap.add_argument("--out", type=Path, default=PART, help=f"part file (default {PART})")
    args = ap.parse_args(argv)
    n = args.n
    rate = bench_store(n)
    verdict = "meets" if rate >= TARGET else "BELOW"
    print(
        f"record store: {rate:,.0f} messages/s ({n} messages; {verdict} the {TARGET:,}/s target)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(part(rate, n), indent=2) + "\n")
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
