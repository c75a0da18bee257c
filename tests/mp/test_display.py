# test_display.py: the OLED text frame (bedside.display) through the whole core with fake
# hardware (REQ-HW-07, REQ-HW-08, REQ-HW-10); runs on CPython and MicroPython, with the clock
# crossing the 2**30 ms tick wrap.
from bedside.alarms.conditions import CONDITIONS, COUNT, P_HIGH, P_LOW, P_MEDIUM, index
from bedside.device import Device
from bedside.display import (
    L_HEADER,
    L_INFO,
    L_NIBP,
    L_PAUSE,
    L_TITLE,
    L_VITALS,
    LINES,
    TALL,
    WIDTH,
    Display,
    age_text,
    fit_title,
)
from fakes import Clock, FakeLeds, FakeSounder, FakeUart, MemStore
from mputil import alloc_per_call, release, skip
from scenario import Bench

MIN = 60000


def _drop(t, a, b):
    pass


def _bench(**kw):
    """A Bench that keeps no sounder/LED log (long runs within a Pico-sized heap)."""
    return Bench(sounder_sink=_drop, led_sink=_drop, on_message=_drop_msg, **kw)


def _drop_msg(m):
    pass


class _Ctl:
    """Stands in for the session control (sessionctl.py): only its display text."""

    def __init__(self, text):
        self.text = text

    def tick(self, now):
        pass

    def nibp(self, now):
        pass

    def key(self, name, now):
        return None

    def sync(self, now):
        pass


def _shown(b, d, ms, hr=72, spo2=None, status=0x82, step=250, keep=True):
    """Run the bench for ms, rendering every `step` ms like the board; the frames seen."""
    frames = []
    end = b.t + ms
    while b.t < end:
        b.run(step, hr if spo2 is not None else None, spo2, status)
        d.render(b.dev, b.clock.now)
        if d.changed and keep:
            frames.append((list(d.lines), d.inverse))
    return frames


def _fits(d):
    assert len(d.lines) == LINES
    for li in range(LINES):
        assert len(d.lines[li]) <= WIDTH, d.lines[li]
        if TALL & (1 << li):
            assert d.lines[li + 1] == ""  # a tall line covers the row below


def test_every_title_fits():
    """REQ-HW-10: every condition title fits one 16-character line; only overlong ones change."""
    d = Display()
    for i in range(COUNT):
        t = CONDITIONS[i][6]
        assert len(d.titles[i]) <= WIDTH
        if len(t) <= WIDTH:
            assert d.titles[i] == t
    assert fit_title("OXIMETER COMM LOST") == "OXI COMM LOST"
    assert age_text(59999) == "59s" and age_text(12 * MIN) == "12m"
    assert age_text(5 * 60 * MIN) == "5h" and age_text(3 * 24 * 60 * MIN) == "72h"
    assert age_text(4 * 24 * 60 * MIN) == ">3d"
    assert age_text(5 * 24 * 60 * MIN) == ">3d"


def test_quiet_screen_shows_vitals_and_phase():
    """REQ-HW-08: no alarm: alarm lines empty; SpO2 and pulse; the phase (IDLE: no session)"""
    b = _bench()
    d = Display()
    _shown(b, d, 3000, 72, 97)
    assert d.lines[L_HEADER] == "" and d.lines[L_TITLE] == "" and d.lines[L_PAUSE] == ""
    assert d.lines[L_VITALS] == "SpO2  97  PR  72"
    assert d.lines[L_INFO] == "            IDLE"
    assert d.lines[L_NIBP] == ""  # no NIBP module on this bench
    assert d.inverse == 0
    _fits(d)
    b.dev.sessctl = _Ctl("INFUSION")
    d.render(b.dev, b.clock.now)
    assert d.changed and d.dirty == 1 << L_INFO and d.lines[L_INFO].endswith("INFUSION")
    d.render(b.dev, b.clock.now)
    assert not d.changed and d.dirty == 0  # nothing new: nothing to redraw


