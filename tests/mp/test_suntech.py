# test_suntech.py: SunTech Advantage NIBP driver (REQ-SEN-01, -02, -05, -06..-13, -30..-34);
# runs on CPython and MicroPython. Clock starts just below the 2**30 ms tick wrap.
from bedside.readings import NONE, NibpReading
from bedside.sensors.suntech import (
    BAUD,
    CMD_ABORT,
    CMD_GET_CUFF,
    CMD_GET_DATA,
    CMD_START_ADULT,
    CMD_START_NEONATE,
    CMD_START_PEDIATRIC,
    COND_COMM_LOST,
    COND_FAILED,
    CUFF_LIMITS,
    CUFF_RESIDUAL_MMHG,
    DEFAULTS,
    ERR_BUSY,
    ERR_K_TIMEOUT,
    ERR_NO_ACK,
    ERR_NO_DATA,
    ERR_OVERPRESSURE,
    ERR_OVERTIME,
    ERR_REJECTED,
    ERR_SILENT,
    EV_CUFF_DEFLATED,
    EV_CUFF_FAULT,
    EV_NIBP_CUFF,
    EV_NIBP_ERROR,
    EV_NIBP_RESULT,
    EV_NIBP_STATE,
    ST_DEFLATING,
    ST_IDLE,
    ST_MEASURING,
    ST_READING,
    ST_STARTING,
    STATE_NAMES,
    SuntechNibp,
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
    for c in (CMD_START_ADULT, CMD_START_PEDIATRIC, CMD_START_NEONATE, CMD_ABORT):
        assert sum(c) & 0xFF == 0
    assert len(STATE_NAMES) == 6 and STATE_NAMES[ST_IDLE] == "idle"
    assert STATE_NAMES[ST_DEFLATING] == "deflating" and BAUD == 9600


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
    """REQ-SEN-10, REQ-SEN-30: no 'O' within 1000 ms, after the retries -> NIBP_COMM_LOST
    (across the wrap); the start may have inflated the cuff unseen: abort, cuff fault, busy"""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading(), ack_retries=2)
    d.start(t(0))
    ev = run(d, 0, 2990)
    assert u.out == [CMD_START_ADULT] * 3 and not ev & EV_NIBP_ERROR
    ev = run(d, 3000, 3010)
    assert ev & EV_NIBP_ERROR and d.error == ERR_NO_ACK
    assert d.condition == COND_COMM_LOST and d.error_text()
    # the start may have inflated the cuff unseen: abort, cuff fault, still busy
    assert ev & EV_CUFF_FAULT and d.cuff_fault and d.busy and u.out[-1] == CMD_ABORT


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


def test_start_goes_out_directly():
    """REQ-SEN-13, REQ-SEN-33: no set-initial-inflate (the path was never reachable from the
    settings and is removed): start sends the start command at once, every time."""
    u = FakeUart()
    d = SuntechNibp(u, NibpReading())
    d.start(t(0))
    assert u.out == [CMD_START_ADULT]
    feed(d, R_O, 20)
    feed(d, R_K, 5000)
    run(d, 5000, 5200)
    feed(d, V19, 5300)
    u.out = []
    d.start(t(9000))
    assert u.out == [CMD_START_ADULT]
    assert "inflate_k_timeout_ms" not in DEFAULTS
    try:
        SuntechNibp(FakeUart(), NibpReading(), initial_inflate_mmhg=160)
    except (ValueError, TypeError):
        pass
    else:
        raise AssertionError("initial_inflate_mmhg accepted")


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


# ---- cuff safety (REQ-SEN-30..-34) -----------------------------------------------------------


def cuff_pkt(v):
    lo = v & 0xFF
    hi = (v >> 8) & 0xFF
    return bytes((0x3E, 0x05, lo, hi, (0x100 - (0x3E + 0x05 + lo + hi)) & 0xFF))


