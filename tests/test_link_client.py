"""DeviceLink against a fake protocol-v2 device on a pty: reconnects, restarts, replay, the
flash alarm log, explicit gaps, wall time, pings and requests (REQ-HOST-01..09)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bedside_host.link import UNKNOWN_END, LinkDown, LinkError, LinkTimeout, Received
from bedside_host.link.client import DeviceLink
from fakedevice import FakeDevice
from linkutil import Collector


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[FakeDevice]:
    d = FakeDevice(tmp_path, report_s=0.25).start()
    try:
        yield d
    finally:
        d.stop()


def _live(dev: FakeDevice, **kw: object) -> tuple[DeviceLink, Collector]:
    link = DeviceLink(dev.path, **kw)  # type: ignore[arg-type]
    c = Collector(link)
    c.until(lambda: link.state == "live" and not link.catching_up, 10, "live")
    return link, c


def _alarm_keys(c: Collector, boot: int) -> list[tuple[str, str, str, int]]:
    """Every alarm event delivered for `boot` (live, replayed or from the flash log) as news:
    flash-log records delivered `known` (read while filling a gap, no news) are not events."""
    out = []
    for x in c.received:
        m = x.msg
        if x.known:
            continue
        if m["type"] == "alarm" and m["boot"] == boot:
            out.append((m["condition"], m["event"], m["state"], m["t_ms"]))
        elif m["type"] == "log" and m["rec"]["b"] == boot and "condition" in m["rec"]:
            r = m["rec"]
            out.append((r["condition"], r["event"], r["state"], r["u"]))
    return out


def _every_seq_once_or_in_a_gap(c: Collector, boot: int, top: int) -> None:
    seqs = c.seqs(boot)
    assert len(seqs) == len(set(seqs))
    in_gaps = {
        s for g in c.gaps if g.boot == boot for s in range(g.first_seq, g.last_seq + 1)
    }
    assert not in_gaps & set(seqs)
    assert set(range(1, top + 1)) <= set(seqs) | in_gaps


def _made(dev: FakeDevice, boot: int) -> list[tuple[str, str, str, int]]:
    return [
        (m["condition"], m["event"], m["state"], m["t_ms"])
        for m in dev.sent_of("alarm")
        if m["boot"] == boot
    ]


def test_transit_loss_filled_by_replay_once(dev: FakeDevice) -> None:
    """REQ-HOST-03, REQ-LINK-05: lines lost in transit come back by replay, flagged replayed,
    each once; the rest of the stream is unaffected and nothing is reported lost."""
    link, c = _live(dev)
    with dev.lock:
        nxt = dev.seq + 1
        dev.drop_seqs.update({nxt, nxt + 1, nxt + 4})
        dev.raise_alarm("PR_HIGH", value=149, limit=130)
    c.until(lambda: link.last_seq > nxt + 8 and not link.catching_up, 10, "recovery")
    back = [x.msg["seq"] for x in c.received if x.replayed]
    assert {nxt, nxt + 1, nxt + 4} <= set(back)
    seqs = c.seqs(1)
    assert len(seqs) == len(set(seqs))  # each line once
    assert set(range(1, link.last_seq + 1)) <= set(seqs)  # complete from the start of boot
    assert not c.gaps and link.stats.recovered >= 3
    assert _alarm_keys(c, 1) == _made(dev, 1)


def test_replay_follows_the_16_line_cap_and_next(dev: FakeDevice) -> None:
    """REQ-HOST-03: a long loss needs several replay commands (16 lines each, then `next`)."""
    link, c = _live(dev)
    with dev.lock:
        dev.mute = True
    time.sleep(0.1)
    with dev.lock:
        for i in range(40):
            dev.alarm(
                "PR_HIGH",
                "raise" if i % 2 == 0 else "end",
                "active" if i % 2 == 0 else "inactive",
                "medium",
                140 + i,
                130,
            )
            dev.uptime_ms()
        dev.mute = False
        first_lost = dev.sent_of("alarm")[-40]["seq"]
    c.until(lambda: link.last_seq > first_lost + 45 and not link.catching_up, 15, "recovery")
    replays = [cmd["from"] for cmd in dev.commands_of("replay")]
    assert len(replays) >= 3 and replays == sorted(replays)
    assert not c.gaps
    seqs = c.seqs(1)
    assert set(range(1, link.last_seq + 1)) <= set(seqs) and len(seqs) == len(set(seqs))


def test_alarm_events_beyond_history_come_from_the_flash_log(tmp_path: Path) -> None:
    """REQ-HOST-04, REQ-HOST-05, REQ-HOST-36: when more alarm events were lost than the
    device's history holds, replay gives what is held, the flash alarm log the rest (as `log`
    records, history), each event exactly once; the stretch is reported as a gap saying what
    the log recovered; every seq of the boot, the log's own lines included, is delivered once
    or lies in a gap (records already known come out `known`)."""
    with FakeDevice(tmp_path, report_s=0.5) as dev:
        link, c = _live(dev)
        with dev.lock:
            dev.mute = True
        for i in range(70):  # spaced so that no two events share a millisecond
            with dev.lock:
                dev.alarm(
                    "SPO2_LOW" if i % 3 else "PR_HIGH",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "medium",
                    80 + i % 10,
                    90,
                )
            time.sleep(0.002)
        with dev.lock:
            dev.mute = False
        c.until(lambda: c.gaps != [] and not link.catching_up, 20, "the gap report")
        got = _alarm_keys(c, 1)
        assert sorted(got) == sorted(_made(dev, 1))  # all 70, none twice
        from_log = [x for x in c.received if x.msg["type"] == "log"]
        assert len(from_log) >= 6 and all(x.replayed for x in from_log)
        assert all(x.wall_time is not None for x in from_log)
        _every_seq_once_or_in_a_gap(c, 1, link.last_seq)  # the log's lines too
        gap = c.gaps[0]
        assert gap.boot == 1 and gap.first_seq <= gap.last_seq
        assert "recovered from the flash alarm log" in gap.reason
        assert link.stats.gaps == len(c.gaps)


def test_overwritten_flash_log_is_reported_not_skipped(tmp_path: Path) -> None:
    """REQ-HOST-05: alarm events neither the history nor the (wrapped) flash log still hold
    are reported in the gap's reason: never skipped silently."""
    with FakeDevice(tmp_path, report_s=0.5, alarm_log=20) as dev:
        link, c = _live(dev)
        with dev.lock:
            dev.mute = True
        for i in range(70):
            with dev.lock:
                dev.alarm(
                    "PR_LOW",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "medium",
                    40,
                    50,
                )
            time.sleep(0.002)
        with dev.lock:
            dev.mute = False
        c.until(lambda: c.gaps != [] and not link.catching_up, 20, "the gap report")
        assert any("no longer holds" in g.reason for g in c.gaps)
        assert len(_alarm_keys(c, 1)) < 70  # some are gone for good, and the gap says so


