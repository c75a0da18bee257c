# suntech.py: SunTech Advantage OEM NIBP driver (protocol + measurement sequence), protocols.md 2.1
# 9600 8N1. Host -> module ':' cmd.. CHK; module -> host '>' LEN data.. CHK, LEN counts the whole
# packet, whole packet sums to 0 mod 256, values little-endian. Sequence: [set initial inflate ->
# 'O' 'K'] -> start -> 'O' (1 s; 'B' busy -> retry) -> poll cuff every 200 ms -> unsolicited 'K'
# (or K timeout) -> get data -> accept only EC == 0 and BPS == 1 (section 4).
# The response parser is allocation-free (preallocated 67-byte buffer, index arithmetic).
from bedside.compat import const
from bedside.readings import NONE
from bedside.ticks import elapsed, ticks_add, ticks_diff

FORMAT = "suntech"
BAUD = 9600

EV_NIBP_STATE = const(1)  # state changed
EV_NIBP_RESULT = const(2)  # a valid result was written to the NibpReading
EV_NIBP_ERROR = const(4)  # the measurement ended with a technical condition (see error)
EV_NIBP_CUFF = const(8)  # cuff_mmhg changed

ST_IDLE = const(0)
ST_INFLATE = const(1)  # set-initial-inflate sent, waiting for 'O' then 'K'
ST_STARTING = const(2)  # start sent, waiting for 'O'
ST_MEASURING = const(3)  # 'O' received, polling the cuff, waiting for the unsolicited 'K'
ST_READING = const(4)  # get-data sent, waiting for the 24-byte result
ST_ABORTING = const(5)  # abort sent, waiting for 'A' (then 'K' if a measurement was running)
STATE_NAMES = ("idle", "set_inflate", "starting", "measuring", "reading", "aborting")

# Commands: protocols.md section 5 vector 15 (all satisfy the sum-to-zero rule).
CMD_START_ADULT = b"\x3a\x20\xa6"
CMD_START_PEDIATRIC = b"\x3a\x87\x3f"
CMD_START_NEONATE = b"\x3a\x28\x9e"
CMD_ABORT = b"\x3a\x79\x01\x00\x4c"
CMD_GET_DATA = b"\x3a\x79\x03\x00\x4a"
CMD_GET_CUFF = b"\x3a\x79\x05\x00\x48"

# Module error codes (byte 20 of the result, section 2.1 table) and driver-level codes (>= 0x100).
EC_ABORTED = const(0x56)  # reading aborted by user: normal after our abort, not a failure
ERR_NO_ACK = const(0x101)  # no 'O' (or 'A') after retries -> NIBP_COMM_LOST
ERR_BUSY = const(0x102)  # still 'B' after retries
ERR_K_TIMEOUT = const(0x103)  # no 'K' within the timeout and the data held no result
ERR_NO_DATA = const(0x104)  # no reply to the get-data request -> NIBP_COMM_LOST
ERR_BAD_DATA = const(0x105)  # result with EC 0 but BPS != 1, or implausible values
ERR_REJECTED = const(0x106)  # 'E', 'N', 'D' or 'T' after retries
ERR_SILENT = const(0x107)  # no reply to cuff polls while measuring -> NIBP_COMM_LOST

COND_FAILED = "NIBP_FAILED"
COND_COMM_LOST = "NIBP_COMM_LOST"

_TEXTS = (
    (0x01, "weak or no signal"),
    (0x02, "artifact / erratic signal"),
    (0x03, "blood pressure out of range"),
    (0x04, "measurement timeout"),
    (0x55, "pneumatic blockage"),
    (0x56, "reading aborted by user"),
    (0x57, "inflate timeout, air leak or loose cuff"),
    (0x58, "safety timeout"),
    (0x59, "cuff overpressure"),
    (0x5A, "power supply out of range or hardware problem"),
    (0x5B, "permission problem (safety override link or auto-zero)"),
    (0x61, "transducer out of range"),
    (0x63, "EEPROM calibration data failure"),
    (ERR_NO_ACK, "NIBP module not answering (command not acknowledged)"),
    (ERR_BUSY, "NIBP module busy"),
    (ERR_K_TIMEOUT, "NIBP measurement did not complete in time"),
    (ERR_NO_DATA, "NIBP module not answering (no result data)"),
    (ERR_BAD_DATA, "NIBP result invalid or garbled"),
    (ERR_REJECTED, "NIBP module rejected the command"),
    (ERR_SILENT, "NIBP module stopped answering during the measurement"),
)
_COMM_LOST = (ERR_NO_ACK, ERR_NO_DATA, ERR_SILENT)