class Module:
    """A scripted SunTech module: answers each command the driver writes on the next tick.
    cuff: the pressure cuff polls report; answer=False: silent; data: reply to get-data.
    Keeps compact records (the MicroPython heap is small): abort times, poll count, last poll,
    the smallest gap between any two commands."""

    def __init__(self, cuff=0, answer=True, ack_abort=True, data=None):
        self.cuff = cuff
        self.answer = answer
        self.ack_abort = ack_abort
        self.data = data
        self.aborts = []  # ms of each abort written
        self.polls = 0
        self.last_poll = -1
        self.writes = 0
        self.last_write = None
        self.min_gap = 1 << 30
        self.pending = []
        self.ms = 0

    def write(self, buf):
        b = bytes(buf)
        if self.last_write is not None:
            self.min_gap = min(self.min_gap, self.ms - self.last_write)
        self.last_write = self.ms
        self.writes += 1
        if b == CMD_GET_CUFF:
            self.polls += 1
            self.last_poll = self.ms
        elif b == CMD_ABORT:
            self.aborts.append(self.ms)
        if not self.answer:
            return len(buf)
        if b == CMD_GET_CUFF:
            self.pending.append(cuff_pkt(self.cuff))
        elif b == CMD_ABORT:
            if self.ack_abort:
                self.pending.append(R_A)
        elif b == CMD_GET_DATA:
            if self.data is not None:
                self.pending.append(self.data)
        elif b in (CMD_START_ADULT, CMD_START_PEDIATRIC, CMD_START_NEONATE):
            self.pending.append(R_O)
        return len(buf)

    def aborts_from(self, ms):
        return [a for a in self.aborts if a >= ms]


def drive(d, m, ms_from, ms_to, step=10):
    """Tick the driver every `step` ms over [ms_from, ms_to] against the module; OR of events."""
    ev = 0
    ms = ms_from
    while ms <= ms_to:
        m.ms = ms
        if m.pending and m.answer:
            data = b"".join(m.pending)
            m.pending = []
            ev |= d.feed(data, len(data), t(ms))
        m.pending = []
        ev |= d.step(t(ms))
        ms += step
    return ev


def test_neonate_cuff_held_at_290_is_aborted_until_deflated():
    """REQ-SEN-30, REQ-SEN-31: the reported case: neonate mode, the module holds the cuff at
    290 mmHg and ignores the aborts (acknowledges with 'A', cuff stays up) for 87 s. The driver
    aborts at the first reading over 150, retries the abort (bounded, command gap kept), keeps
    polling, refuses start() and holds cuff_fault until the cuff reads deflated."""
    m = Module(cuff=290)
    d = SuntechNibp(m, NibpReading(), patient="neonate")
    assert d.start(t(0))
    ev = drive(d, m, 0, 1000)
    assert ev & EV_CUFF_FAULT and ev & EV_NIBP_ERROR and d.cuff_fault
    assert d.state == ST_DEFLATING and d.busy
    assert d.error == ERR_OVERPRESSURE and d.condition == COND_FAILED
    r = d.cuff_fault_reason
    assert "290" in r and "neonate" in r and "150" in r, r
    assert m.aborts and m.aborts[0] <= 600
    assert not d.start(t(1000))
    assert not d.clear_cuff_fault(t(1000))  # the module reports the pressure: it decides
    ev = drive(d, m, 1010, 87000)
    assert not ev & EV_CUFF_DEFLATED and d.cuff_fault and d.cuff_mmhg == 290
    aborts = m.aborts
    assert len(aborts) == 1 + DEFAULTS["abort_retries"], aborts
    gaps = [aborts[i + 1] - aborts[i] for i in range(len(aborts) - 1)]
    assert min(gaps) >= DEFAULTS["abort_retry_ms"], gaps  # each abort was acknowledged
    assert m.last_poll >= 86700  # still polling at the end
    assert m.min_gap >= DEFAULTS["cmd_gap_ms"]
    assert not d.start(t(87000))
    m.cuff = CUFF_RESIDUAL_MMHG - 1
    ev = drive(d, m, 87010, 88000)
    assert ev & EV_CUFF_DEFLATED and not d.cuff_fault and d.cuff_fault_reason is None
    assert d.state == ST_IDLE and d.cuff_mmhg == NONE
    assert d.error == ERR_OVERPRESSURE  # the failure itself stays reported
    assert d.start(t(88010))


