# masimo.py: Masimo Rad-8 / Radical-7 serial "ASCII 1" line decoder: protocols.md section 1.9.
# 9600 8N1 (S19), about one line a second: "date time SN=.. SPO2=097% BPM=072 PI=02.50% ...
# ALARM=hhhh EXC=hhhhhh" CR LF. Parsed as KEY=value tokens, not columns; dashes = missing.
# Lines are delimited and keyed, so there is no mis-lock; but a dropped or corrupted EXC digit
# reads as another bit (000010 -> 00001 "no sensor"), so the sensor-off flags change only when two
# lines in a row agree (one more second for sensor-off; values are not held back).
# Allocation-free: a preallocated line buffer parsed by index (no str, no slices).
from bedside.compat import const
from bedside.readings import (
    F_ARTIFACT,
    F_LOW_PERF,
    F_MISSING,
    F_NO_FINGER,
    F_SEARCHING,
    F_SENSOR_OFF,
    NONE,
    OFF_FLAGS,
    Q_LOW,
    Q_UNKNOWN,
)
from bedside.sensors import EV_ERROR, EV_FRAME, EV_READING

FORMAT = "masimo"
BAUD = 9600
FRAME_RATE = 1  # lines per second (S22 timestamps; "trend data at 2 s intervals" per S19)
PR_MAX = 400  # plausibility bound on BPM; above -> missing
PI_MAX_X100 = 2000  # perfusion index range 0.02..20 %; above -> missing (fuzzing found 20000 %)
MAX_LINE = 192  # default line buffer; vector 22 is 127 bytes + CR LF, Radical-7 adds PVI=nnn

# EXC bits: S21 only, all UNCONFIRMED (section 1.9); isolated so a real table can replace them.
EXC_NO_SENSOR = const(0x001)
EXC_DEFECTIVE_SENSOR = const(0x002)
EXC_LOW_PERFUSION = const(0x004)
EXC_PULSE_SEARCH = const(0x008)
EXC_INTERFERENCE = const(0x010)
EXC_SENSOR_OFF = const(0x020)  # sensor off the patient
EXC_AMBIENT_LIGHT = const(0x040)
EXC_UNRECOGNISED_SENSOR = const(0x080)
EXC_LOW_SIGNAL_IQ = const(0x400)
EXC_SET_MODE = const(0x800)  # informational, no flag
_EXC_OFF = const(0x001 | 0x002 | 0x020 | 0x080)  # -> F_SENSOR_OFF
_EXC_ARTIFACT = const(0x010 | 0x040 | 0x400)  # -> F_ARTIFACT
_EXC_LOWQ = const(0x004 | 0x400)  # -> quality Q_LOW

_K_SPO2 = b"SPO2"
_K_BPM = b"BPM"
_K_PI = b"PI"
_K_EXC = b"EXC"
_K_ALARM = b"ALARM"
_MAX_DIGITS = const(6)  # longer numbers are garbage (and would allocate a big int)
_BAD = const(-2)  # field present but malformed


def _is(b, s, e, key):
    """b[s:e] == key, without slicing."""
    if e - s != len(key):
        return False
    for j in range(e - s):
        if b[s + j] != key[j]:
            return False
    return True


def _dec(b, s, e, frac):
    """Decimal field b[s:e] scaled by 10**frac ('97%' -> 97, '02.50%' frac 2 -> 250).
    NONE if it holds a dash (missing), _BAD if malformed."""
    if e > s and b[e - 1] == 0x25:  # trailing '%'
        e -= 1
    if e <= s:
        return _BAD
    v = 0
    nd = 0
    fd = -1  # fraction digits seen, -1 = no point yet
    dash = False
    for j in range(s, e):
        c = b[j]
        if c == 0x2D:  # '-'
            dash = True
        elif 0x30 <= c <= 0x39:
            if fd >= 0:
                if fd >= frac:
                    continue  # extra precision: truncate
                fd += 1
            nd += 1
            if nd > _MAX_DIGITS:
                return _BAD
            v = v * 10 + c - 0x30
        elif c == 0x2E and fd < 0:  # '.'
            fd = 0
        elif c == 0x2B and j == s:  # leading '+'
            pass
        else:
            return _BAD
    if dash:
        return NONE
    if nd == 0:
        return _BAD
    if fd < 0:
        fd = 0
    while fd < frac:
        v *= 10
        fd += 1
    return v


def _hex(b, s, e):
    if e <= s or e - s > _MAX_DIGITS:
        return _BAD
    v = 0
    for j in range(s, e):
        c = b[j]
        if 0x30 <= c <= 0x39:
            v = (v << 4) | (c - 0x30)
        elif 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66:
            v = (v << 4) | ((c | 0x20) - 0x57)
        else:
            return _BAD
    return v


