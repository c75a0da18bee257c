"""The DeviceLink state machine, one test per transition of client.TRANSITIONS, with an
injected clock (REQ-HOST-01, REQ-HOST-02)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bedside_host.link.client import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    HELLO_RETRY_S,
    REOPEN_AFTER_S,
    STALE_AFTER_S,
    TRANSITIONS,
    DeviceLink,
)
from linkutil import PtyPeer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def peer() -> Iterator[PtyPeer]:
    p = PtyPeer()
    try:
        yield p
    finally:
        p.close()


def _pairs(link: DeviceLink) -> list[tuple[str, str]]:
    return [(a, b) for _t, a, b in link.state_log]


def _hello(peer: PtyPeer, seq: int = 1, boot: int = 1) -> None:
    peer.send(seq=seq, boot=boot, type="hello", t_ms=seq * 10, log=None, id=None)


def _poll_until(link: DeviceLink, state: str, tries: int = 100) -> None:
    for _ in range(tries):
        link.poll(0.02)
        if link.state == state:
            return
    raise AssertionError(f"state {link.state}, wanted {state}: {_pairs(link)}")


def _live(peer: PtyPeer, clk: Clock) -> DeviceLink:
    link = DeviceLink(peer.path, clock=clk, catch_up=False)
    link.poll()
    _hello(peer)
    _poll_until(link, "live")
    return link


def test_table_has_the_five_states_and_every_row_is_tested() -> None:
    """REQ-HOST-02: the transitions are one table over the five states."""
    states = {"disconnected", "connecting", "syncing", "live", "stale"}
    for row in TRANSITIONS:
        src = row["source"] if isinstance(row["source"], list) else [row["source"]]
        assert set(src) <= states | {"*"} and row["dest"] in states
    triggers = {row["trigger"] for row in TRANSITIONS}
    assert triggers == {
        "connect",
        "opened",
        "open_failed",
        "synced",
        "quiet",
        "heard",
        "restarted",
        "lost",
        "close",
    }


def test_connect_disconnected_to_connecting_and_opened_to_syncing(peer: PtyPeer) -> None:
    """REQ-HOST-02: connect (disconnected -> connecting), opened (connecting -> syncing); on
    opening the link asks for hello."""
    link = DeviceLink(peer.path, clock=Clock())
    assert link.state == "disconnected"
    link.poll()
    assert _pairs(link) == [("disconnected", "connecting"), ("connecting", "syncing")]
    assert [c["cmd"] for c in peer.commands()] == ["hello"]


def test_open_failed_backs_off_exponentially_and_bounded(tmp_path: Path) -> None:
    """REQ-HOST-01, REQ-HOST-02: open_failed (connecting -> disconnected), no traceback; the
    retry delay doubles from 0.2 s to at most 5 s; pyserial URLs fail the same way."""
    clk = Clock()
    link = DeviceLink(str(tmp_path / "no-such-port"), clock=clk)
    delays = []
    for _ in range(8):
        link.poll()
        assert link.state == "disconnected" and "cannot open" in link.last_error
        retry = link.retry_in()
        assert retry is not None
        delays.append(round(retry, 3))
        clk.now += retry
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert delays[0] == BACKOFF_MIN_S and max(delays) == BACKOFF_MAX_S
    assert ("connecting", "disconnected") in _pairs(link)
    url = DeviceLink("socket://127.0.0.1:1", clock=clk)  # connection refused
    url.poll()
    assert url.state == "disconnected" and url.last_error


def test_synced_syncing_to_live_and_backoff_reset(tmp_path: Path) -> None:
    """REQ-HOST-01, REQ-HOST-02: synced (syncing -> live) on the device's hello; once synced
    the reconnect delay is back to the minimum."""
    clk = Clock()
    path = tmp_path / "port"
    link = DeviceLink(str(path), clock=clk)
    for _ in range(4):  # the port is not there yet: the delay grows
        link.poll()
        clk.now += link.retry_in() or 0
    peer = PtyPeer()
    os.symlink(peer.path, path)
    link.poll()
    assert link.state == "syncing"
    _hello(peer)
    _poll_until(link, "live")
    assert ("syncing", "live") in _pairs(link)
    peer.close()
    _poll_until(link, "disconnected")
    assert link.retry_in() == pytest.approx(BACKOFF_MIN_S)


def test_quiet_syncing_to_stale(peer: PtyPeer) -> None:
    """REQ-HOST-02: quiet (syncing -> stale) when nothing at all arrives for 3 s."""
    clk = Clock()
    link = DeviceLink(peer.path, clock=clk)
    link.poll()
    clk.now += STALE_AFTER_S - 0.1
    link.poll()
    assert link.state == "syncing"
    clk.now += 0.2
    link.poll()
    assert link.state == "stale" and ("syncing", "stale") in _pairs(link)


def test_quiet_live_to_stale(peer: PtyPeer) -> None:
    """REQ-HOST-02: quiet (live -> stale) 3 s after the last line."""
    clk = Clock()
    link = _live(peer, clk)
    clk.now += STALE_AFTER_S
    link.poll()
    assert link.state == "stale" and ("live", "stale") in _pairs(link)


def test_heard_stale_to_live(peer: PtyPeer) -> None:
    """REQ-HOST-02: heard (stale -> live) on any line once the device had said hello."""
    clk = Clock()
    link = _live(peer, clk)
    clk.now += STALE_AFTER_S
    link.poll()
    peer.send(seq=2, boot=1, type="oxi", t_ms=1000, spo2=97, pr=70)
    _poll_until(link, "live")
    assert ("stale", "live") in _pairs(link)


def test_heard_stale_to_syncing_without_hello(peer: PtyPeer) -> None:
    """REQ-HOST-02: heard (stale -> syncing) when lines come but no hello yet; hello is asked
    for again."""
    clk = Clock()
    link = DeviceLink(peer.path, clock=clk, catch_up=False)
    link.poll()
    clk.now += STALE_AFTER_S
    link.poll()
    assert link.state == "stale"
    peer.commands()
    peer.send(seq=7, boot=1, type="oxi", t_ms=1000, spo2=97, pr=70)
    _poll_until(link, "syncing")
    assert ("stale", "syncing") in _pairs(link)
    clk.now += HELLO_RETRY_S
    link.poll()
    assert "hello" in [c["cmd"] for c in peer.commands()]


def test_restarted_live_to_syncing(peer: PtyPeer) -> None:
    """REQ-HOST-02, REQ-HOST-06: restarted (live -> syncing) on a new boot; the link asks for
    the new boot's hello and is live again once it comes."""
    clk = Clock()
    link = _live(peer, clk)
    peer.commands()
    peer.send(seq=3, boot=2, type="oxi", t_ms=500, spo2=97, pr=70)
    _poll_until(link, "syncing")
    assert ("live", "syncing") in _pairs(link) and link.stats.restarts == 1
    assert "hello" in [c["cmd"] for c in peer.commands()]
    _hello(peer, seq=4, boot=2)
    _poll_until(link, "live")