def test_module_timeouts_raise_cuff_fault_held_while_silent():
    """REQ-SEN-30: no 'O', silence while measuring, no result data, no 'K' and no result: each
    is a cuff fault at once with the abort sent; while the module stays silent the fault never
    ends by itself (10 min), the abort is retried a bounded number of times and the polls go
    on; staff can clear it only while the pressure is unknown."""
    notdone = bytearray(V19)
    notdone[7] = 0
    notdone = _fix(notdone)
    for case, code in (
        ("no_ack", ERR_NO_ACK),
        ("silent", ERR_SILENT),
        ("no_data", ERR_NO_DATA),
        ("k_timeout", ERR_K_TIMEOUT),
    ):
        m = Module(cuff=160, answer=case != "no_ack")
        m.data = notdone if case == "k_timeout" else None
        d = SuntechNibp(m, NibpReading(), k_timeout_adult_ms=20000)
        d.start(t(0))
        if case == "silent":
            drive(d, m, 0, 3000)
            m.answer = False
        if case == "no_data":
            drive(d, m, 0, 3000)
            feed(d, R_K, 3000)
        ev = drive(d, m, 3010 if case == "no_data" else 0, 25000)
        assert ev & EV_CUFF_FAULT and ev & EV_NIBP_ERROR, case
        assert d.error == code and d.cuff_fault and d.state == ST_DEFLATING, case
        assert d.cuff_fault_reason == d.error_text(code), case
        m.answer = False
        t_fault = m.aborts[0]
        ev = drive(d, m, 25010, 625000, 100)
        assert d.cuff_fault and not ev & EV_CUFF_DEFLATED, case
        assert d.cuff_mmhg == NONE, case  # silent: the pressure is unknown, not shown old
        assert len(m.aborts) == 1 + DEFAULTS["abort_retries"], case
        assert m.aborts[-1] - t_fault < 30000, case
        assert m.last_poll >= 624700, case
        assert not d.start(t(625000))
        assert d.clear_cuff_fault(t(625000)), case  # staff: the cuff is off
        assert not d.cuff_fault and not d.busy and d.condition is not None
        assert m.min_gap >= DEFAULTS["cmd_gap_ms"], case


def test_silent_module_answering_again_ends_fault_by_reading():
    """REQ-SEN-30: after a silence fault the module answers again: deflated readings end it."""
    m = Module(cuff=150)
    d = SuntechNibp(m, NibpReading())
    d.start(t(0))
    drive(d, m, 0, 2000)
    m.answer = False
    ev = drive(d, m, 2010, 9000)
    assert ev & EV_CUFF_FAULT and d.error == ERR_SILENT and d.condition == COND_COMM_LOST
    m.answer = True
    m.cuff = 0
    ev = drive(d, m, 9010, 10000)
    assert ev & EV_CUFF_DEFLATED and not d.cuff_fault and not d.busy


def test_cuff_limits_table_and_overpressure_per_patient_type():
    """REQ-SEN-31: one table; a reading at the limit is fine, one above is a cuff fault at
    once; a checksummed reading above CUFF_MAX is overpressure too (not shown as cuff_mmhg)."""
    assert CUFF_LIMITS["adult"] == (300, 180000) and CUFF_LIMITS["neonate"] == (150, 90000)
    ped_mmhg, ped_ms = CUFF_LIMITS["pediatric"]
    assert 150 < ped_mmhg < 300 and DEFAULTS["k_timeout_pediatric_ms"] < ped_ms <= 180000
    assert CUFF_RESIDUAL_MMHG == 15 and sorted(CUFF_LIMITS) == ["adult", "neonate", "pediatric"]
    for patient in ("adult", "pediatric", "neonate", "adult-absurd"):
        p = patient.split("-")[0]
        limit = CUFF_LIMITS[p][0]
        m = Module(cuff=limit)
        d = SuntechNibp(m, NibpReading(), patient=p)
        d.start(t(0))
        ev = drive(d, m, 0, 2000)
        assert not ev & EV_CUFF_FAULT and d.state == ST_MEASURING and d.cuff_mmhg == limit
        m.cuff = 0x7FFF if patient.endswith("absurd") else limit + 1
        ev = drive(d, m, 2010, 2600)
        assert ev & EV_CUFF_FAULT and d.error == ERR_OVERPRESSURE, patient
        assert m.aborts_from(2010), patient
        assert d.cuff_mmhg == (limit if patient.endswith("absurd") else limit + 1)


