# test_suntech.py: SunTech Advantage NIBP driver (REQ-SEN-01, -02, -05, -06..-13);
# runs on CPython and MicroPython. Clock starts just below the 2**30 ms tick wrap.
from bedside.readings import NONE, NibpReading
from bedside.sensors.suntech import (
    CMD_ABORT,
    CMD_GET_CUFF,
    CMD_GET_DATA,
    CMD_START_ADULT,
    CMD_START_NEONATE,
    CMD_START_PEDIATRIC,
    COND_COMM_LOST,
    COND_FAILED,
    ERR_BUSY,
    ERR_K_TIMEOUT,
    ERR_NO_ACK,
    ERR_NO_DATA,
    ERR_REJECTED,
    EV_NIBP_CUFF,
    EV_NIBP_ERROR,
    EV_NIBP_RESULT,
    EV_NIBP_STATE,
    ST_IDLE,
    ST_MEASURING,
    ST_READING,
    ST_STARTING,
    STATE_NAMES,
    SuntechNibp,
    initial_inflate_cmd,
)
from bedside.ticks import MASK, ticks_add
from mputil import alloc_per_call, skip

T0 = (1 << 30) - 5000  # 5 s before the tick wrap

R_O = bytes.fromhex("3E044F6F")
R_K = bytes.fromhex("3E044B73")
R_A = bytes.fromhex("3E04417D")
R_B = bytes.fromhex("3E04427C")
V19 = bytes.fromhex("3E18780050002001000000000000000048005D000000001C")
V20 = bytes.fromhex("3E18B6006800280100000000000000006000820000000081")
V21 = bytes.fromhex("3E180000000000000000000000000000000000005700005300")[:24]
EC86 = bytearray(V21)
CUFF150 = bytes.fromhex("3E05960027")


def _fix(pkt):
    pkt[23] = (0x100 - sum(pkt[:23])) & 0xFF
    return bytes(pkt)


EC86[20] = 0x56
EC86 = _fix(EC86)


class FakeUart:
    """Records every write (the board UART in tests)."""

    def __init__(self):
        self.out = []

    def write(self, buf):
        self.out.append(bytes(buf))
        return len(buf)


class NullUart:
    def write(self, buf):
        return len(buf)


def t(ms):
    return ticks_add(T0, ms)


def feed(d, data, ms):
    return d.feed(data, len(data), t(ms))


def run(d, ms_from, ms_to, step=10):
    """step() every `step` ms over [ms_from, ms_to]; OR of events."""
    ev = 0
    ms = ms_from
    while ms <= ms_to:
        ev |= d.step(t(ms))
        ms += step
    return ev


def test_command_vectors():
    """REQ-SEN-01: protocols.md section 5 vector 15 commands; every one sums to 0 mod 256."""
    assert CMD_START_ADULT == bytes.fromhex("3A20A6")
    assert CMD_START_PEDIATRIC == bytes.fromhex("3A873F")
    assert CMD_START_NEONATE == bytes.fromhex("3A289E")
    assert CMD_ABORT == bytes.fromhex("3A7901004C")
    assert CMD_GET_DATA == bytes.fromhex("3A7903004A")
    assert CMD_GET_CUFF == bytes.fromhex("3A79050048")
    assert initial_inflate_cmd(160) == bytes.fromhex("3A17A0000F")
    assert initial_inflate_cmd(180) == bytes.fromhex("3A17B400FB")
    assert initial_inflate_cmd(150) == bytes.fromhex("3A17960019")
    for c in (CMD_START_ADULT, CMD_START_PEDIATRIC, CMD_START_NEONATE, CMD_ABORT):
        assert sum(c) & 0xFF == 0
    assert len(STATE_NAMES) == 6 and STATE_NAMES[ST_IDLE] == "idle"


