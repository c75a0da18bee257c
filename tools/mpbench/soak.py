# soak.py: the heap over a simulated 4-hour ketamine infusion plus 30 minutes of recovery, in
# virtual time on MicroPython (issue 15 figure 3). Whole main-loop steps (rig.Heavy: Nonin #2 at
# 75 frames/s, NIBP every 5 minutes, a host that pings every second and asks for a replay every
# minute), with dips below the SpO2 limit, desaturations, pulse and blood pressure excursions,
# and the nurse's ACK and RESET presses. Every 10 virtual seconds the heap is collected and the
# live bytes sampled; at the end the largest block that can still be allocated is found.
# Prints human lines and "BENCH {json}". Never asserts. Run by tools/bench_micropython.py.
import gc
import sys
import time

import bedside.display  # all the code is imported before the heap baseline
import bedside.mainloop
import bedside.nibp_schedule
import bedside.sensors.suntech  # noqa: F401
import nibpmod  # noqa: F401
import rig
from mputil import nonin2_packet

QUICK = "--quick" in sys.argv
INFUSION_MIN = 10 if QUICK else 240
RECOVERY_MIN = 2 if QUICK else 30
SAMPLE_MS = 10000


class Scripted(rig.RateUart):
    """The oximeter, switching to the next pattern at a packet boundary."""

    def __init__(self, pattern, rate):
        super().__init__(pattern, rate)
        self.next = None

    def readinto(self, buf, nbytes=None):
        if self.next is not None and self.j == 0:
            self.data = self.next
            self.next = None
        return super().readinto(buf, nbytes)


def largest_block():
    """The largest bytearray that can be allocated now (binary search, after a collection)."""
    gc.collect()
    lo, hi = 0, gc.mem_free()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            bytearray(mid)
            lo = mid
        except MemoryError:
            hi = mid - 1
    return lo


def free_at_end():
    gc.collect()
    return gc.mem_free()


def main():
    mp = rig.MP
    if mp:
        gc.collect()
    base = gc.mem_alloc() if mp else 0
    display = "--no-display" not in sys.argv
    h = rig.Heavy(spo2=97, display=display)
    pats = {}
    for k in ((72, 97), (78, 88), (84, 82), (140, 96), (72, 94)):
        pats[k] = nonin2_packet(k[0], k[1])
    h.oxi = Scripted(pats[(72, 97)], 375)
    h.dev.oxi_uart = h.oxi
    h.dev.schedule.set_interval(5, h.clock.now)  # NIBP every 5 minutes
    h.nibp.duration_ms = 30000
    h.start()
    dev = h.dev
    if mp:
        gc.collect()
    state0 = gc.mem_alloc() - base if mp else 0
    replay = h.replay
    h.replay = None  # replays once a minute here (below), not every 5 s
    # live bytes above the imports, as running aggregates (a list of samples would itself
    # grow on the heap being measured)
    n_samples = 0
    live_max = 0
    live_min = first_min = last_min = 1 << 30
    peak_raw = 0
    total_min = INFUSION_MIN + RECOVERY_MIN
    ticks = total_min * 6000
    t_wall = time.ticks_ms() if mp else int(time.time() * 1000)
    cur = (72, 97)
    presses = 0
    for k in range(ticks):
        ms = k * 10
        minute = ms // 60000
        sec = (ms // 1000) % 1200  # position in a 20-minute block
        block = ms // 1200000
        if ms % 1000 == 0:
            want = (72, 97)
            if minute < INFUSION_MIN:
                if 420 <= sec < 460:
                    want = (78, 88)  # a dip below the SpO2 low limit: SPO2_LOW after 10 s
                elif block % 2 == 1 and 780 <= sec < 795:
                    want = (84, 82)  # a desaturation: SPO2_DESAT (HIGH, latching)
                elif block % 3 == 2 and 1020 <= sec < 1040:
                    want = (140, 96)  # tachycardia: PR_HIGH after 10 s
                elif 300 <= sec < 360:
                    want = (72, 94)
            if want != cur:
                cur = want
                h.oxi.next = pats[want]
            if sec == 430 or sec == 785 or sec == 1035:
                dev.button("ack", h.clock.now)
                presses += 1
            if sec == 830:
                dev.button("reset", h.clock.now)  # the latched DESAT, after recovery
                presses += 1
            if ms % 60000 == 30000:
                h.host.queue(replay)
            if ms % 300000 == 0:  # the next NIBP result: a rise in the second hour
                s = 120 + (40 if 60 <= minute < 80 else (block % 4) * 5)
                h.nibp.set_result(s, 80, (s + 160) // 3)
        h.tick()
        if mp and ms % SAMPLE_MS == 0:
            a = gc.mem_alloc()
            if a > peak_raw:
                peak_raw = a
            gc.collect()
            live = gc.mem_alloc() - base
            n_samples += 1
            live_max = live if live > live_max else live_max
            live_min = live if live < live_min else live_min
            if 10 <= minute < 70 and live < first_min:
                first_min = live
            if minute >= total_min - 60 and live < last_min:
                last_min = live
    wall_ms = (time.ticks_diff(time.ticks_ms(), t_wall) if mp else
               int(time.time() * 1000) - t_wall)  # fmt: skip
    body = {
        "minutes": total_min,
        "wall_s": wall_ms / 1000,
        "hours_per_s": total_min / 60 / (wall_ms / 1000) if wall_ms else None,
        "faults": dev.faults,
        "presses": presses,
        "alarm_events": dev.alog.seq if dev.alog is not None else None,
        "nibp_results": h.nibp.results,
        "display": display,
    }
    if mp:
        if first_min == 1 << 30:  # a short (quick) run: its whole length
            first_min = live_min
        body.update(
            {
                "heap": gc.mem_free() + gc.mem_alloc(),
                "after_imports": base,
                "state_at_start": state0,
                "live_max": live_max,
                "live_min": live_min,
                "live_first_hour_min": first_min,
                "live_last_hour_min": last_min,
                "growth": last_min - first_min,
                "peak_raw": peak_raw - base,
                "free_at_end": free_at_end(),
                "largest_free_block": largest_block(),
                "samples": n_samples,
            }
        )
        print(
            "soak %d min: live heap above imports %d..%d B (first hour min %d, last hour min "
            "%d), %d B in use with the imports; peak before a collection %d B; largest free "
            "block %d B of %d B free; %d faults; %.2f h per wall s"
            % (
                total_min,
                body["live_min"],
                body["live_max"],
                body["live_first_hour_min"],
                body["live_last_hour_min"],
                body["live_max"] + base,
                body["peak_raw"],
                body["largest_free_block"],
                body["free_at_end"],
                dev.faults,
                body["hours_per_s"] or 0,
            )
        )
    rig.emit("soak", body)


main()