# Timeouts and limits: each is a constructor keyword (**timeouts). Sources: protocols.md 2.1.
DEFAULTS = {
    "ack_timeout_ms": 1000,  # 'O' after start (S31); also 'O' after inflate and 'A' after abort
    "ack_retries": 2,  # resends when no 'O' / 'A' / on 'E','N','D','T' (count UNCONFIRMED)
    "busy_retry_ms": 1000,  # 'B' -> retry after about 1 s (S31)
    "busy_retries": 6,  # (S31)
    "k_timeout_adult_ms": 140000,  # (S31)
    "k_timeout_pediatric_ms": 100000,  # (S31)
    "k_timeout_neonate_ms": 85000,  # (S31)
    "poll_ms": 200,  # cuff polling (S31, S32)
    "data_timeout_ms": 1000,  # reply to get-data (UNCONFIRMED)
    "data_retries": 2,  # (UNCONFIRMED)
    "inflate_k_timeout_ms": 2000,  # 'K' after set-initial-inflate; then start anyway (UNCONFIRMED)
    "abort_k_timeout_ms": 2000,  # 'K' after 'A' if a measurement was running (UNCONFIRMED)
    "cmd_gap_ms": 100,  # at most one command every 100 ms (S32, UNCONFIRMED)
    "silent_ms": 5000,  # no valid packet while polling -> COMM_LOST; 0 = off (UNCONFIRMED that
    # the module answers polls throughout a measurement; S31 polls, S32 polls)
    "rx_timeout_ms": 200,  # a partial reply older than this is dropped (67 bytes take 70 ms)
}

_PATIENTS = {
    "adult": (CMD_START_ADULT, "k_timeout_adult_ms"),
    "pediatric": (CMD_START_PEDIATRIC, "k_timeout_pediatric_ms"),
    "paediatric": (CMD_START_PEDIATRIC, "k_timeout_pediatric_ms"),
    "neonate": (CMD_START_NEONATE, "k_timeout_neonate_ms"),
}

_START = const(0x3E)
_MAXLEN = const(0x43)  # largest reply: the 67-byte return string
_LEN_STATUS = const(4)
_LEN_CUFF = const(5)
_LEN_DATA = const(24)
# Reply lengths the parser accepts: status, cuff, calibration code (S32), BP data, return string.
# Others are treated as noise: a garbage '>' then cannot swallow a real reply with a random LEN.
_LENS = (4, 5, 6, 24, 0x43)
_C_O = const(0x4F)
_C_K = const(0x4B)
_C_A = const(0x41)
_C_B = const(0x42)
_C_S = const(0x53)
# Plausibility of an accepted result (not from the reference: sanity bounds, named here).
BP_MAX = 300  # mmHg; require 0 < dia <= map <= sys <= BP_MAX
PR_MAX = 300  # bpm; HR outside 1..PR_MAX -> reading.pr = NONE (BP kept)
CUFF_MAX = 400  # mmHg; cuff replies outside 0..CUFF_MAX -> ignored (S32 ignores -1, UNCONFIRMED)


def initial_inflate_cmd(mmhg):
    """':' 0x17 P(uint16 LE) CHK, e.g. 160 -> 3A 17 A0 00 0F (S33); LSB first (section 2.1)."""
    lo = mmhg & 0xFF
    hi = (mmhg >> 8) & 0xFF
    return bytes((0x3A, 0x17, lo, hi, (0x100 - (0x3A + 0x17 + lo + hi)) & 0xFF))


