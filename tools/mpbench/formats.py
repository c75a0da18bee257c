# formats.py: MicroPython cost per oximeter format (issue 15 figure 2): microseconds per frame
# for decode plus the core step, one frame given to each poll. Run by tools/bench_micropython.py
# on the unix port with a Pico-sized heap (also runs on CPython). Prints human lines and
# "BENCH {json}" lines. Never asserts.
import gc
import json
import sys

import rig
from bedside.device import Device
from bedside.sensors import OXIMETER_FORMATS
from bedside.settings import defaults
from mputil import nonin2_packet

QUICK = "--quick" in sys.argv
REPS = 3 if QUICK else 7  # repeated measurements: the median is reported
POLLS = 300 if QUICK else 1000  # polls per measurement
median = rig.median


def _nonin7_packet():
    out = bytearray()
    for f in range(1, 26):
        flt = (72 >> 7) & 3 if f == 1 else (72 & 0x7F if f == 2 else (97 if f == 3 else 0))
        fr = (0x82 | (1 if f == 1 else 0), 0x81, 0x23, flt)
        out += bytes(fr) + bytes(((sum(fr)) & 0xFF,))
    return bytes(out)


_MASIMO = (
    b"01/01/25 12:00:00 SN=0000012345 SPO2=097% BPM=072 PI=02.50% SPCO=--.-% SPMET=--.-%"
    b" DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n"
)
# format -> (a whole number of frames of traffic, bytes per frame)
FRAMES = {
    "nonin2": (nonin2_packet(72, 97), 5),
    "nonin7": (_nonin7_packet(), 5),
    "nonin1": (bytes.fromhex("804862"), 3),
    "berrymed": (bytes.fromhex("8432074862"), 5),
    "masimo": (_MASIMO, len(_MASIMO)),
}


def _device(fmt, uart):
    s = dict(defaults(), oxi_format=fmt, nibp_interval_min=0)
    store = rig.LeanStore({"settings.json": json.dumps(s).encode()})
    clock = rig.Clock()
    q = rig.Quiet()
    dev = Device(clock.now, uart, rig.Host(), q, q, store=store, selftest=False)
    return dev, clock


def _time_polls(dev, clock, uart, per_poll):
    t0 = rig.now_us()
    for _ in range(POLLS):
        uart.avail = per_poll
        dev.poll(clock.advance(10))
    return rig.diff_us(rig.now_us(), t0) / POLLS


def per_format():
    out = {}
    buf = bytearray(64)
    for fmt in sorted(OXIMETER_FORMATS):
        if fmt not in FRAMES:
            print("%-9s no bench traffic" % fmt)
            continue
        data, size = FRAMES[fmt]
        uart = rig.RateUart(data, 0)
        dev, clock = _device(fmt, uart)
        for _ in range(300):  # readings flow
            uart.avail = size
            dev.poll(clock.advance(10))
        dev._t_report = clock.now
        # preallocated: nothing grows on the heap while the repeats are measured
        with_frame = [0.0] * REPS
        idle = [0.0] * REPS
        fake = [0.0] * REPS
        for r in range(REPS):
            dev._t_report = clock.now  # the 1 Hz report falls in the next timings alike
            f0 = dev.decoder.frames_ok
            with_frame[r] = _time_polls(dev, clock, uart, size)
            frames = dev.decoder.frames_ok - f0
            idle[r] = _time_polls(dev, clock, uart, 0)
            t0 = rig.now_us()
            for _ in range(POLLS):  # the double's own byte copy, taken out of the figure
                uart.avail = size
                k = 0
                while k < size:
                    k += uart.readinto(buf, min(64, size - k))
            fake[r] = rig.diff_us(rig.now_us(), t0) / POLLS
        us = median(with_frame) - median(fake)
        out[fmt] = {
            "us_per_frame": us,
            "us_per_frame_best": min(with_frame) - min(fake),
            "idle_tick_us_best": min(idle),
            "idle_tick_us": median(idle),
            "fake_us": median(fake),
            "frames_per_poll": frames / POLLS,
        }
        print(
            "%-9s %6.1f us per frame (decode + core step; idle core step %.1f us; the UART "
            "double's copy %.1f us taken out; %.2f frames per poll)"
            % (fmt, us, median(idle), median(fake), frames / POLLS)
        )
        dev = None
        gc.collect()
    rig.emit("per_format", out)


rig.main({"formats": per_format})