def test_attach_fetches_what_the_device_holds_and_reports_the_rest(tmp_path: Path) -> None:
    """REQ-HOST-05: on attach mid-boot the host fetches the held history (replayed) and reports
    the older lines as a gap "before the host attached", with the alarm events of this boot
    from the flash log."""
    with FakeDevice(tmp_path, report_s=0.02) as dev:
        with dev.lock:
            dev.raise_alarm("SPO2_LOW", value=88, limit=90)
        time.sleep(0.1)
        for i in range(66):  # more alarm lines than the history keeps
            with dev.lock:
                dev.alarm(
                    "BP_RISE",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "low",
                    160,
                    150,
                )
            time.sleep(0.002)
        time.sleep(1.5)  # and more routine lines than it keeps
        link, c = _live(dev)
        held = [x for x in c.received if x.replayed and x.msg["type"] != "log"]
        assert len(held) >= 32
        first = [g for g in c.gaps if g.first_seq == 1]
        assert first and "before the host attached" in first[0].reason
        assert "recovered from the flash alarm log" in first[0].reason
        assert sorted(_alarm_keys(c, 1)) == sorted(_made(dev, 1))  # each once
        logged = [x.msg["rec"]["condition"] for x in c.received if x.msg["type"] == "log"]
        assert "SPO2_LOW" in logged  # the oldest: only the flash log still has it
        dup = link.stats.duplicates
        assert dup < 64  # the replay stops where nothing more is missing