class SuntechNibp:
    """SunTech Advantage driver. feed() with received bytes, step() regularly (every loop pass),
    start()/abort() on demand. Results go to `reading` (a NibpReading); failures set `error`,
    `condition` ("NIBP_FAILED" / "NIBP_COMM_LOST") and error_text()."""

    def __init__(self, uart, reading, patient="adult", initial_inflate_mmhg=None, **timeouts):
        for key in timeouts:
            if key not in DEFAULTS:
                raise ValueError("unknown SunTech setting: %s" % key)
        for key in DEFAULTS:
            setattr(self, key, timeouts.get(key, DEFAULTS[key]))
        self.uart = uart
        self.reading = reading
        self._rx = bytearray(_MAXLEN)
        self.set_patient(patient)
        self.set_initial_inflate(initial_inflate_mmhg)
        self._k = 0
        self._rx_t = 0
        self._tx_any = False
        self._last_tx = 0
        self.state = ST_IDLE
        self.error = 0
        self.condition = None
        self.cuff_mmhg = NONE
        self._cmd = None
        self._sent = False
        self._t_cmd = 0
        self._resend_at = 0
        self._wait = False  # waiting for _resend_at before sending _cmd
        self._tries = 0
        self._busy = 0
        self._acked = False
        self._t_meas = 0
        self._poll_t = 0
        self._last_rx = 0
        self._k_timed_out = False
        self._after_abort = False
        self.packets_ok = 0
        self.frames_bad = 0  # rejected replies (bad LEN, bad checksum, stale partial)
        self.bad_checksum = 0
        self.bytes_skipped = 0
        self.other_packets = 0  # valid replies the driver does not use
        self.unsolicited_k = 0  # 'K' while nothing was waiting for it
        self.k_timeouts = 0
        self.busy_replies = 0
        self.cuff_rejected = 0
        self.commands_sent = 0

    # ---- configuration -------------------------------------------------------------------
    def set_patient(self, patient):
        try:
            self._start_cmd, key = _PATIENTS[patient]
        except KeyError:
            raise ValueError("unknown patient type: %s" % patient) from None
        self.patient = patient
        self._k_timeout = getattr(self, key)

    def set_initial_inflate(self, mmhg):
        """Send set-initial-inflate before the next start (once per patient); None = never."""
        self._inflate_cmd = None if mmhg is None else initial_inflate_cmd(mmhg)

    @property
    def busy(self):
        return self.state != ST_IDLE

    def error_text(self, code=None):
        c = self.error if code is None else code
        if not c:
            return ""
        for k, text in _TEXTS:
            if k == c:
                return text
        return "NIBP module error %d" % c

    # ---- requests ------------------------------------------------------------------------
    def start(self, now_ms):
        """Measure now. False if a measurement (or abort) is already in progress."""
        if self.state != ST_IDLE:
            return False
        self.error = 0
        self.condition = None
        self._k_timed_out = False
        self._after_abort = False
        if self._inflate_cmd is not None:
            self.state = ST_INFLATE
            self._issue(self._inflate_cmd, now_ms)
        else:
            self.state = ST_STARTING
            self._issue(self._start_cmd, now_ms)
        return True

    def abort(self, now_ms):
        """Abort (and deflate). A following EC 86 is not a failure."""
        self.error = 0
        self.condition = None
        self._after_abort = True
        self.state = ST_ABORTING
        self._issue(CMD_ABORT, now_ms)
        return EV_NIBP_STATE

    # ---- sending -------------------------------------------------------------------------
    def _issue(self, cmd, now):
        self._cmd = cmd
        self._tries = 0
        self._busy = 0
        self._acked = False
        self._wait = False
        self._try_send(now)

    def _gap_ok(self, now):
        return not self._tx_any or elapsed(now, self._last_tx) >= self.cmd_gap_ms

    def _write(self, cmd, now):
        self.uart.write(cmd)
        self._tx_any = True
        self._last_tx = now
        self.commands_sent += 1

    def _try_send(self, now):
        if self._gap_ok(now):
            self._write(self._cmd, now)
            self._sent = True
            self._t_cmd = now
            self._tries += 1
        else:
            self._sent = False  # step() sends it once the gap allows

    def _retry_later(self, now, delay):
        self._sent = False
        self._wait = True
        self._resend_at = ticks_add(now, delay)

    def _set(self, st):
        self.state = st
        return EV_NIBP_STATE

    def _finish(self):
        self._cmd = None
        self.state = ST_IDLE
        if self.cuff_mmhg != NONE:
            self.cuff_mmhg = NONE
            return EV_NIBP_STATE | EV_NIBP_CUFF
        return EV_NIBP_STATE

    def _fail(self, code):
        self.error = code
        self.condition = COND_COMM_LOST if code in _COMM_LOST else COND_FAILED
        return self._finish() | EV_NIBP_ERROR

    def _measure(self, now):
        self._cmd = None
        self._t_meas = now
        self._poll_t = now
        self._last_rx = now
        return self._set(ST_MEASURING)

    def _request_data(self, now):
        self._issue(CMD_GET_DATA, now)
        return self._set(ST_READING)

    # ---- time ----------------------------------------------------------------------------
    def step(self, now_ms):
        """Timeouts, retries, cuff polling. Call often (every pass of the main loop)."""
        st = self.state
        if st == ST_IDLE:
            return 0
        now = now_ms
        if self._cmd is not None and not self._sent:
            if not self._wait or ticks_diff(now, self._resend_at) >= 0:
                self._wait = False
                self._try_send(now)
            return 0
        if st == ST_MEASURING:
            if elapsed(now, self._t_meas) >= self._k_timeout:
                self.k_timeouts += 1
                self._k_timed_out = True  # no 'K': still ask for the data (S31)
                return self._request_data(now)
            if self.silent_ms and elapsed(now, self._last_rx) >= self.silent_ms:
                return self._fail(ERR_SILENT)
            if elapsed(now, self._poll_t) >= self.poll_ms and self._gap_ok(now):
                self._write(CMD_GET_CUFF, now)
                self._poll_t = now
            return 0
        waited = elapsed(now, self._t_cmd)
        if st == ST_READING:
            if waited >= self.data_timeout_ms:
                if self._tries > self.data_retries:
                    return self._fail(ERR_NO_DATA)
                self._try_send(now)
            return 0
        if self._acked:  # ST_INFLATE after 'O', ST_ABORTING after 'A': waiting for 'K'
            if st == ST_INFLATE and waited >= self.inflate_k_timeout_ms:
                return self._inflated(now)
            if st == ST_ABORTING and waited >= self.abort_k_timeout_ms:
                return self._finish()  # nothing was running: 'A' without 'K'
            return 0
        if waited >= self.ack_timeout_ms:
            if self._tries > self.ack_retries:
                return self._fail(ERR_NO_ACK)
            self._try_send(now)
        return 0

    def _inflated(self, now):
        self._inflate_cmd = None  # once per patient
        self._issue(self._start_cmd, now)
        return self._set(ST_STARTING)

    # ---- receiving -----------------------------------------------------------------------
    def feed(self, buf, n, now_ms):
        """Parse n reply bytes of buf (bytes, bytearray or memoryview). Returns EV_NIBP_* bits."""
        ev = 0
        p = self._rx
        while self._k and elapsed(now_ms, self._rx_t) > self.rx_timeout_ms:
            self.frames_bad += 1
            self._drop(1, False)  # stale partial reply: drop its '>' and rescan what is held
            ev |= self._scan(now_ms)
        for i in range(n):
            b = buf[i]
            k = self._k
            if k == 0:
                if b != _START:
                    self.bytes_skipped += 1
                    continue
                self._rx_t = now_ms
            p[k] = b
            self._k = k + 1
            if k:
                ev |= self._scan(now_ms)
        return ev

    def _drop(self, m, ok):
        """Remove m bytes, then up to the next '>', from the held reply bytes."""
        p = self._rx
        k = self._k
        j = m
        while j < k and p[j] != _START:
            j += 1
        self.bytes_skipped += j - m if ok else j
        for x in range(j, k):
            p[x - j] = p[x]
        self._k = k - j

    def _scan(self, now):
        ev = 0
        p = self._rx
        while self._k >= 2:
            n = p[1]
            if n not in _LENS:
                self.frames_bad += 1
                self._drop(1, False)
                continue
            if self._k < n:
                break
            s = 0
            for j in range(n):
                s += p[j]
            if s & 0xFF:
                self.bad_checksum += 1
                self.frames_bad += 1
                self._drop(1, False)
                continue
            self.packets_ok += 1
            self._last_rx = now
            ev |= self._packet(n, now)
            self._drop(n, True)
        return ev

    def _packet(self, n, now):
        p = self._rx
        if n == _LEN_STATUS:
            return self._status(p[2], now)
        if n == _LEN_CUFF:
            v = p[2] | (p[3] << 8)
            if v & 0x8000:
                v -= 0x10000
            if v < 0 or v > CUFF_MAX:
                self.cuff_rejected += 1
                return 0
            if self.state == ST_IDLE or v == self.cuff_mmhg:
                return 0
            self.cuff_mmhg = v
            return EV_NIBP_CUFF
        if n == _LEN_DATA and self.state == ST_READING:
            return self._result(now)
        self.other_packets += 1
        return 0

    def _status(self, c, now):
        st = self.state
        if c == _C_K:
            if st == ST_MEASURING or st == ST_STARTING or (st == ST_ABORTING and self._acked):
                return self._request_data(now)  # finished ('O' lost if STARTING)
            if st == ST_INFLATE:
                return self._inflated(now)
            if st == ST_ABORTING:
                self._acked = True  # 'K' before 'A'
                return self._request_data(now)
            self.unsolicited_k += 1
            return 0
        if c == _C_O:
            if st == ST_STARTING:
                return self._measure(now)
            if st == ST_INFLATE and not self._acked:
                self._acked = True
                self._t_cmd = now  # the 'K' timer starts now
            return 0
        if c == _C_A:
            if st == ST_ABORTING and not self._acked:
                self._acked = True
                self._t_cmd = now
            return 0
        if c == _C_S:
            self.other_packets += 1
            return 0
        waiting = (st == ST_STARTING or st == ST_INFLATE) and not self._acked
        if c == _C_B:
            self.busy_replies += 1
            if waiting:
                self._busy += 1
                if self._busy > self.busy_retries:
                    return self._fail(ERR_BUSY)
                self._tries = 0
                self._retry_later(now, self.busy_retry_ms)
            return 0
        # 'E', 'N', 'D', 'T' and unknown characters: the command was not taken
        self.other_packets += 1
        if waiting or st == ST_READING or (st == ST_ABORTING and not self._acked):
            if self._tries > self.ack_retries:
                return self._fail(ERR_REJECTED)
            self._retry_later(now, self.cmd_gap_ms)
        return 0

    def _result(self, now):
        p = self._rx
        ec = p[20]
        bps = p[7]
        if ec == 0 and bps == 1:
            sys_ = p[2] | (p[3] << 8)
            dia = p[4] | (p[5] << 8)
            map_ = p[18] | (p[19] << 8)
            hr = p[16] | (p[17] << 8)  # S31/S32 read uint16; S30 a byte + spare 0
            if not (0 < dia <= map_ <= sys_ <= BP_MAX):
                return self._fail(ERR_BAD_DATA)
            r = self.reading
            r.sys = sys_
            r.dia = dia
            r.map = map_
            r.pr = hr if 0 < hr <= PR_MAX else NONE
            r.t_ms = now
            r.valid = True
            r.count += 1
            return self._finish() | EV_NIBP_RESULT
        if self._after_abort:
            return self._finish()  # EC 86 (or anything) after our abort: not a failure
        if ec:
            return self._fail(ec)
        return self._fail(ERR_K_TIMEOUT if self._k_timed_out else ERR_BAD_DATA)
