# heavy.py: the heaviest input on MicroPython (issue 15 figures 2 and 3): one second of Nonin
# #2 at 75 frames/s with an NIBP measurement running, a talking host (pings, replays), an active
# HIGH alarm and the display (rig.Heavy), timed per second and per tick, a per-stage profile,
# and the allocation of steady-state ticks. Run by tools/bench_micropython.py; never asserts.
import gc
import sys

import rig

QUICK = "--quick" in sys.argv
SECONDS = 4 if QUICK else 20  # heaviest seconds measured
ROOM = 16384  # alloc: free bytes kept before each measured tick (more than a tick allocates)
median = rig.median
pct = rig.pct


def heaviest():
    # preallocated before the rig (a fresh heap has the contiguous room): the measuring
    # allocates nothing while it measures; a growing list would take the rig's heap and set
    # off collections inside the timed ticks
    per_second = [0] * SECONDS
    ticks = [0] * (SECONDS * 100)
    h = rig.Heavy()
    h.start()
    if rig.MP:
        gc.collect()
        print("heap in use with the heavy rig running: %d B" % gc.mem_alloc())
    for _ in range(200):
        h.tick()
    k = 0
    for s in range(SECONDS):
        s0 = rig.now_us()
        for _ in range(100):
            t0 = rig.now_us()
            h.tick()
            ticks[k] = rig.diff_us(rig.now_us(), t0)
            k += 1
        per_second[s] = rig.diff_us(rig.now_us(), s0)
    acc = [0] * len(rig.STAGES)
    for _ in range(SECONDS * 100):
        h.profiled_tick(acc)
    dev = h.dev
    ok = dev.alarms.audible_priority() == 3 and h.nibp.measuring and h.host.written > 0
    total = sum(acc)
    body = {
        "second_us_median": median(per_second),
        "second_us_max": max(per_second),
        "second_us_min": min(per_second),
        "tick_us_median": median(ticks, True),  # sorted in place: no copy of the list
        "tick_us_p99": pct(ticks, 99, True),
        "tick_us_max": max(ticks),
        "tick_us_mean": sum(ticks) / len(ticks),
        "seconds": SECONDS,
        "conditions_held": ok,
        "faults": dev.faults,
        "profile_us_per_s": [a / SECONDS for a in acc],
        "profile_stages": list(rig.STAGES),
        "profiled_tick_us_mean": total / (SECONDS * 100),
    }
    print(
        "heaviest second: median %.0f us, max %.0f us of computation per second; per tick "
        "median %.1f us, p99 %.1f us, max %.0f us (alarm HIGH, NIBP measuring, host talking: %s)"
        % (
            body["second_us_median"],
            body["second_us_max"],
            body["tick_us_median"],
            body["tick_us_p99"],
            body["tick_us_max"],
            ok,
        )
    )
    for i, name in enumerate(rig.STAGES):
        print(
            "  %-42s %8.0f us/s  %5.1f %%"
            % (name, acc[i] / SECONDS, 100.0 * acc[i] / total if total else 0)
        )
    rig.emit("heaviest", body)


def allocation():
    body = {"measured": False}
    if not rig.MP:
        rig.emit("alloc", body)
        return
    h = rig.Heavy(display=True)
    h.start()
    for _ in range(300):
        h.tick()
    dev = h.dev
    link = dev.link
    gc.collect()
    if hasattr(gc, "threshold"):
        gc.threshold(-1)  # collect only when an allocation does not fit, as on the Pico
    n = 1000 if QUICK else 3000
    quiet = quiet_bytes = busy = busy_bytes = quiet_frames = shrunk = 0
    for _ in range(n):
        # The collector is held off inside each measured tick and run between ticks while
        # room is short: a collection inside a tick frees earlier ticks' garbage and would
        # mask or invert this tick's bytes. (MicroPython puts the call frame of a function
        # with more than 11 locals and stack slots on the heap for the call and frees it on
        # return: a tick that leaves no garbage can still set off the collection of a full
        # heap, so on the Pico too a collection can fall in a quiet tick.)
        if gc.mem_free() < ROOM:
            gc.collect()
        seq = link.seq
        rx = h.host.reads
        wrote = h.host.written
        ops = h.store.ops
        f0 = dev.decoder.frames_ok
        gc.disable()
        a = gc.mem_alloc()
        h.tick()
        d = gc.mem_alloc() - a
        gc.enable()
        if d < 0:  # memory given back in the tick (a buffer shrunk): churn, counted as bytes
            shrunk += 1
        if (
            link.seq == seq
            and h.host.reads == rx
            and h.host.written == wrote
            and (h.store.ops == ops)
        ):
            quiet += 1
            quiet_bytes += d if d > 0 else -d
            quiet_frames += dev.decoder.frames_ok - f0
        else:
            busy += 1
            busy_bytes += d if d > 0 else -d
    body = {
        "measured": True,
        "ticks": n,
        "quiet_ticks": quiet,
        "quiet_bytes_per_tick": quiet_bytes / quiet if quiet else None,
        "bytes_per_frame": quiet_bytes / quiet_frames if quiet_frames else None,
        "quiet_frames": quiet_frames,
        "busy_ticks": busy,
        "shrunk_ticks": shrunk,
        "avg_bytes_per_tick": (quiet_bytes + busy_bytes) / n,
        "faults": dev.faults,
        "alarm_high": dev.alarms.audible_priority() == 3,
    }
    print(
        "allocation: %d ticks, %d quiet (no message, host I/O or flash op): %s B per quiet "
        "tick, %s B per frame; all ticks: %.1f B per tick on average (messages, replies); "
        "%d ticks gave memory back; %d faults"
        % (
            n,
            quiet,
            body["quiet_bytes_per_tick"],
            body["bytes_per_frame"],
            body["avg_bytes_per_tick"],
            shrunk,
            dev.faults,
        )
    )
    rig.emit("alloc", body)


rig.main({"heavy": heaviest, "alloc": allocation})
