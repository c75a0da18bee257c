# rp2040.py: the Raspberry Pi Pico board layer: hardware objects for the core, and the main loop.
# The only firmware module that imports `machine` and reads the clock. Pins: board/pins.py
# (generated from hardware/pinmap.json). Everything it builds is passed into bedside.Device.
import os
import select
import sys
import time

import machine
from bedside.buttons import LONG, SHORT, Button
from bedside.device import TICK_MS, Device, load_settings
from bedside.sensors import oximeter_module
from bedside.ticks import MASK
from machine import PWM, UART, WDT, Pin

from board import pins

WDT_TIMEOUT_MS = 2000  # rp2040 maximum is 8388 ms
HEARTBEAT_HALF_MS = 50  # backup-sounder heartbeat: 10 Hz square wave while the loop runs
UART_RXBUF = 1024  # about 1 s of data at 9600 baud, covers a stalled loop


class Sounder:
    """PWM into the class-D amplifier (RC-filtered): tone(hz, duty_u16) / off()."""

    def __init__(self, pin, enable_pin=None):
        self._pwm = PWM(Pin(pin))
        self._pwm.duty_u16(0)
        self._en = Pin(enable_pin, Pin.OUT, value=0) if enable_pin is not None else None
        self._hz = 0

    def tone(self, hz, duty):
        if hz != self._hz:
            self._pwm.freq(hz)
            self._hz = hz
        self._pwm.duty_u16(duty)
        if self._en is not None:
            self._en.value(1)

    def off(self):
        self._pwm.duty_u16(0)
        if self._en is not None:
            self._en.value(0)


class Leds:
    """Red, yellow, cyan, green in bedside.alarms.patterns colour order."""

    def __init__(self, red, yellow, cyan, green, active_high=True):
        self._pins = [
            Pin(p, Pin.OUT, value=0 if active_high else 1) for p in (red, yellow, cyan, green)
        ]
        self._on = 1 if active_high else 0

    def set(self, color, on):
        self._pins[color].value(self._on if on else 1 - self._on)


class UsbHost:
    """The USB CDC console as the host link: non-blocking reads, writes through."""

    def __init__(self):
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer

    def readinto(self, buf):
        n = 0
        while n < len(buf) and self._poll.poll(0):
            b = self._in.read(1)
            if not b:
                break
            buf[n] = b[0]
            n += 1
        return n or None

    def write(self, data):
        return self._out.write(data)


class FlashStore:
    """Files on the Pico's flash filesystem; writes are atomic (temp file + rename)."""

    def __init__(self, root="/state", append_limit=64 * 1024):
        self.root = root
        self.append_limit = append_limit
        try:
            os.mkdir(root)
        except OSError:
            pass

    def _p(self, name):
        return self.root + "/" + name

    def read(self, name):
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, data):
        tmp = self._p(name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, self._p(name))

    def append(self, name, data):
        path = self._p(name)
        try:
            if os.stat(path)[6] + len(data) > self.append_limit:
                os.rename(path, path + ".1")
        except OSError:
            pass
        with open(path, "ab") as f:
            f.write(data)


def _reset_cause():
    cause = machine.reset_cause()
    if cause == machine.WDT_RESET:
        return "watchdog"
    if cause == machine.PWRON_RESET:
        return "power_on"
    return "soft"


def run():
    now = time.ticks_ms() & MASK  # type: ignore[operator]  # the core's 30-bit tick
    store = FlashStore()
    settings = load_settings(store)
    mod = oximeter_module(settings["oxi_format"])
    parity = {"N": None, "E": 0, "O": 1}[getattr(mod, "PARITY", "N")]
    oxi = UART(
        pins.OXI_UART_ID,
        baudrate=mod.BAUD,
        bits=getattr(mod, "BITS", 8),
        parity=parity,
        tx=Pin(pins.OXI_TX),
        rx=Pin(pins.OXI_RX),
        rxbuf=UART_RXBUF,
        timeout=0,
    )
    nibp = UART(
        pins.NIBP_UART_ID,
        baudrate=9600,
        tx=Pin(pins.NIBP_TX),
        rx=Pin(pins.NIBP_RX),
        rxbuf=UART_RXBUF,
        timeout=0,
    )
    leds = Leds(
        pins.LED_RED,
        pins.LED_YELLOW,
        pins.LED_CYAN,
        pins.LED_GREEN,
        active_high=bool(pins.LED_ACTIVE_HIGH),
    )
    sounder = Sounder(pins.SOUNDER_PWM, pins.SOUNDER_ENABLE)
    wdt = WDT(timeout=WDT_TIMEOUT_MS)
    dev = Device(
        now,
        oxi,
        UsbHost(),
        sounder,
        leds,
        store=store,
        nibp_uart=nibp,
        reset_cause=_reset_cause(),
        settings=settings,
    )
    pull = Pin.PULL_UP if pins.BTN_ACTIVE_LOW else Pin.PULL_DOWN
    pressed_level = 0 if pins.BTN_ACTIVE_LOW else 1
    keys = (
        (Pin(pins.BTN_ACK, Pin.IN, pull), Button(), "ack", "reset"),
        (Pin(pins.BTN_CHECK, Pin.IN, pull), Button(), "check", "check"),
        (Pin(pins.BTN_NIBP, Pin.IN, pull), Button(), "nibp", "nibp"),
    )
    beat = Pin(pins.BACKUP_HEARTBEAT, Pin.OUT, value=0)
    t_beat = now
    while True:
        t0 = time.ticks_ms()
        now = t0 & MASK  # type: ignore[operator]
        for pin, btn, short_name, long_name in keys:
            ev = btn.update(pin.value() == pressed_level, now)
            if ev == SHORT:
                dev.button(short_name, now)
            elif ev == LONG and long_name != short_name:
                dev.button(long_name, now)
        dev.poll(now)
        wdt.feed()
        if time.ticks_diff(now, t_beat) >= HEARTBEAT_HALF_MS:
            t_beat = now
            beat.toggle()
        spare = TICK_MS - time.ticks_diff(time.ticks_ms(), t0)
        if spare > 0:
            time.sleep_ms(spare)