def test_cuff_vectors_and_checksum():
    """REQ-SEN-01, REQ-SEN-06: vector 18 (cuff), vectors 16/17 accepted; bad checksum rejected."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading())
    d.start(t(0))
    feed(d, R_O, 10)
    assert feed(d, bytes.fromhex("3E050201BA"), 20) & EV_NIBP_CUFF and d.cuff_mmhg == 258
    assert feed(d, bytes.fromhex("3E050201B1"), 30) == 0 and d.cuff_mmhg == 258
    assert d.bad_checksum == 1
    feed(d, bytes.fromhex("3E050000BD"), 40)
    assert d.cuff_mmhg == 0
    feed(d, CUFF150, 50)
    assert d.cuff_mmhg == 150
    for v in ("3E04417D", "3E04427C", "3E044579", "3E044E70", "3E04447A", "3E04536B", "3E04546A"):
        b = bytes.fromhex(v)
        feed(d, b, 60)
    assert d.bad_checksum == 1 and d.packets_ok == 11


def test_full_sequence_vector_19():
    """REQ-SEN-07: start -> 'O' -> cuff polls every 200 ms -> unsolicited 'K' -> data ->
    reading."""
    u = FakeUart()
    r = NibpReading()
    d = SuntechNibp(u, r)
    assert not d.busy and d.state == ST_IDLE
    assert d.start(t(0))
    assert u.out == [CMD_START_ADULT] and d.state == ST_STARTING and d.busy
    assert not d.start(t(1))  # already busy
    assert feed(d, R_O, 50) & EV_NIBP_STATE and d.state == ST_MEASURING
    run(d, 60, 1050)
    polls = [c for c in u.out if c == CMD_GET_CUFF]
    assert len(polls) == 5, len(polls)  # at 250, 450, 650, 850, 1050 (across the wrap)
    feed(d, CUFF150, 1060)
    assert d.cuff_mmhg == 150
    u.out = []
    ev = feed(d, R_K, 1100)  # unsolicited 'K', between poll replies
    assert ev & EV_NIBP_STATE and d.state == ST_READING
    run(d, 1100, 1200)
    assert u.out == [CMD_GET_DATA], u.out
    ev = feed(d, V19[:7], 1210) | feed(d, V19[7:], 1215)
    assert ev & EV_NIBP_RESULT and not ev & EV_NIBP_ERROR
    assert (r.sys, r.dia, r.map, r.pr) == (120, 80, 93, 72)
    assert r.valid and r.count == 1 and r.t_ms == t(1215)
    assert d.state == ST_IDLE and d.error == 0 and d.condition is None
    assert d.cuff_mmhg == NONE


def test_vector_20_and_patient_types():
    """REQ-SEN-01: vector 20 accepted as-is (limits belong to the alarm logic)"""
    for patient, cmd in (("pediatric", CMD_START_PEDIATRIC), ("neonate", CMD_START_NEONATE)):
        u = FakeUart()
        r = NibpReading()
        d = SuntechNibp(u, r, patient=patient)
        d.start(t(0))
        assert u.out == [cmd]
        feed(d, R_O, 10)
        feed(d, R_K, 20)
        run(d, 20, 200)
        feed(d, V20, 210)
        assert (r.sys, r.dia, r.map, r.pr) == (182, 104, 130, 96)


def test_vector_21_leak_is_failure():
    """REQ-SEN-08: complete packet with EC 0x57 -> no reading, NIBP_FAILED, readable text."""
    u = FakeUart()
    r = NibpReading()
    d = SuntechNibp(u, r)
    d.start(t(0))
    feed(d, R_O, 10)
    feed(d, R_K, 20)
    run(d, 20, 200)
    ev = feed(d, V21, 210)
    assert ev & EV_NIBP_ERROR and not ev & EV_NIBP_RESULT
    assert not r.valid and r.count == 0 and r.sys == NONE
    assert d.error == 0x57 and d.condition == COND_FAILED
    assert "leak" in d.error_text()
    assert d.error_text(0x77) == "NIBP module error 119"
    assert d.error_text(0) == ""


def test_bps_not_one_is_rejected():
    """REQ-SEN-08: EC 0 but BPS != 1 -> fields discarded."""
    u = FakeUart()
    r = NibpReading()
    d = SuntechNibp(u, r)
    bad = bytearray(V19)
    bad[7] = 0
    bad = _fix(bad)
    d.start(t(0))
    feed(d, R_O, 10)
    feed(d, R_K, 20)
    run(d, 20, 200)
    assert feed(d, bad, 210) & EV_NIBP_ERROR
    assert not r.valid and d.condition == COND_FAILED and d.error_text()


def test_busy_retry():
    """REQ-SEN-09: 'B' -> resend after about 1 s; after busy_retries -> NIBP_FAILED busy."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading(), busy_retries=2)
    d.start(t(0))
    feed(d, R_B, 20)
    run(d, 20, 990)
    assert u.out == [CMD_START_ADULT]
    run(d, 1000, 1030)
    assert u.out == [CMD_START_ADULT] * 2
    feed(d, R_B, 1050)
    run(d, 1050, 2100)
    assert u.out == [CMD_START_ADULT] * 3
    ev = feed(d, R_B, 2110)
    assert ev & EV_NIBP_ERROR and d.error == ERR_BUSY and d.condition == COND_FAILED
    # busy then accepted
    u2 = FakeUart()
    d2 = SuntechNibp(u2, NibpReading())
    d2.start(t(0))
    feed(d2, R_B, 20)
    run(d2, 20, 1100)
    feed(d2, R_O, 1110)
    assert d2.state == ST_MEASURING and d2.error == 0