class MasimoDecoder:
    """ASCII 1 line decoder; every line with SPO2= and BPM= tokens is one completed reading.

    Line ends: CR or LF (CR LF per S21 is UNCONFIRMED, so either ends a line; empty lines are
    ignored). Lines longer than max_line are dropped and counted (lines_overlong); decoding
    resumes after the next line end. Lines holding non-printable bytes are rejected.
    EXC -> flags (bit table UNCONFIRMED, see EXC_* constants): no/defective/unrecognised sensor
    and sensor off -> F_SENSOR_OFF (sensor off also F_NO_FINGER); low perfusion -> F_LOW_PERF;
    pulse search -> F_SEARCHING; interference, ambient light, low signal IQ -> F_ARTIFACT.
    ALARM is kept raw in `alarm` (NONE if absent); `alarm_lines` counts lines with ALARM != 0.
    """

    def __init__(self, reading, max_line=MAX_LINE):
        self.reading = reading
        self._buf = bytearray(max_line)
        self._max = max_line
        self.reset()

    def reset(self):
        self._k = 0
        self._dropping = False
        self._off = 0  # published sensor-off flags
        self._off_last = 0  # the previous line's
        self.exc = NONE
        self.alarm = NONE
        self.frames_ok = 0
        self.frames_bad = 0  # lines rejected (overlong, non-printable, no SPO2/BPM)
        self.bytes_skipped = 0
        self.packets = 0
        self.frame_losses = 0  # lines lost because they were overlong
        self.lines_overlong = 0
        self.field_errors = 0  # malformed or out-of-range values (reported as NONE)
        self.alarm_lines = 0

    def feed(self, buf, n, now_ms):
        """Decode n bytes of buf (bytes, bytearray or memoryview). Returns EV_* bits."""
        ev = 0
        lb = self._buf
        k = self._k
        for i in range(n):
            c = buf[i]
            if c == 0x0A or c == 0x0D:
                if self._dropping:
                    self._dropping = False
                elif k:
                    ev |= self._line(k, now_ms)
                k = 0
            elif self._dropping:
                self.bytes_skipped += 1
            elif k == self._max:
                self._dropping = True
                self.lines_overlong += 1
                self.frame_losses += 1
                self.frames_bad += 1
                self.bytes_skipped += k + 1
                ev |= EV_ERROR
                k = 0
            else:
                lb[k] = c
                k += 1
        self._k = k
        return ev

    def _line(self, k, now_ms):
        b = self._buf
        for i in range(k):
            c = b[i]
            if c < 0x20 or c > 0x7E:
                self.frames_bad += 1
                self.bytes_skipped += k
                return EV_ERROR
        spo2 = _BAD - 1  # sentinel: key not seen
        bpm = _BAD - 1
        pi = NONE
        exc = NONE
        alarm = NONE
        i = 0
        while i < k:
            while i < k and b[i] == 0x20:
                i += 1
            s = i
            eq = -1
            while i < k and b[i] != 0x20:
                if eq < 0 and b[i] == 0x3D:
                    eq = i
                i += 1
            if eq <= s:
                continue
            if _is(b, s, eq, _K_SPO2):
                spo2 = _dec(b, eq + 1, i, 0)
            elif _is(b, s, eq, _K_BPM):
                bpm = _dec(b, eq + 1, i, 0)
            elif _is(b, s, eq, _K_PI):
                pi = _dec(b, eq + 1, i, 2)
            elif _is(b, s, eq, _K_EXC):
                exc = _hex(b, eq + 1, i)
            elif _is(b, s, eq, _K_ALARM):
                alarm = _hex(b, eq + 1, i)
        if spo2 < _BAD or bpm < _BAD:
            self.frames_bad += 1
            self.bytes_skipped += k
            return EV_ERROR
        self.frames_ok += 1
        flags = 0
        if spo2 == _BAD or spo2 > 100:
            self.field_errors += 1
            spo2 = NONE
        if bpm == _BAD or bpm > PR_MAX:
            self.field_errors += 1
            bpm = NONE
        if spo2 == NONE or bpm == NONE:
            flags |= F_MISSING
        if pi == _BAD or pi > PI_MAX_X100:
            self.field_errors += 1
            pi = NONE
        if exc == _BAD:
            self.field_errors += 1
            exc = NONE
        if alarm == _BAD:
            self.field_errors += 1
            alarm = NONE
        q = Q_UNKNOWN
        if exc != NONE:
            if exc & _EXC_OFF:
                flags |= F_SENSOR_OFF
            if exc & EXC_SENSOR_OFF:
                flags |= F_NO_FINGER
            if exc & EXC_LOW_PERFUSION:
                flags |= F_LOW_PERF
            if exc & EXC_PULSE_SEARCH:
                flags |= F_SEARCHING
            if exc & _EXC_ARTIFACT:
                flags |= F_ARTIFACT
            if exc & _EXC_LOWQ:
                q = Q_LOW
        if exc != NONE:  # no EXC (missing or malformed): no news about the sensor
            off = flags & OFF_FLAGS
            if off == self._off_last:
                self._off = off  # two lines in a row agree
            self._off_last = off
        flags = (flags & ~OFF_FLAGS) | self._off
        self.exc = exc
        self.alarm = alarm
        if alarm != NONE and alarm:
            self.alarm_lines += 1
        r = self.reading
        r.publish(spo2, bpm, q, flags, NONE, pi, now_ms)
        self.packets += 1
        return EV_FRAME | EV_READING