def test_catch_up_off_takes_only_the_present(tmp_path: Path) -> None:
    """REQ-HOST-05: a one-shot command (catch_up=False) does not fetch history on attach."""
    with FakeDevice(tmp_path, report_s=0.05) as dev:
        time.sleep(0.5)
        _link, c = _live(dev, catch_up=False)
        c.run(0.5)
        assert not dev.commands_of("replay") and not c.gaps
        assert not any(x.replayed for x in c.received)


def test_restart_detected_by_boot_tail_gap_and_log(dev: FakeDevice) -> None:
    """REQ-HOST-06, REQ-LINK-05: a new boot is a restart: the rest of the old boot is a gap
    with an unknown end, and its alarm events the host missed are read from the flash log."""
    link, c = _live(dev)
    with dev.lock:
        dev.mute = True
        dev.raise_alarm("PR_HIGH", value=150, limit=130)
        missed = _made(dev, 1)[-1]
        dev.restart("watchdog")
        dev.mute = False
    c.until(lambda: link.boot == 2 and link.state == "live" and c.gaps != [], 10, "restart")
    c.until(lambda: not link.catching_up, 10, "fill")
    assert link.stats.restarts == 1
    tail = c.gaps[0]
    assert tail.boot == 1 and tail.last_seq == UNKNOWN_END
    assert "restarted" in tail.reason and "1 alarm events recovered" in tail.reason
    assert missed in _alarm_keys(c, 1)
    assert set(range(1, link.last_seq + 1)) <= set(c.seqs(2))  # new boot complete from seq 1
    hello = [x for x in c.of("hello") if x.msg["boot"] == 2]
    assert hello and hello[0].msg["reset_cause"] == "watchdog"


def test_restart_without_flash_store_seen_by_seq_going_back(tmp_path: Path) -> None:
    """REQ-HOST-06: without a flash store the boot counter stays 0: the seq going back to the
    start is the restart; a gap says the old boot's tail is unknown and that there is no log."""
    with FakeDevice(tmp_path, store=False, report_s=0.25) as dev:
        link, c = _live(dev)
        c.until(lambda: link.last_seq > 6, 5, "some lines")
        with dev.lock:
            dev.restart("soft")
        c.until(lambda: link.stats.restarts == 1 and c.gaps != [], 10, "restart")
        c.until(lambda: link.state == "live", 5, "live again")
        assert c.gaps[0].boot == 0 and c.gaps[0].last_seq == UNKNOWN_END
        assert "no flash alarm log" in c.gaps[0].reason


def test_cable_pulled_and_replugged_loses_nothing(dev: FakeDevice) -> None:
    """REQ-HOST-01, REQ-HOST-03: the port vanishes (no traceback), the link reconnects with
    backoff when it reappears at the same path, and the lines made meanwhile are replayed."""
    link, c = _live(dev)
    before = link.last_seq
    dev.unplug()
    c.until(lambda: link.state == "disconnected", 5, "disconnected")
    assert link.last_error
    c.run(1.2)  # several failed attempts: backoff grows
    with dev.lock:
        dev.raise_alarm("OXI_SENSOR_OFF")  # made while unplugged
    dev.plug()
    c.until(lambda: link.state == "live" and link.last_seq > before + 6, 10, "back")
    c.until(lambda: not link.catching_up, 10, "replay")
    assert link.stats.reconnects >= 1 and not c.gaps
    seqs = c.seqs(1)
    assert set(range(1, link.last_seq + 1)) <= set(seqs) and len(seqs) == len(set(seqs))
    assert _alarm_keys(c, 1) == _made(dev, 1)
    path = [s for _t, _f, s in link.state_log]
    assert "disconnected" in path and "connecting" in path and path[-1] == "live"


def test_reboot_with_the_port_vanishing(dev: FakeDevice) -> None:
    """REQ-HOST-01, REQ-HOST-06: a Pico reboot re-enumerates USB: the port vanishes and comes
    back with a new boot; the link follows and reports the restart."""
    link, c = _live(dev)
    dev.restart("power_on", unplug_s=0.8)
    c.until(lambda: link.boot == 2 and link.state == "live", 15, "the new boot")
    c.until(lambda: not link.catching_up, 10, "fill")
    assert link.stats.restarts == 1 and link.stats.reconnects >= 1
    assert any(g.boot == 1 and g.last_seq == UNKNOWN_END for g in c.gaps)
    assert set(range(1, link.last_seq + 1)) <= set(c.seqs(2))


