# suntech.py: SunTech Advantage OEM NIBP driver (protocol, measurement sequence, cuff safety),
# protocols.md 2.1. 9600 8N1. Host -> module ':' cmd.. CHK; module -> host '>' LEN data.. CHK, LEN
# counts the whole packet, whole packet sums to 0 mod 256, values little-endian. Sequence: start
# -> 'O' (1 s; 'B' busy -> retry) -> poll cuff every 200 ms -> unsolicited 'K' (or K timeout) ->
# get data -> accept only EC == 0 and BPS == 1 (section 4).
# Cuff safety (docs/alarms.md "NIBP cuff fault"): a measurement that ends without a valid result,
# or whose cuff goes above the patient type's pressure limit or runs past its time limit, is
# followed by the abort (retried) and cuff polling until the cuff reads deflated; a cuff that is
# not seen deflated holds `cuff_fault` (the NIBP_CUFF_FAULT condition) and refuses start().
# The response parser is allocation-free (preallocated 67-byte buffer, index arithmetic).
from bedside.compat import const
from bedside.readings import NONE
from bedside.ticks import elapsed, ticks_add, ticks_diff

FORMAT = "suntech"
BAUD = 9600  # the one source of the NIBP link speed (8N1): board, SIL and simulator import it

EV_NIBP_STATE = const(1)  # state changed
EV_NIBP_RESULT = const(2)  # a valid result was written to the NibpReading
EV_NIBP_ERROR = const(4)  # the measurement ended with a technical condition (see error)
EV_NIBP_CUFF = const(8)  # cuff_mmhg changed
EV_CUFF_FAULT = const(16)  # cuff_fault became set (cuff_fault_reason says why)
EV_CUFF_DEFLATED = const(32)  # cuff_fault ended: the cuff reads deflated

ST_IDLE = const(0)
ST_STARTING = const(1)  # start sent, waiting for 'O'
ST_MEASURING = const(2)  # 'O' received, polling the cuff, waiting for the unsolicited 'K'
ST_READING = const(3)  # get-data sent, waiting for the 24-byte result
ST_ABORTING = const(4)  # abort sent, waiting for 'A' (then 'K' if a measurement was running)
ST_DEFLATING = const(5)  # abort sent (and retried), polling until the cuff reads deflated
STATE_NAMES = ("idle", "starting", "measuring", "reading", "aborting", "deflating")

# Commands: protocols.md section 5 vector 15 (all satisfy the sum-to-zero rule).
CMD_START_ADULT = b"\x3a\x20\xa6"
CMD_START_PEDIATRIC = b"\x3a\x87\x3f"
CMD_START_NEONATE = b"\x3a\x28\x9e"
CMD_ABORT = b"\x3a\x79\x01\x00\x4c"
CMD_GET_DATA = b"\x3a\x79\x03\x00\x4a"
CMD_GET_CUFF = b"\x3a\x79\x05\x00\x48"

# Cuff safety limits per patient type: THE table (docs/alarms.md and the tests read it).
# patient: (overpressure limit mmHg: a cuff reading above it is a fault; longest measurement ms,
# start to result). Adult and neonate: IEC 80601-2-30 as commonly cited (ref §2.2), UNCONFIRMED.
# Pediatric is our choice, UNCONFIRMED: the standard leaves non-neonatal modes at the adult
# figures; 250 mmHg sits between adult and neonate as monitors' pediatric modes do, and 120 s is
# above the 100 s pediatric 'K' timeout (S31) so a slow but normal measurement still completes.
CUFF_LIMITS = {
    "adult": (300, 180000),
    "pediatric": (250, 120000),
    "neonate": (150, 90000),
}
CUFF_RESIDUAL_MMHG = 15  # the cuff counts as deflated below this (UNCONFIRMED, ref §2.2)
_DEFLATED_READS = const(2)  # readings in a row below CUFF_RESIDUAL_MMHG end a check or a fault

