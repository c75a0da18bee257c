# display.py: what the bedside OLED shows, as text: a fixed grid of 8 lines x 16 characters
# (128x64 pixels at the 8x8 font). Pure core: no hardware, now_ms comes in as an argument.
# The board layer (board/rp2040.py Screen) draws the lines on the SSD1306; the SIL writes them
# to --display-file. The alarm lines are TALL (drawn 8x16, covering the grid row below, which
# stays empty) so the condition and its priority are legible at 1 m (hardware/README.md).
#
#   0-1  "!!  MEDIUM   1/3"   priority marker (IEC convention) and name; k/n when several
#   2-3  "SpO2 LOW"           the condition title (conditions.py), inverted+flashing if HIGH
#   4    "AUDIO PAUSED 95s"   while any alarm's audio is paused
#   5    "SpO2  97  PR  72"   "--" when there is no current value
#   6    "120/80 (93) 12m"    last NIBP with its age (never shown without it)
#   7    "INFU CHK 12m"       the session phase and next check (a key prompt while one runs);
#                             while measuring the cuff pressure on the left
#
# render() allocates only when a line's inputs change (the keys below), so a steady screen
# costs no heap; `dirty` says which lines changed so the board redraws only those.
from bedside.alarms.conditions import CONDITIONS, COUNT, P_HIGH, P_MEDIUM
from bedside.compat import const
from bedside.readings import NONE
from bedside.ticks import AGE_MAX, elapsed, ticks_diff

WIDTH = const(16)
LINES = const(8)
L_HEADER = const(0)
L_TITLE = const(2)
L_PAUSE = const(4)
L_VITALS = const(5)
L_NIBP = const(6)
L_INFO = const(7)
TALL = const(0x05)  # bitmask of lines drawn double height: L_HEADER, L_TITLE
MARKERS = ("", "!", "!!", "!!!")  # by priority: none, LOW, MEDIUM, HIGH
PRIORITY_WORDS = ("", "LOW", "MEDIUM", "HIGH")
CYCLE_MS = const(2500)  # several alarms: each is shown this long (a queued display)
FLASH_MS = const(500)  # HIGH: inverted for 500 ms, normal for 500 ms
_K_AGE = const(LINES)  # extra key slot: the NIBP age bucket
# Words shortened, in order, only for a title longer than WIDTH.
_SHORTER = (("OXIMETER", "OXI"), ("SIGNAL", "SIG"), ("SETTINGS", "SET"))


def fit_title(title, width=WIDTH):
    """A condition title in at most `width` characters (abbreviated, then cut, only if needed)."""
    for long, short in _SHORTER:
        if len(title) <= width:
            break
        title = title.replace(long, short)
    return title[:width]


