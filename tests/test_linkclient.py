"""Host side of the link: seq tracking, replay requests, duplicates (REQ-LINK-05)."""

from __future__ import annotations

import json
from typing import Any

from bedside_host.linkclient import LinkClient


class FakePort:
    def __init__(self) -> None:
        self.incoming = bytearray()
        self.sent: list[dict[str, Any]] = []

    def feed(self, *msgs: dict[str, Any]) -> None:
        for m in msgs:
            self.incoming += (json.dumps(m) + "\n").encode()

    def read(self, n: int) -> bytes:
        out = bytes(self.incoming[:n])
        del self.incoming[:n]
        return out

    def write(self, data: bytes) -> int:
        self.sent.append(json.loads(data))
        return len(data)

    def close(self) -> None:
        pass


def msg(seq: int, t: str = "oxi", **kw: Any) -> dict[str, Any]:
    return {"v": 1, "seq": seq, "type": t, "t_ms": seq * 100, **kw}


def _client() -> tuple[LinkClient, FakePort]:
    port = FakePort()
    c = LinkClient(port)
    return c, port


def test_gap_asks_for_replay_and_recovers() -> None:
    """REQ-LINK-05: a missing seq is asked for again; when it comes it is flagged replayed."""
    c, port = _client()
    port.feed(msg(1, "hello"), msg(2), msg(5))
    got = c.poll()
    assert [m["seq"] for m in got] == [1, 2, 5]
    replay = [s for s in port.sent if s["cmd"] == "replay"]
    assert replay and replay[-1]["from"] == 3
    assert c.stats.gaps == 2 and c.missing == {3, 4}
    port.feed(msg(3), msg(4), msg(5))
    got = c.poll()
    assert [m["seq"] for m in got] == [3, 4]
    assert all(m["replayed"] for m in got)
    assert c.stats.recovered == 2 and c.stats.duplicates == 1 and not c.missing


def test_attach_fetches_history_without_counting_loss() -> None:
    """REQ-LINK-05: on attach mid-stream the host fetches what the device still holds."""
    c, port = _client()
    port.feed(msg(100))
    c.poll()
    assert c.stats.gaps == 0
    assert [s for s in port.sent if s["cmd"] == "replay"][-1]["from"] == 1
    port.feed(msg(101, "reply", cmd="replay", ok=True, count=63, oldest=37))
    c.poll()
    assert min(c.missing) == 37


def test_restart_resets_tracking_and_bad_lines_counted() -> None:
    """REQ-LINK-05: hello with seq 1 = device restart; garbage lines are counted, not fatal."""
    c, port = _client()
    port.feed(msg(1, "hello"), msg(2), msg(3))
    c.poll()
    port.incoming += b'not json\n{"no": "seq"}\n'
    port.feed(msg(1, "hello"), msg(2))
    got = c.poll()
    assert [m["seq"] for m in got] == [1, 2]
    assert c.stats.restarts == 1 and c.stats.bad_lines == 2