# Module error codes (byte 20 of the result, section 2.1 table) and driver-level codes (>= 0x100).
# EC 0x56 "reading aborted by user" follows our own abort: not a failure (see _result).
ERR_NO_ACK = const(0x101)  # no 'O' (or 'A') after retries -> NIBP_COMM_LOST
ERR_BUSY = const(0x102)  # still 'B' after retries
ERR_K_TIMEOUT = const(0x103)  # no 'K' within the timeout and the data held no result
ERR_NO_DATA = const(0x104)  # no reply to the get-data request -> NIBP_COMM_LOST
ERR_BAD_DATA = const(0x105)  # result with EC 0 but BPS != 1, or implausible values
ERR_REJECTED = const(0x106)  # 'E', 'N', 'D' or 'T' after retries
ERR_SILENT = const(0x107)  # no reply to cuff polls while measuring -> NIBP_COMM_LOST
ERR_OVERPRESSURE = const(0x108)  # cuff above the patient type's limit (CUFF_LIMITS)
ERR_OVERTIME = const(0x109)  # measurement longer than the patient type's limit (CUFF_LIMITS)

COND_FAILED = "NIBP_FAILED"
COND_COMM_LOST = "NIBP_COMM_LOST"

_TEXTS = (  # code, text, code, text, ... (one flat tuple: less heap than pairs)
    0x01,
    "weak or no signal",
    0x02,
    "artifact / erratic signal",
    0x03,
    "blood pressure out of range",
    0x04,
    "measurement timeout",
    0x55,
    "pneumatic blockage",
    0x56,
    "reading aborted by user",
    0x57,
    "inflate timeout, air leak or loose cuff",
    0x58,
    "safety timeout",
    0x59,
    "cuff overpressure",
    0x5A,
    "power supply out of range or hardware problem",
    0x5B,
    "permission problem (safety override link or auto-zero)",
    0x61,
    "transducer out of range",
    0x63,
    "EEPROM calibration data failure",
    ERR_NO_ACK,
    "NIBP module not answering (command not acknowledged)",
    ERR_BUSY,
    "NIBP module busy",
    ERR_K_TIMEOUT,
    "NIBP measurement did not complete in time",
    ERR_NO_DATA,
    "NIBP module not answering (no result data)",
    ERR_BAD_DATA,
    "NIBP result invalid or garbled",
    ERR_REJECTED,
    "NIBP module rejected the command",
    ERR_SILENT,
    "NIBP module stopped answering during the measurement",
    ERR_OVERPRESSURE,
    "cuff pressure above the patient-type limit",
    ERR_OVERTIME,
    "NIBP measurement longer than the patient-type limit",
)
# (Module-level names are few on purpose: past 53 globals MicroPython's module dict doubles.)

# Timeouts and limits: each is a constructor keyword (**timeouts). Sources: protocols.md 2.1.
DEFAULTS = {
    "ack_timeout_ms": 1000,  # 'O' after start (S31); also 'A' after abort
    "ack_retries": 2,  # resends when no 'O' / 'A' / on 'E','N','D','T' (count UNCONFIRMED)
    "busy_retry_ms": 1000,  # 'B' -> retry after about 1 s (S31)
    "busy_retries": 6,  # (S31)
    "k_timeout_adult_ms": 140000,  # (S31)
    "k_timeout_pediatric_ms": 100000,  # (S31)
    "k_timeout_neonate_ms": 85000,  # (S31)
    "poll_ms": 200,  # cuff polling (S31, S32)
    "data_timeout_ms": 1000,  # reply to get-data (UNCONFIRMED)
    "data_retries": 2,  # (UNCONFIRMED)
    "abort_k_timeout_ms": 2000,  # 'K' after 'A' if a measurement was running (UNCONFIRMED)
    "cmd_gap_ms": 100,  # at most one command every 100 ms (S32, UNCONFIRMED)
    "silent_ms": 5000,  # no valid packet while polling -> COMM_LOST; 0 = off (UNCONFIRMED that
    # the module answers polls throughout a measurement; S31 polls, S32 polls)
    "rx_timeout_ms": 200,  # a partial reply older than this is dropped (67 bytes take 70 ms)
    # Cuff safety (docs/alarms.md "NIBP cuff fault"; all UNCONFIRMED, ref §2.2):
    "abort_retries": 5,  # aborts re-sent after the first while the cuff is not seen deflated
    "abort_retry_ms": 3000,  # re-send when the cuff still reads inflated this long after an 'A'
    "deflate_ms": 10000,  # after a failure the module reported, deflated within this or fault
    "cuff_known_ms": 2000,  # a cuff reply this recent means the module can tell the pressure
}