def age_text(ms):
    """A reading's age in at most 3 characters: 59s, 12m, 5h, >3d (ages saturate)."""
    if ms >= AGE_MAX:
        return ">3d"
    s = ms // 1000
    if s < 60:
        return "%ds" % s
    if s < 3600:
        return "%dm" % (s // 60)
    if s < 360000:
        return "%dh" % (s // 3600)
    return "%dd" % (s // 86400)


def _age_key(ms):
    s = ms // 1000
    if s < 60:
        return s
    if s < 3600:
        return 100 + s // 60
    if s < 360000:
        return 200 + s // 3600
    return 400 + s // 86400


class Display:
    """The screen as text. render(dev, now) -> the lines (one list, updated in place)."""

    def __init__(self):
        self.lines = [""] * LINES
        self.inverse = 0  # bitmask of lines drawn inverted (white background)
        self.dirty = 0  # bitmask of lines whose text or inversion the last render changed
        self.titles = tuple(fit_title(c[6]) for c in CONDITIONS)
        self._keys = [None] * (LINES + 1)
        self._phase = None
        self._order = bytearray(COUNT)  # visible conditions, highest priority first
        self.count = 0  # how many are visible
        self.shown = -1  # the condition on the alarm lines (index into CONDITIONS), or -1
        self._k = 0  # its position in _order
        self._top = -1
        self._top_prio = 0
        self._t_cycle = 0
        self._t_flash = 0

    @property
    def changed(self):
        return self.dirty != 0

    def render(self, dev, now):
        """Bring the lines up to date with the device at now; sets dirty and inverse."""
        self.dirty = 0
        a = dev.alarms
        inv = self._alarm(a, now)
        self._pause(a, now)
        self._vitals(dev, now)
        self._nibp(dev, now)
        if inv != self.inverse:
            self.dirty |= inv ^ self.inverse
            self.inverse = inv
        return self.lines

    # --- helpers ------------------------------------------------------------------------
    def _stale(self, li, key):
        """True (and remembers key) if line li's inputs changed since it was last built."""
        if self._keys[li] == key:
            return False
        self._keys[li] = key
        return True

    def _put(self, li, text):
        if text != self.lines[li]:
            self.lines[li] = text
            self.dirty |= 1 << li

    # --- alarm lines --------------------------------------------------------------------
    def _sort(self, a):
        order = self._order
        prio = a.prio
        t = a.t_start
        n = 0
        for i in range(COUNT):
            if not a.state[i]:
                continue
            j = n
            while j > 0:  # insertion sort, same order as AlarmEngine.top()
                o = order[j - 1]
                if prio[i] < prio[o] or (prio[i] == prio[o] and ticks_diff(t[i], t[o]) >= 0):
                    break
                order[j] = o
                j -= 1
            order[j] = i
            n += 1
        return n

    def _alarm(self, a, now):
        n = self._sort(a)
        self.count = n
        if n == 0:
            self._top = -1
            self.shown = -1
            if self._stale(L_HEADER, 0):
                self._keys[L_TITLE] = None
                self._put(L_HEADER, "")
                self._put(L_TITLE, "")
            return 0
        top = self._order[0]
        if top != self._top or a.prio[top] != self._top_prio:
            # a new highest alarm (or an escalation) is shown at once, flashing from "on"
            self._top = top
            self._top_prio = a.prio[top]
            self._k = 0
            self._t_cycle = now
            self._t_flash = now
        elif elapsed(now, self._t_cycle) >= CYCLE_MS:
            self._k += 1
            self._t_cycle = now
        if self._k >= n:
            self._k = 0
        i = self._order[self._k]
        self.shown = i
        p = a.prio[i]
        if self._stale(L_HEADER, (p << 16) | ((self._k + 1) << 8) | n):
            head = "%-3s %s" % (MARKERS[p], PRIORITY_WORDS[p])
            if n > 1:
                pos = "%d/%d" % (self._k + 1, n)
                head = head + " " * (WIDTH - len(head) - len(pos)) + pos
            self._put(L_HEADER, head)
        if self._stale(L_TITLE, i):
            self._put(L_TITLE, self.titles[i])
        if p == P_HIGH:
            if (elapsed(now, self._t_flash) // FLASH_MS) & 1:
                return 0
            return (1 << L_HEADER) | (1 << L_TITLE)
        if p == P_MEDIUM:
            return 1 << L_HEADER
        return 0

    def _pause(self, a, now):
        ms = a.paused_remaining_ms(now)
        if ms <= 0:
            key = 0
        else:
            s = (ms + 999) // 1000  # count down to 1 s, never show 0 s while paused
            key = s if s < 100 else 1000 + (s + 59) // 60
        if self._stale(L_PAUSE, key):
            if key == 0:
                text = ""
            elif key < 1000:
                text = "AUDIO PAUSED %ds" % key
            else:
                text = "AUDIO PAUSED %dm" % (key - 1000)
            self._put(L_PAUSE, text)

    # --- vitals -------------------------------------------------------------------------
    def _vitals(self, dev, now):
        r = dev.oxi
        o = dev.obs  # one definition of "current" (bedside.observations)
        spo2 = r.spo2 if o.spo2_current(now) else NONE
        pr = r.pr if o.pr_current(now) else NONE
        if self._stale(L_VITALS, ((spo2 + 1) << 12) | (pr + 1)):
            self._put(
                L_VITALS,
                "SpO2 %3s  PR %3s" % ("--" if spo2 == NONE else spo2, "--" if pr == NONE else pr),
            )

    def _nibp(self, dev, now):
        drv = dev.nibp_drv
        n = dev.nibp
        if drv is None:
            key = -2
        elif not n.valid:
            key = -1
        else:
            key = (n.sys << 20) | (n.dia << 10) | n.map
        age = dev.nibp_age.ms(now) if key >= 0 else 0
        age_key = _age_key(age)
        if self._stale(L_NIBP, key) | self._stale(_K_AGE, age_key):
            if key == -2:
                text = ""
            elif key == -1:
                text = "BP --/--"
            else:
                text = _fit_nibp(n, age_text(age))
            self._put(L_NIBP, text)
        busy = drv is not None and drv.busy
        cuff = drv.cuff_mmhg if busy else NONE
        ctl = dev.sessctl  # the session phase and next check, or a key prompt
        phase = ctl.text if ctl is not None else "IDLE"
        if self._stale(L_INFO, (1 << 12) | (cuff + 1) if busy else 0) or phase != self._phase:
            self._phase = phase
            left = ("CUFF %d" % cuff if cuff != NONE else "CUFF --") if busy else ""
            room = WIDTH - len(left) - (1 if left else 0)
            right = phase[:room]
            self._put(L_INFO, left + " " * (WIDTH - len(left) - len(right)) + right)


def _fit_nibp(n, age):
    for fmt in ("BP %d/%d (%d) %s", "%d/%d (%d) %s", "%d/%d(%d) %s"):
        text = fmt % (n.sys, n.dia, n.map, age)
        if len(text) <= WIDTH:
            return text
    return text[:WIDTH]