def test_wall_time_per_boot(tmp_path: Path) -> None:
    """REQ-HOST-07: wall = rx - t_ms at the first live line, refined by the minimum offset:
    a live line's wall_time is never after its rx_time and within the transport delay of
    it; replayed lines and flash-log records of a seen boot are mapped; a new boot gets its
    own offset."""
    shift = 1000.0  # the host clock, deliberately not the real one
    with FakeDevice(tmp_path, report_s=0.1) as dev:
        link, c = _live(dev, wall=lambda: time.time() + shift)
        with dev.lock:
            dev.drop_seqs.add(dev.seq + 2)
        c.run(1.0)
        with dev.lock:
            dev.mute = True
            dev.raise_alarm("PR_LOW", value=40, limit=50)
            event_wall = time.time() + shift
            dev.restart("soft")
            dev.mute = False
        c.until(lambda: link.boot == 2 and not link.catching_up and c.gaps != [], 10, "restart")
        c.run(0.5)
        live = [x for x in c.received if not x.replayed]
        assert live
        for x in live:
            assert x.wall_time is not None
            assert x.rx_time - 1.0 <= x.wall_time <= x.rx_time + 1e-6
        replayed = [x for x in c.received if x.replayed and x.msg["type"] != "log"]
        assert replayed and all(x.wall_time is not None for x in replayed)
        for x in replayed:
            assert x.wall_time is not None and x.wall_time <= x.rx_time + 1e-6
        logged = [x for x in c.received if x.msg["type"] == "log"]
        assert len(logged) == 1 and logged[0].wall_time is not None
        assert abs(logged[0].wall_time - event_wall) < 1.0
        new = [x for x in live if x.msg["boot"] == 2]
        assert new and all(abs(x.rx_time - (x.wall_time or 0)) < 1.0 for x in new)


def test_pings_keep_host_link_lost_quiet(tmp_path: Path) -> None:
    """REQ-HOST-08: a polled link pings every 2 s, so the device's HOST_LINK_LOST stays quiet
    with the shortest host timeout (3 s); without polling it is raised."""
    with FakeDevice(tmp_path, report_s=0.5, org={"host_timeout_s": 3}) as dev:
        link, c = _live(dev, catch_up=False)
        c.run(7.0)
        assert not [m for m in dev.sent_of("alarm") if m["condition"] == "HOST_LINK_LOST"]
        pings = dev.commands_of("ping")
        assert len(pings) >= 3
        time.sleep(4.0)  # nobody polls: no pings
        assert [m for m in dev.sent_of("alarm") if m["condition"] == "HOST_LINK_LOST"]
        link.close()


def test_request_reply_refusal_timeout_and_kept_messages(dev: FakeDevice) -> None:
    """REQ-HOST-09: request() returns the reply with its id, raises LinkError with the device's
    reason, LinkTimeout without a reply; lines received meanwhile stay for the next poll()."""
    link, c = _live(dev)
    c.run(0.3)
    time.sleep(0.6)  # reports pile up unread; request() reads them before its reply
    reply = link.request("get_settings")
    assert reply["ok"] and reply["settings"]["spo2_low"] == 90
    kept = [x.msg for x in link.poll() if isinstance(x, Received)]
    assert any(m["type"] == "heartbeat" for m in kept)
    assert any(m["type"] == "reply" and m["cmd"] == "get_settings" for m in kept)
    assert link.request("status")["cmd"] == "status"
    with pytest.raises(LinkError) as e:
        link.request("set", name="spo2_low", value=200)
    assert "spo2_low must be within 80..98" in str(e.value)
    with pytest.raises(LinkError) as e:
        link.request("set", name="latch_high", value=0)
    assert "responsible organisation" in e.value.error
    with dev.lock:
        dev.mute = True
    with pytest.raises(LinkTimeout):
        link.request("ping", timeout=0.5)
    with dev.lock:
        dev.mute = False
    link.close()
    with pytest.raises(LinkDown):
        link.send("ping")