_PATIENTS = {
    "adult": (CMD_START_ADULT, "k_timeout_adult_ms"),
    "pediatric": (CMD_START_PEDIATRIC, "k_timeout_pediatric_ms"),
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
CUFF_MAX = 400  # mmHg; cuff_mmhg shows 0..CUFF_MAX; a higher (checksummed) reply is not shown
# but still counts as overpressure; negative replies are ignored (S32 ignores -1, UNCONFIRMED)


class SuntechNibp:
    """SunTech Advantage driver. feed() with received bytes, step() regularly (every loop pass),
    start()/abort() on demand. Results go to `reading` (a NibpReading); failures set `error`,
    `condition` ("NIBP_FAILED" / "NIBP_COMM_LOST") and error_text(). After a failure or an
    overrun the driver is busy in ST_DEFLATING until the cuff reads deflated; `cuff_fault` /
    `cuff_fault_reason` tell whether that is an alarm (NIBP_CUFF_FAULT)."""

    def __init__(self, uart, reading, patient="adult", **timeouts):
        for key in timeouts:
            if key not in DEFAULTS:
                raise ValueError("unknown SunTech setting: %s" % key)
        for key in DEFAULTS:
            setattr(self, key, timeouts.get(key, DEFAULTS[key]))
        self.uart = uart
        self.reading = reading
        self._rx = bytearray(_MAXLEN)
        self.set_patient(patient)
        self._k = 0
        self._rx_t = 0
        self._tx_any = False
        self._last_tx = 0
        self.state = ST_IDLE
        self.error = 0
        self.condition = None
        self.cuff_mmhg = NONE
        self.cuff_fault = False  # the cuff may be inflated on the patient: NIBP_CUFF_FAULT
        self.cuff_fault_reason = None  # short readable text while cuff_fault is set
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
        self._running = False  # a start was sent: the cuff limits apply until the cycle ends
        self._t_start = 0
        self._cuff_seen = False
        self._cuff_t = 0  # when the last valid cuff reply arrived
        self._t_check = 0  # when the deflation check (ST_DEFLATING) began
        self._aborts = 0  # aborts sent in this check
        self._abort_due = False
        self._abort_acked = False
        self._t_abort = 0
        self._low = 0  # consecutive cuff readings below the residual
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
        self.aborts_sent = 0
        self.cuff_faults = 0  # times cuff_fault was raised

    # ---- configuration -------------------------------------------------------------------
    def set_patient(self, patient):
        try:
            self._start_cmd, key = _PATIENTS[patient]
        except KeyError:
            raise ValueError("unknown patient type: %s" % patient) from None
        self.patient = patient
        self._k_timeout = getattr(self, key)
        self._max_mmhg, self._max_ms = CUFF_LIMITS[patient]

    @property
    def busy(self):
        return self.state != ST_IDLE

    def error_text(self, code=None):
        c = self.error if code is None else code
        if not c:
            return ""
        for i in range(0, len(_TEXTS), 2):
            if _TEXTS[i] == c:
                return _TEXTS[i + 1]
        return "NIBP module error %d" % c

    # ---- requests ------------------------------------------------------------------------
    def start(self, now_ms):
        """Measure now. False while busy (measuring, aborting or checking the cuff) or while
        cuff_fault is set."""
        if self.state != ST_IDLE or self.cuff_fault:
            return False
        self.error = 0
        self.condition = None
        self._k_timed_out = False
        self._after_abort = False
        self._running = True
        self._t_start = now_ms
        self.state = ST_STARTING
        self._issue(self._start_cmd, now_ms)
        return True

    def abort(self, now_ms):
        """Abort (and deflate). A following EC 86 is not a failure. While the cuff is being
        checked or is faulted (ST_DEFLATING) this sends the abort again at once with a fresh
        retry budget (staff at the bedside); the fault still ends only when the cuff reads
        deflated (or clear_cuff_fault() while the module is silent)."""
        if self.state == ST_DEFLATING:
            self._aborts = 0
            self._abort_due = True
            return EV_NIBP_STATE
        self.error = 0
        self.condition = None
        self._after_abort = True
        self.state = ST_ABORTING
        self._issue(CMD_ABORT, now_ms)
        return EV_NIBP_STATE

    def clear_cuff_fault(self, now_ms):
        """Staff confirm the cuff is deflated or off the arm while the module cannot tell (no
        cuff reply within cuff_known_ms): ends the check and the fault. Refused (False) while
        the module reports a pressure: then its reading decides."""
        if self.state != ST_DEFLATING:
            return False
        if self._cuff_seen and elapsed(now_ms, self._cuff_t) < self.cuff_known_ms:
            return False
        self.cuff_fault = False
        self.cuff_fault_reason = None
        self._finish()
        return True

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
        if cmd is CMD_ABORT:
            self.aborts_sent += 1
            self._t_abort = now

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
        self._running = False
        self.state = ST_IDLE
        if self.cuff_mmhg != NONE:
            self.cuff_mmhg = NONE
            return EV_NIBP_STATE | EV_NIBP_CUFF
        return EV_NIBP_STATE

    def _fail(self, code, now, reason=None):
        """A failure. After a timeout the cuff pressure is unknown: cuff fault at once (so too
        with a `reason`: overpressure, overtime). After a failure the module reported (EC, BPS,
        rejected, busy) the cuff must read deflated within deflate_ms, else cuff fault."""
        self.error = code
        lost = code == ERR_NO_ACK or code == ERR_NO_DATA or code == ERR_SILENT
        self.condition = COND_COMM_LOST if lost else COND_FAILED
        if not self._running:
            return self._finish() | EV_NIBP_ERROR  # nothing was measuring (abort while idle)
        if reason is None and (lost or code == ERR_K_TIMEOUT):
            reason = self.error_text(code)
        return self._check_cuff(now, reason, False) | EV_NIBP_ERROR

    def _aborted(self, now):
        """Our abort completed: check the cuff deflates if it was last seen inflated."""
        if self._running and self.cuff_mmhg != NONE and self.cuff_mmhg >= CUFF_RESIDUAL_MMHG:
            return self._check_cuff(now, None, True)
        return self._finish()

    def _check_cuff(self, now, reason, aborted):
        """Enter ST_DEFLATING: abort (unless `aborted` already) and poll until deflated.
        `reason` not None: cuff fault at once."""
        self._cmd = None
        self._sent = False
        self._wait = False
        self.state = ST_DEFLATING
        self._t_check = now
        self._aborts = 1 if aborted else 0
        self._abort_due = not aborted
        self._abort_acked = aborted
        self._low = 0
        self._poll_t = now
        ev = EV_NIBP_STATE
        if reason is not None:
            ev |= self._raise(reason)
        return ev

    def _raise(self, reason):
        if self.cuff_fault:
            return 0  # the first reason stays
        self.cuff_fault = True
        self.cuff_fault_reason = reason
        self.cuff_faults += 1
        return EV_CUFF_FAULT

    def _deflated(self):
        ev = self._finish()
        if self.cuff_fault:
            self.cuff_fault = False
            self.cuff_fault_reason = None
            ev |= EV_CUFF_DEFLATED
        return ev

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
        """Timeouts, retries, cuff polling, cuff limits. Call often (every loop pass)."""
        st = self.state
        if st == ST_IDLE:
            return 0
        now = now_ms
        if st == ST_DEFLATING:
            return self._step_deflating(now)
        if self._running and elapsed(now, self._t_start) > self._max_ms:
            reason = "measurement over %d s (%s limit)" % (self._max_ms // 1000, self.patient)
            return self._fail(ERR_OVERTIME, now, reason)
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
                return self._fail(ERR_SILENT, now)
            if elapsed(now, self._poll_t) >= self.poll_ms and self._gap_ok(now):
                self._write(CMD_GET_CUFF, now)
                self._poll_t = now
            return 0
        waited = elapsed(now, self._t_cmd)
        if st == ST_READING:
            if waited >= self.data_timeout_ms:
                if self._tries > self.data_retries:
                    return self._fail(ERR_NO_DATA, now)
                self._try_send(now)
            return 0
        if self._acked:  # ST_ABORTING after 'A': waiting for 'K'
            if waited >= self.abort_k_timeout_ms:
                return self._aborted(now)  # nothing was running: 'A' without 'K'
            return 0
        if waited >= self.ack_timeout_ms:
            if self._tries > self.ack_retries:
                return self._fail(ERR_NO_ACK, now)
            self._try_send(now)
        return 0

    def _step_deflating(self, now):
        ev = 0
        if self.cuff_mmhg != NONE and elapsed(now, self._cuff_t) >= self.cuff_known_ms:
            self.cuff_mmhg = NONE  # the module went silent: the pressure is unknown, not old
            ev = EV_NIBP_CUFF
        if not self.cuff_fault and elapsed(now, self._t_check) >= self.deflate_ms:
            s = self.deflate_ms // 1000
            if self.cuff_mmhg == NONE:
                ev |= self._raise("cuff pressure unknown %d s after the failure" % s)
            else:
                ev |= self._raise(
                    "cuff still %d mmHg %d s after the failure" % (self.cuff_mmhg, s)
                )
        if not self._gap_ok(now):
            return ev
        if self._abort_due or (
            self._aborts <= self.abort_retries
            and elapsed(now, self._t_abort)
            >= (self.abort_retry_ms if self._abort_acked else self.ack_timeout_ms)
        ):
            self._write(CMD_ABORT, now)
            self._aborts += 1
            self._abort_due = False
            self._abort_acked = False
        elif elapsed(now, self._poll_t) >= self.poll_ms:
            self._write(CMD_GET_CUFF, now)
            self._poll_t = now
        return ev

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
            return self._cuff(p[2] | (p[3] << 8), now)
        if n == _LEN_DATA and self.state == ST_READING:
            return self._result(now)
        self.other_packets += 1
        return 0

    def _cuff(self, v, now):
        if v & 0x8000:
            v -= 0x10000
        if v < 0:
            self.cuff_rejected += 1
            return 0
        st = self.state
        if st == ST_IDLE:
            return 0
        self._cuff_seen = True
        self._cuff_t = now
        ev = 0
        if v > CUFF_MAX:
            self.cuff_rejected += 1  # not shown, but it still counts as overpressure below
        elif v != self.cuff_mmhg:
            self.cuff_mmhg = v
            ev = EV_NIBP_CUFF
        if v > self._max_mmhg:
            self._low = 0
            if self.cuff_fault or not (self._running or st == ST_DEFLATING):
                return ev  # already faulted (no text built per reply: allocation-free)
            reason = "cuff %d mmHg above the %s limit %d mmHg" % (v, self.patient, self._max_mmhg)
            if st == ST_DEFLATING:
                return ev | self._raise(reason)
            return ev | self._fail(ERR_OVERPRESSURE, now, reason)
        if st == ST_DEFLATING:
            if v < CUFF_RESIDUAL_MMHG:
                self._low += 1
                if self._low >= _DEFLATED_READS:
                    ev |= self._deflated()
            else:
                self._low = 0
        return ev

    def _status(self, c, now):
        st = self.state
        if st == ST_DEFLATING:
            if c == _C_A:
                self._abort_acked = True
            return 0  # 'K' after our abort, or anything else: the cuff reading decides
        if c == _C_K:
            if st == ST_MEASURING or st == ST_STARTING or (st == ST_ABORTING and self._acked):
                return self._request_data(now)  # finished ('O' lost if STARTING)
            if st == ST_ABORTING:
                self._acked = True  # 'K' before 'A'
                return self._request_data(now)
            self.unsolicited_k += 1
            return 0
        if c == _C_O:
            if st == ST_STARTING:
                return self._measure(now)
            return 0
        if c == _C_A:
            if st == ST_ABORTING and not self._acked:
                self._acked = True
                self._t_cmd = now
            return 0
        if c == _C_S:
            self.other_packets += 1
            return 0
        waiting = st == ST_STARTING
        if c == _C_B:
            self.busy_replies += 1
            if waiting:
                self._busy += 1
                if self._busy > self.busy_retries:
                    return self._fail(ERR_BUSY, now)
                self._tries = 0
                self._retry_later(now, self.busy_retry_ms)
            return 0
        # 'E', 'N', 'D', 'T' and unknown characters: the command was not taken
        self.other_packets += 1
        if waiting or st == ST_READING or (st == ST_ABORTING and not self._acked):
            if self._tries > self.ack_retries:
                return self._fail(ERR_REJECTED, now)
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
                return self._fail(ERR_BAD_DATA, now)
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
            return self._aborted(now)  # EC 86 (or anything) after our abort: not a failure
        if ec:
            return self._fail(ec, now)
        return self._fail(ERR_K_TIMEOUT if self._k_timed_out else ERR_BAD_DATA, now)