def test_measurement_over_patient_time_limit_is_cuff_fault():
    """REQ-SEN-31: a measurement still running at the patient type's longest time (180/120/90
    s; 'K' timeouts set longer here) is a cuff fault at once, with the abort."""
    for patient in ("adult", "pediatric", "neonate"):
        max_ms = CUFF_LIMITS[patient][1]
        m = Module(cuff=100)
        kw = {"k_timeout_%s_ms" % patient: max_ms + 60000}
        d = SuntechNibp(m, NibpReading(), patient=patient, **kw)
        d.start(t(0))
        ev = drive(d, m, 0, max_ms - 100, 50)
        assert not ev & EV_CUFF_FAULT and d.state == ST_MEASURING, patient
        ev = drive(d, m, max_ms - 50, max_ms + 500, 50)
        assert ev & EV_CUFF_FAULT and d.error == ERR_OVERTIME and d.cuff_fault, patient
        assert str(max_ms // 1000) in d.cuff_fault_reason and m.aborts_from(max_ms - 50)


def test_module_error_checks_deflation_without_alarm():
    """REQ-SEN-32: a failure the module reports (EC 0x57) is followed by the abort and cuff
    polls; the cuff reads deflated at once: no cuff fault, idle again, the failure stays
    reported."""
    m = Module(cuff=40, data=V21)
    d = SuntechNibp(m, NibpReading())
    d.start(t(0))
    drive(d, m, 0, 1000)
    feed(d, R_K, 1000)
    ev = drive(d, m, 1000, 1300)
    assert ev & EV_NIBP_ERROR and d.error == 0x57 and d.state == ST_DEFLATING
    assert not d.cuff_fault and len(m.aborts) == 1
    m.cuff = 3
    ev = drive(d, m, 1310, 3000)
    assert not ev & (EV_CUFF_FAULT | EV_CUFF_DEFLATED)
    assert d.state == ST_IDLE and d.error == 0x57 and d.condition == COND_FAILED


def test_cuff_not_deflated_after_module_error_is_fault():
    """REQ-SEN-32: after EC 0x57 the cuff stays at 120 mmHg although each abort is
    acknowledged: cuff fault once deflate_ms has passed; the abort is re-sent every
    abort_retry_ms up to abort_retries; deflated readings end the fault."""
    m = Module(cuff=120, data=V21)
    d = SuntechNibp(m, NibpReading())
    d.start(t(0))
    drive(d, m, 0, 1000)
    feed(d, R_K, 1000)
    drive(d, m, 1000, 1300)
    assert d.state == ST_DEFLATING and not d.cuff_fault
    t0 = m.aborts[0]
    ev = drive(d, m, 1310, t0 + DEFAULTS["deflate_ms"] - 300)
    assert not ev & EV_CUFF_FAULT and not d.cuff_fault
    ev = drive(d, m, t0 + DEFAULTS["deflate_ms"] - 290, t0 + DEFAULTS["deflate_ms"] + 300)
    assert ev & EV_CUFF_FAULT and "120" in d.cuff_fault_reason, d.cuff_fault_reason
    drive(d, m, t0 + DEFAULTS["deflate_ms"] + 310, 60000)
    aborts = m.aborts
    assert len(aborts) == 1 + DEFAULTS["abort_retries"], aborts
    assert m.min_gap >= DEFAULTS["cmd_gap_ms"]
    m.cuff = 0
    ev = drive(d, m, 60010, 61000)
    assert ev & EV_CUFF_DEFLATED and not d.busy


def test_our_abort_with_cuff_up_checks_deflation():
    """REQ-SEN-32: our abort is acknowledged ('A', 'K', EC 86) but the cuff was last seen at
    200 mmHg: the driver polls until it reads deflated; if it stays up -> cuff fault; the NIBP
    key (abort) then re-sends the abort at once; deflated readings end the fault."""
    m = Module(cuff=200, data=EC86)
    d = SuntechNibp(m, NibpReading())
    d.start(t(0))
    drive(d, m, 0, 1000)
    d.abort(t(1000))
    drive(d, m, 1000, 1100)
    feed(d, R_K, 1100)
    ev = drive(d, m, 1100, 1300)
    assert d.state == ST_DEFLATING and d.error == 0 and not ev & EV_NIBP_ERROR
    ev = drive(d, m, 1310, 12000)
    assert ev & EV_CUFF_FAULT and d.cuff_fault and d.condition is None
    n = len(m.aborts)
    d.abort(t(30000))
    drive(d, m, 30000, 30200)
    assert len(m.aborts) == n + 1 and d.cuff_fault
    m.cuff = 10
    ev = drive(d, m, 30210, 31000)
    assert ev & EV_CUFF_DEFLATED and not d.busy


def test_cuff_check_keeps_polling_allocation_free():
    """REQ-SEN-05: the cuff check's replies are parsed without allocation."""
    d = SuntechNibp(NullUart(), NibpReading(), patient="neonate")
    d.start(t(0))
    feed(d, R_O, 0)
    feed(d, cuff_pkt(290), 10)
    assert d.cuff_fault
    data = memoryview((cuff_pkt(290) + R_A + R_K) * 5)
    now = t(20)

    def one():
        d.feed(data, len(data), now)
        d.step(now)

    per = alloc_per_call(one, 50)
    if per is None:
        skip("allocation is measured on MicroPython")
    assert per == 0, per