def test_operator_name_goes_with_settings_changes(dev: FakeDevice) -> None:
    """REQ-HOST-09: a DeviceLink opened for an operator sends `by` with each `set`."""
    link, c = _live(dev, operator="Nurse Ada")
    reply = link.request("set", name="spo2_low", value=88)
    assert reply["changed"] is True and reply["old"] == 90
    c.until(lambda: bool(c.of("setting")), 3, "the setting message")
    assert c.of("setting")[0].msg["by"] == "Nurse Ada"
    assert dev.commands_of("set")[-1]["by"] == "Nurse Ada"


def test_bad_lines_are_counted_never_fatal(dev: FakeDevice) -> None:
    """REQ-HOST-09: garbage, non-objects and lines without seq are counted as bad lines; the
    link stays live and delivers the good ones."""
    link, c = _live(dev)
    dev.write_raw(b'garbage\n[1, 2]\n{"type": "oxi"}\n\xff\xfe\n' + b"[" * 100000 + b"\n")
    n = link.stats.received
    c.until(lambda: link.stats.bad_lines >= 5 and link.stats.received > n + 2, 5, "bad lines")
    assert link.state == "live"


def test_stale_then_live_again(dev: FakeDevice) -> None:
    """REQ-HOST-02: no line for 3 s: stale; lines again: live (and the lost ones replayed)."""
    link, c = _live(dev)
    with dev.lock:
        dev.mute = True
    c.until(lambda: link.state == "stale", 6, "stale")
    with dev.lock:
        dev.mute = False
    c.until(lambda: link.state == "live" and not link.catching_up, 6, "live")
    assert not c.gaps


def test_replayed_copy_lost_again_is_asked_for_again(dev: FakeDevice) -> None:
    """REQ-HOST-03: a line lost live and again in the replay is asked for again (the reply's
    count says more were sent than arrived) and recovered."""
    link, c = _live(dev)
    with dev.lock:
        lost = dev.seq + 1
        dev.drop_seqs.add(lost)
        dev.drop_replay[lost] = 1
    c.until(lambda: link.last_seq > lost + 4 and not link.catching_up, 10, "recovery")
    assert lost in [x.msg["seq"] for x in c.received if x.replayed]
    assert [cmd["from"] for cmd in dev.commands_of("replay")].count(lost) == 2
    assert not c.gaps


def test_line_that_never_comes_back_is_a_gap(dev: FakeDevice) -> None:
    """REQ-HOST-05: a line whose replayed copies keep getting lost is, after the retries,
    reported as a gap (the alarm log checked for it), never skipped silently."""
    link, c = _live(dev)
    with dev.lock:
        lost = dev.seq + 1
        dev.drop_seqs.add(lost)
        dev.drop_replay[lost] = 99
    c.until(lambda: bool(c.gaps) and not link.catching_up, 20, "the gap")
    assert [(g.first_seq, g.last_seq) for g in c.gaps] == [(lost, lost)]
    assert "flash alarm log" in c.gaps[0].reason
    assert link.stats.lost == 1


def test_log_search_passes_a_page_of_corrupt_records(tmp_path: Path) -> None:
    """REQ-HOST-04: looking back through the flash log for a boot's start goes on past a page
    that returns no records (corrupt ones are skipped by the device), and ends."""
    with FakeDevice(tmp_path, report_s=0.02) as dev:
        for i in range(40):
            with dev.lock:
                dev.alarm(
                    "PR_LOW",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "medium",
                    40,
                    50,
                )
            time.sleep(0.002)
        dev.restart("soft")
        for i in range(30):
            with dev.lock:
                dev.alarm(
                    "BP_RISE",
                    "raise" if i % 2 == 0 else "end",
                    "active" if i % 2 == 0 else "inactive",
                    "low",
                    160,
                    150,
                )
            time.sleep(0.002)
        assert dev.flash is not None
        dev.flash.alarm.corrupt.update(range(38, 54))  # one whole page of the search
        time.sleep(1.5)
        link, c = _live(dev)
        assert len(dev.commands_of("log")) < 12
        assert c.gaps and not link.catching_up
        got = _alarm_keys(c, 2)
        made = _made(dev, 2)
        assert set(got) <= set(made) and len(got) >= len(made) - 14  # 40..53 are unreadable