def test_spo2_low_shows_medium_marker_and_title():
    """REQ-HW-07: SPO2_LOW (MEDIUM): "!!" marker and the title, header inverted, not flashing."""
    b = _bench()
    d = Display()
    _shown(b, d, 3000, 72, 97)
    frames = _shown(b, d, 12000, 72, 88)
    assert d.lines[L_HEADER] == "!!  MEDIUM" and d.lines[L_TITLE] == "SpO2 LOW"
    assert d.inverse == 1 << L_HEADER
    assert d.lines[L_VITALS] == "SpO2  88  PR  72"
    assert frames[-1][0][L_TITLE] == "SpO2 LOW"
    n = len(_shown(b, d, 3000, 72, 88))
    assert n == 0  # steady alarm, steady values: no redraw
    _fits(d)


def test_high_flashes_inverted():
    """REQ-HW-07: HIGH (SPO2_DESAT): "!!!" marker; header and title flash inverted, 1 Hz."""
    b = _bench()
    d = Display()
    _shown(b, d, 3000, 72, 97)
    frames = _shown(b, d, 4000, 72, 80)
    high = [f for f in frames if f[0][L_HEADER].startswith("!!! HIGH")]
    assert high and high[0][0][L_TITLE] == "SpO2 DESAT"
    assert high[0][1] == (1 << L_HEADER) | (1 << L_TITLE)  # shown inverted at once
    invs = [f[1] for f in high]
    assert 0 in invs and invs.count(0) >= 2 and invs.count(high[0][1]) >= 2  # it flashes
    _fits(d)


def test_sensor_off_and_missing_values():
    """REQ-HW-07, REQ-HW-08: sensor off: technical title; SpO2 and pulse "--", never stale
    values."""
    b = _bench()
    d = Display()
    _shown(b, d, 3000, 72, 97)
    _shown(b, d, 1000, 511, 127, status=0x88)
    assert d.lines[L_TITLE] == "SpO2 SENSOR OFF" and d.lines[L_HEADER] == "!!  MEDIUM"
    assert d.lines[L_VITALS] == "SpO2  --  PR  --"
    b = d = None
    release()  # one device at a time, as on a Pico
    b2 = _bench()
    d2 = Display()
    _shown(b2, d2, 3000, 72, 97)
    _shown(b2, d2, 2500)  # the module goes quiet
    assert d2.lines[L_VITALS] == "SpO2  --  PR  --"


def test_queue_cycles_and_new_top_shows_first():
    """REQ-HW-07: several alarms: highest first, "k/n", next every 2.5 s; a new top at once."""
    b = _bench(reset_cause="watchdog")  # DEVICE_RESTARTED, MEDIUM, from boot
    d = Display()
    _shown(b, d, 3000, 72, 97)
    assert d.lines[L_TITLE] == "DEVICE RESTARTED" and d.count == 1
    assert d.lines[L_HEADER] == "!!  MEDIUM"
    _shown(b, d, 11000, 72, 88)  # SPO2_LOW joins (MEDIUM, started later: second)
    assert d.count == 2
    seen = {}
    for _ in range(30):
        _shown(b, d, 250, 72, 88)
        seen[d.lines[L_HEADER][-3:]] = d.lines[L_TITLE]
        _fits(d)
    assert seen == {"1/2": "DEVICE RESTARTED", "2/2": "SpO2 LOW"}
    # a HIGH alarm jumps the queue and is shown at once, as 1/3
    b.run(600, 72, 80)
    d.render(b.dev, b.clock.now)
    assert d.lines[L_HEADER] == "!!! HIGH     1/3" and d.lines[L_TITLE] == "SpO2 DESAT"
    assert d.shown == index("SPO2_DESAT") and d.shown == b.dev.alarms.top()