def test_no_ack_is_comm_lost():
    """REQ-SEN-10: no 'O' within 1000 ms, after the retries -> NIBP_COMM_LOST (across the wrap)"""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading(), ack_retries=2)
    d.start(t(0))
    ev = run(d, 0, 2990)
    assert u.out == [CMD_START_ADULT] * 3 and not ev & EV_NIBP_ERROR
    ev = run(d, 3000, 3010)
    assert ev & EV_NIBP_ERROR and d.error == ERR_NO_ACK
    assert d.condition == COND_COMM_LOST and not d.busy and d.error_text()


def test_k_timeout_still_requests_data():
    """REQ-SEN-11: no 'K' within 140 s (adult) -> request the data anyway; across the wrap."""
    u = FakeUart()
    r = NibpReading()
    d = SuntechNibp(u, r, silent_ms=0)
    d.start(t(0))
    feed(d, R_O, 10)
    run(d, 20, 140000, step=1000)
    assert d.state == ST_MEASURING
    u.out = []
    run(d, 140010, 140200)
    assert d.state == ST_READING and CMD_GET_DATA in u.out and d.k_timeouts == 1
    feed(d, V19, 140300)  # the result was there: accepted
    assert r.valid and r.sys == 120
    # with no result in the data -> K-timeout failure
    d2 = SuntechNibp(FakeUart(), NibpReading(), k_timeout_adult_ms=5000, silent_ms=0)
    d2.start(t(0))
    feed(d2, R_O, 10)
    run(d2, 20, 5100)
    notdone = bytearray(V19)
    notdone[7] = 0
    assert feed(d2, _fix(notdone), 5200) & EV_NIBP_ERROR
    assert d2.error == ERR_K_TIMEOUT and d2.condition == COND_FAILED


def test_no_data_reply_is_comm_lost():
    """REQ-SEN-10: get-data unanswered after retries -> NIBP_COMM_LOST."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading(), data_retries=1)
    d.start(t(0))
    feed(d, R_O, 10)
    feed(d, R_K, 20)
    ev = run(d, 20, 3000)
    assert u.out.count(CMD_GET_DATA) == 2
    assert ev & EV_NIBP_ERROR and d.error == ERR_NO_DATA and d.condition == COND_COMM_LOST


def test_silent_module_is_comm_lost():
    """REQ-SEN-10: polls unanswered for silent_ms while measuring -> NIBP_COMM_LOST."""
    d = SuntechNibp(FakeUart(), NibpReading(), silent_ms=3000)
    d.start(t(0))
    feed(d, R_O, 10)
    assert not run(d, 20, 2900) & EV_NIBP_ERROR
    feed(d, CUFF150, 2950)  # an answer resets the timer
    assert not run(d, 2960, 5900) & EV_NIBP_ERROR
    assert run(d, 5900, 6000) & EV_NIBP_ERROR and d.condition == COND_COMM_LOST


def test_abort_ec86_not_failure():
    """REQ-SEN-12: abort -> 3A 79 01 00 4C, 'A' then 'K', data EC 86 -> no failure, no reading."""
    u = FakeUart()
    r = NibpReading()
    d = SuntechNibp(u, r)
    d.start(t(0))
    feed(d, R_O, 10)
    run(d, 20, 500)
    u.out = []
    d.abort(t(510))
    assert u.out == [CMD_ABORT]
    feed(d, R_A, 530)
    feed(d, R_K, 600)
    run(d, 600, 800)
    assert u.out[-1] == CMD_GET_DATA
    ev = feed(d, EC86, 820)
    assert not ev & EV_NIBP_ERROR and ev & EV_NIBP_STATE
    assert d.error == 0 and d.condition is None and not d.busy and not r.valid
    # abort with nothing running: 'A' and no 'K' -> idle after abort_k_timeout_ms
    d2 = SuntechNibp(FakeUart(), NibpReading())
    d2.abort(t(0))
    feed(d2, R_A, 20)
    ev = run(d2, 20, 2100)
    assert not d2.busy and d2.error == 0 and not ev & EV_NIBP_ERROR
    # EC 86 without our abort is a failure (someone else stopped the measurement)
    d3 = SuntechNibp(FakeUart(), NibpReading())
    d3.start(t(0))
    feed(d3, R_O, 10)
    feed(d3, R_K, 20)
    run(d3, 20, 200)
    assert feed(d3, EC86, 210) & EV_NIBP_ERROR and d3.condition == COND_FAILED


def test_initial_inflate_then_start():
    """REQ-SEN-13: set-initial-inflate first ('O', 'K'), then start; only once per patient."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading(), initial_inflate_mmhg=160)
    d.start(t(0))
    assert u.out == [bytes.fromhex("3A17A0000F")]
    feed(d, R_O, 20)
    feed(d, R_K, 40)  # command gap: start goes out at 100 ms at the earliest
    assert u.out == [bytes.fromhex("3A17A0000F")]
    run(d, 40, 120)
    assert u.out == [bytes.fromhex("3A17A0000F"), CMD_START_ADULT]
    feed(d, R_O, 150)
    feed(d, R_K, 5000)
    run(d, 5000, 5200)
    feed(d, V19, 5300)
    u.out = []
    d.start(t(9000))
    assert u.out == [CMD_START_ADULT]