def test_lost_syncing_to_disconnected(peer: PtyPeer) -> None:
    """REQ-HOST-01, REQ-HOST-02: lost (syncing -> disconnected) when the port goes away."""
    link = DeviceLink(peer.path, clock=Clock())
    link.poll()
    assert link.state == "syncing"
    peer.close()
    _poll_until(link, "disconnected")
    assert ("syncing", "disconnected") in _pairs(link) and link.last_error


def test_lost_live_to_disconnected(peer: PtyPeer) -> None:
    """REQ-HOST-01, REQ-HOST-02: lost (live -> disconnected): a vanished port is a state, not
    a traceback; poll() keeps working and retries."""
    clk = Clock()
    link = _live(peer, clk)
    peer.close()
    _poll_until(link, "disconnected")
    assert ("live", "disconnected") in _pairs(link)
    for _ in range(3):
        clk.now += 10
        assert link.poll() == []
    assert link.state == "disconnected"


def test_lost_stale_to_disconnected_reopens(peer: PtyPeer) -> None:
    """REQ-HOST-02: lost (stale -> disconnected) after 10 s of silence: the port is closed and
    opened again at once (a wedged port or adapter)."""
    clk = Clock()
    link = _live(peer, clk)
    clk.now += STALE_AFTER_S
    link.poll()
    clk.now += REOPEN_AFTER_S
    link.poll()
    assert ("stale", "disconnected") in _pairs(link)
    link.poll()
    assert link.state == "syncing" and link.stats.reconnects == 1


def test_close_any_to_disconnected(peer: PtyPeer) -> None:
    """REQ-HOST-02: close (any state -> disconnected); a closed link never reconnects."""
    clk = Clock()
    link = _live(peer, clk)
    link.close()
    assert link.state == "disconnected" and ("live", "disconnected") in _pairs(link)
    clk.now += 60
    link.poll()
    assert link.state == "disconnected" and link.retry_in() is None