def test_audio_paused_countdown():
    """REQ-HW-08: ACK: "AUDIO PAUSED" with the time left (minutes above 99 s), gone at the end."""
    b = _bench()
    d = Display()
    _shown(b, d, 3000, 72, 97)
    _shown(b, d, 11000, 72, 88)
    b.press("ack")
    _shown(b, d, 500, 72, 88)
    assert d.lines[L_PAUSE] == "AUDIO PAUSED 2m"  # 120 s default
    assert d.lines[L_TITLE] == "SpO2 LOW"  # the visual signal stays
    _shown(b, d, 25000, 72, 88, keep=False)
    assert d.lines[L_PAUSE] == "AUDIO PAUSED 95s"
    _shown(b, d, 96000, 72, 88, keep=False)
    assert d.lines[L_PAUSE] == ""
    _fits(d)


def _nibp_device():
    clock = Clock()
    dev = Device(
        clock.now,
        FakeUart(),
        FakeUart(),
        FakeSounder(clock),
        FakeLeds(clock),
        store=MemStore(),
        nibp_uart=FakeUart(),
    )
    return clock, dev


def test_nibp_with_age_and_cuff():
    """REQ-HW-08: last NIBP as "sys/dia (map)" with its age; cuff pressure while measuring."""
    clock, dev = _nibp_device()
    d = Display()
    d.render(dev, clock.now)
    assert d.lines[L_NIBP] == "BP --/--"
    n = dev.nibp
    n.sys, n.dia, n.map, n.valid, n.t_ms = 120, 80, 93, True, clock.now
    dev.nibp_age.mark(clock.now)
    d.render(dev, clock.advance(5000))
    assert d.lines[L_NIBP] == "120/80 (93) 5s"
    d.render(dev, clock.advance(12 * MIN))
    assert d.lines[L_NIBP] == "120/80 (93) 12m"
    d.render(dev, clock.advance(1000))
    assert not d.changed  # the age shown did not change
    n.sys, n.dia, n.map = 300, 300, 300
    d.render(dev, clock.advance(12 * 60 * MIN))
    assert d.lines[L_NIBP] == "300/300(300) 12h"  # the tighter form only when needed
    d.render(dev, clock.advance(60 * 60 * MIN))
    assert d.lines[L_NIBP] == "300/300(300) 72h"
    d.render(dev, clock.advance(40 * 60 * MIN))  # 4 days: older than ages go (AGE_MAX)
    assert d.lines[L_NIBP] == "300/300(300) >3d"
    drv = dev.nibp_drv
    from bedside.sensors.suntech import ST_MEASURING  # the device imported it already

    drv.state, drv.cuff_mmhg = ST_MEASURING, 150
    dev.sessctl = _Ctl("RECOVERY-LONG-NAME")
    d.render(dev, clock.advance(250))
    assert d.lines[L_INFO] == "CUFF 150 RECOVER"
    _fits(d)


def test_lines_always_fit():
    """REQ-HW-10: worst cases (every alarm, every priority, long values) stay in 16 x 8."""
    clock, dev = _nibp_device()
    d = Display()
    a = dev.alarms
    r = dev.oxi
    dev.oxi_seen, dev.oxi_rx_ms, r.spo2, r.pr = True, clock.now, 100, 300
    for i in range(COUNT):
        a.state[i] = 1
        a.prio[i] = (P_LOW, P_MEDIUM, P_HIGH)[i % 3]
        a.t_start[i] = clock.now
    for _ in range(2 * COUNT):
        d.render(dev, clock.advance(2500))
        _fits(d)
        assert d.lines[L_HEADER].endswith("/%d" % COUNT)


def test_steady_render_allocates_nothing():
    """REQ-HW-10: an unchanged screen costs no heap (MicroPython; None on CPython)"""
    b = _bench()
    d = Display()
    _shown(b, d, 3000, 72, 97)
    now = b.clock.now
    per = alloc_per_call(lambda: d.render(b.dev, now), 50)
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