def test_command_gap():
    """REQ-SEN-13: never two commands within cmd_gap_ms."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading())
    d.start(t(0))
    feed(d, R_O, 1)
    times = []
    ms = 1
    while ms < 3000:
        before = len(u.out)
        d.step(t(ms))
        if ms == 1000:
            feed(d, R_K, ms)
        if len(u.out) != before:
            times.append(ms)
        ms += 7
    gaps = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    assert gaps and min(gaps) >= 100, gaps


def test_resync_and_garbage():
    """REQ-SEN-02: garbage, a stale partial reply, then a clean reply decodes."""
    d = SuntechNibp(FakeUart(), NibpReading())
    d.start(t(0))
    feed(d, R_O, 10)
    junk = bytes((0x00, 0x3E, 0x40, 0x3E, 0x02, 0x3E))
    feed(d, junk, 20)
    assert feed(d, CUFF150, 30) & EV_NIBP_CUFF  # '>' with a bad LEN: rescanned at once
    feed(d, bytes((0x3E, 0x18, 1, 2, 3)), 40)  # '>' LEN 24, never completed
    assert feed(d, bytes.fromhex("3E050201BA"), 500) & EV_NIBP_CUFF and d.cuff_mmhg == 258
    # a clean reply hidden inside a bad one is recovered at once
    feed(d, bytes((0x3E, 0x09, 0x01)) + CUFF150 + b"\x00", 600)
    assert d.cuff_mmhg == 150


def test_unsolicited_k_when_idle():
    d = SuntechNibp(FakeUart(), NibpReading())
    assert feed(d, R_K, 0) == 0 and d.unsolicited_k == 1 and d.state == ST_IDLE


def test_bad_settings_rejected():
    for kw in ({"patient": "horse"}, {"ack_timeout": 5}):
        try:
            SuntechNibp(FakeUart(), NibpReading(), **kw)
        except ValueError:
            pass
        else:
            raise AssertionError(kw)


def test_no_allocation_per_reply():
    """REQ-SEN-05: the response parser allocates nothing per reply."""
    d = SuntechNibp(NullUart(), NibpReading())
    d.start(t(0))
    feed(d, R_O, 0)
    data = memoryview((CUFF150 + bytes.fromhex("3E050201BA") + bytes.fromhex("3E04536B")) * 5)
    now = t(10)

    def one():
        d.feed(data, len(data), now)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per


def test_wrap_constant():
    assert t(5000) == 0 and t(6000) == 1000 and MASK == (1 << 30) - 1


def test_rejected_command_retried_then_failed():
    """REQ-SEN-09: 'N' (unrecognised) / 'E' -> resend; still rejected after the retries ->
    FAILED."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading(), ack_retries=1)
    d.start(t(0))
    feed(d, bytes.fromhex("3E044E70"), 20)
    run(d, 20, 200)
    assert u.out == [CMD_START_ADULT] * 2
    ev = feed(d, bytes.fromhex("3E044579"), 220)
    assert ev & EV_NIBP_ERROR and d.error == ERR_REJECTED and d.condition == COND_FAILED
    assert d.error_text()


def test_k_timeout_per_patient_type():
    """REQ-SEN-11: pediatric 100 s, neonate 85 s (settings), measured across the tick wrap."""
    for patient, limit in (("pediatric", 100000), ("neonate", 85000), ("adult", 140000)):
        d = SuntechNibp(FakeUart(), NibpReading(), patient=patient, silent_ms=0)
        d.start(t(0))
        feed(d, R_O, 0)
        run(d, 10, limit - 10, step=2000)
        d.step(t(limit - 1))
        assert d.state == ST_MEASURING, patient
        d.step(t(limit))
        assert d.state == ST_READING and d.k_timeouts == 1, patient
    d = SuntechNibp(FakeUart(), NibpReading(), patient="neonate", k_timeout_neonate_ms=1000)
    d.start(t(0))
    feed(d, R_O, 0)
    run(d, 10, 1000)
    assert d.state == ST_READING
