# test_session_alloc.py: with an infusion session running, the device's steady-state tick
# (including the once-a-second session step) allocates nothing (MicroPython, gc disabled).
import test_device_alloc as tda
from bedside.device import Device
from fakes import Clock, MemStore
from mputil import alloc_per_call, nonin2_packet, skip


def test_session_tick_allocates_nothing():
    """REQ-SES-31: with a session in infusion the device's tick, the session step and its
    once-a-second sync (NIBP interval, rules' facts, display text) allocate no heap."""
    clock = Clock()
    oxi = tda.LoopUart(nonin2_packet(72, 97) * 3, 4)
    q = tda.Quiet()
    dev = Device(clock.now, oxi, tda.Silent(), q, q, store=MemStore())
    ctl = dev.session()
    s = ctl.sess
    assert s.apply("open", {"patient": "P", "course_day": 1, "course_total": 1})[0] is None
    assert s.apply("screened", {})[0] is None
    s.base = (120, 80, 93, 72, 97)  # (the baseline rule has its own tests)
    assert s.apply("start", {})[0] is None
    for _ in range(300):
        dev.poll(clock.advance(10))
        dev.background(clock.now)
    assert dev.sessctl.text.startswith("INFU") and s.infusion_s >= 2

    def tick():
        dev._t_report = clock.now  # keep the once-a-second report out of the measurement
        dev.poll(clock.advance(10))

    per = alloc_per_call(tick, 250)  # 2.5 s: the session's second boundaries included
    if per is None:
        skip("heap allocation is measured on MicroPython only")
    assert per == 0, per
