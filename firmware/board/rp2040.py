# rp2040.py: the Raspberry Pi Pico board layer: hardware objects for the core, and the main loop.
# The only firmware module that imports `machine` and reads the clock. Pins: board/pins.py
# (generated from hardware/pinmap.json). Everything it builds is passed into bedside.Device.
# setup() builds it all, loop_once() is one pass of the main loop, run() is main.py's entry.
import errno
import os
import select
import sys
import time

import framebuf
import machine
import micropython
from bedside.buttons import K_ACK, K_CHECK, K_NIBP
from bedside.device import TICK_MS, Device
from bedside.display import TALL, Display
from bedside.mainloop import MainLoop
from bedside.sensors import oximeter_link
from bedside.sensors.suntech import BAUD as NIBP_BAUD
from bedside.settings import read_settings
from bedside.ticks import MASK, elapsed
from machine import I2C, PWM, UART, WDT, Pin

from board import pins
from board.streams import UartIn, UsbHost

WDT_TIMEOUT_MS = 2000  # rp2040 maximum is 8388 ms
HEARTBEAT_HALF_MS = 50  # backup-sounder heartbeat: 10 Hz while the loop runs and is healthy
UART_RXBUF = 1024  # about 1 s of data at 9600 baud, covers a stalled loop
SCREEN_FRAME_MS = 250  # the OLED is redrawn at most 4 times a second, and only on change
SCREEN_RETRY_MS = 5000  # a missing or failing OLED is tried again this often
_ERRORS_MAX = 9999  # Screen.errors stays a small number (reported as display_errors)
INIT_CMDS_PER_STEP = 8  # SSD1306 init commands sent per update (about 0.3 ms at 400 kHz)
# nibble -> byte with every bit doubled: one 8-pixel column becomes 16 (double-height text)
_TALL = bytes(sum(3 << (2 * k) for k in range(4) if n >> k & 1) for n in range(16))


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


class FlashStore:
    """Files on the Pico's flash filesystem (littlefs), the store of bedside.alarmlog/persist.
    write() is atomic and verified: a temp file is written, read back and compared, then renamed
    over the old file; OSError on any failure or mismatch, the old file then unchanged.
    size()/read_into() let the logs stream a file through a small buffer."""

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

    def size(self, name):
        """Bytes in file `name`, or None if there is no such file."""
        try:
            return os.stat(self._p(name))[6]
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def read_into(self, name, offset, buf):
        """Bytes of file `name` from `offset` read into buf (0 at the end or if no such file)."""
        try:
            f = open(self._p(name), "rb")
        except OSError as e:
            if e.errno == errno.ENOENT:
                return 0
            raise
        try:
            f.seek(offset)
            return f.readinto(buf) or 0
        finally:
            f.close()

    def write(self, name, data):
        tmp = self._p(name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            if not self._same(tmp, data):
                raise OSError(errno.EIO)  # read-back differs: the old file stays
            os.rename(tmp, self._p(name))
        except OSError:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise

    def _same(self, path, data):
        """File `path` holds exactly `data` (read back in 64-byte pieces)."""
        buf = bytearray(64)
        pos = 0
        with open(path, "rb") as f:
            while True:
                got = f.readinto(buf) or 0
                if not got:
                    return pos == len(data)
                if pos + got > len(data) or buf[:got] != data[pos : pos + got]:
                    return False
                pos += got

    def append(self, name, data):
        path = self._p(name)
        try:
            if os.stat(path)[6] + len(data) > self.append_limit:
                os.rename(path, path + ".1")
        except OSError:
            pass
        with open(path, "ab") as f:
            f.write(data)


class Screen:
    """The SSD1306 OLED showing bedside.display frames, best effort: a missing panel, a missing
    driver or an I2C error drops it, and it is tried again every SCREEN_RETRY_MS. update() never
    raises and does one bounded step per call: a render, one line drawn into RAM, or one
    128-byte page over I2C (about 3 ms at 400 kHz), so the alarms never wait for the display."""

    def __init__(self, now):
        self.view = Display()
        self.oled = None
        self.errors = 0
        self._t_open = (now - SCREEN_RETRY_MS) & MASK  # first attempt at the first update
        self._t_frame = now
        self._init = b""  # the panel's init commands, sent INIT_CMDS_PER_STEP per update
        self._init_i = 0
        self._todo = 0  # bitmask of text lines still to draw into the panel's RAM
        self._pages = 0  # bitmask of 128-byte pages still to send
        self._mv = []
        self._row = bytearray(128)  # one 8-pixel text row, MONO_VLSB like the SSD1306 RAM
        self._fb = framebuf.FrameBuffer(self._row, 128, 8, framebuf.MONO_VLSB)

    def _open(self):
        """Build the driver WITHOUT its one-shot init (which sends every command and the whole
        1 KB frame in one call); the driver's init commands and the blank frame then go out in
        bounded steps from update(), like any other page. No I2C traffic here."""
        from ssd1306 import SSD1306_I2C  # firmware/lib; imported here so it is not load-bearing

        class _Panel(SSD1306_I2C):
            def init_display(self):
                pass  # sent in steps by Screen

        i2c = I2C(pins.I2C_ID, sda=Pin(pins.I2C_SDA), scl=Pin(pins.I2C_SCL), freq=pins.I2C_FREQ)
        o = _Panel(128, 64, i2c, addr=pins.OLED_ADDR)
        mv = memoryview(o.buffer)
        self._mv = [mv[p * 128 : p * 128 + 128] for p in range(8)]
        self._init = _init_commands(SSD1306_I2C, o)
        self._init_i = 0
        o.fill(0)
        self._pages = 0xFF  # send the blank frame, one page per step, after the commands
        self._todo = 0
        self.view = Display()  # the fresh panel is blank: draw every line again
        self.oled = o
        return o

    def update(self, dev, now):
        try:
            o = self.oled
            if o is None:
                if elapsed(now, self._t_open) < SCREEN_RETRY_MS:
                    return
                self._t_open = now
                o = self._open()
            init = self._init
            if self._init_i < len(init):
                i = self._init_i
                end = min(i + INIT_CMDS_PER_STEP, len(init))
                while i < end:
                    o.write_cmd(init[i])
                    i += 1
                self._init_i = end
            elif self._pages:
                self._send_page(o)
            elif self._todo:
                self._draw(o.buffer)
            elif elapsed(now, self._t_frame) >= SCREEN_FRAME_MS:
                self._t_frame = now
                self.view.render(dev, now)
                self._todo = self.view.dirty
        except Exception:  # OSError from I2C above all: lose the display, never the alarms
            self.oled = None
            self._todo = self._pages = 0
            if self.errors < _ERRORS_MAX:
                self.errors += 1
            self._t_open = now

    def _draw(self, buf):
        """Draw the first changed line into the panel's RAM (1-2 ms on the Pico, estimated)."""
        v = self.view
        row = self._row
        li = 0
        while not self._todo & (1 << li):
            li += 1
        bit = 1 << li
        self._todo &= ~bit
        inv = 0xFF if v.inverse & bit else 0
        self._fb.fill(0)
        self._fb.text(v.lines[li], 0, 0, 1)
        base = li * 128
        if TALL & bit:  # double height: low nibble to this page, high nibble to the next
            for x in range(128):
                b = row[x]
                buf[base + x] = _TALL[b & 15] ^ inv
                buf[base + 128 + x] = _TALL[b >> 4] ^ inv
            self._pages |= 3 << li
        else:
            for x in range(128):
                buf[base + x] = row[x] ^ inv
            self._pages |= bit

    def _send_page(self, o):
        p = 0
        while not self._pages & (1 << p):
            p += 1
        for c in (0x21, 0, 127, 0x22, p, p):  # SSD1306: column range, page range
            o.write_cmd(c)
        o.write_data(self._mv[p])
        self._pages &= ~(1 << p)


class _Recorder:
    """Stands in for the panel while the vendored driver's init_display() runs: it records the
    commands and sends nothing (the blank frame goes out page by page instead of show())."""

    def __init__(self, o):
        self.width = o.width
        self.height = o.height
        self.external_vcc = o.external_vcc
        self.cmds = bytearray()

    def write_cmd(self, cmd):
        self.cmds.append(cmd)

    def fill(self, c):
        pass

    def show(self):
        pass


def _init_commands(driver, o):
    """The SSD1306 init sequence exactly as the vendored driver (firmware/lib/ssd1306.py)
    sends it for panel `o`, display on last: its own init_display(), run on a recorder."""
    rec = _Recorder(o)
    driver.init_display(rec)
    return bytes(rec.cmds)


def _unique_id():
    """The RP2040 board's flash unique id in hex: the device id in hello (host key name)."""
    try:
        return "".join("%02x" % b for b in machine.unique_id())
    except Exception:
        return ""


def _reset_cause():
    cause = machine.reset_cause()
    if cause == machine.WDT_RESET:
        return "watchdog"
    if cause == machine.PWRON_RESET:
        return "power_on"
    return "soft"


class Board:
    """What setup() builds and loop_once() runs: the core (dev, loop) and the pins and
    watchdog that only the board layer touches."""

    def __init__(self, dev, loop, wdt, keys, pressed, beat, now):
        self.dev = dev
        self.loop = loop
        self.wdt = wdt
        self.k_ack, self.k_check, self.k_nibp = keys
        self.pressed = pressed  # the pin level of a pressed key
        self.beat = beat
        self.t_beat = now


def setup():
    """Build everything and return the Board. A Ctrl-C byte (0x03) from the host must not stop
    the firmware: the keyboard interrupt is switched off before anything else, so no host
    byte can interrupt setup or the loop (the REPL is reachable only in maintenance mode,
    main.py). The watchdog starts before the core is built: a hang there resets the board."""
    micropython.kbd_intr(-1)
    now = time.ticks_ms() & MASK  # type: ignore[operator]  # the core's 30-bit tick
    store = FlashStore()
    settings = read_settings(store)
    baud, bits, parity = oximeter_link(settings)
    oxi = UART(
        pins.OXI_UART_ID,
        baudrate=baud,
        bits=bits,
        parity={"N": None, "E": 0, "O": 1}[parity],
        tx=Pin(pins.OXI_TX),
        rx=Pin(pins.OXI_RX),
        rxbuf=UART_RXBUF,
        timeout=0,
    )
    nibp = UART(
        pins.NIBP_UART_ID,
        baudrate=NIBP_BAUD,
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
    poll_in = select.poll()
    poll_in.register(sys.stdin, select.POLLIN)
    poll_out = select.poll()
    poll_out.register(sys.stdout, select.POLLOUT)
    host = UsbHost(poll_in, poll_out, sys.stdin.buffer, sys.stdout.buffer)
    wdt = WDT(timeout=WDT_TIMEOUT_MS)
    dev = Device(
        now,
        UartIn(oxi),
        host,
        sounder,
        leds,
        store=store,
        nibp_uart=UartIn(nibp),
        reset_cause=_reset_cause(),
        settings=settings,
        device_id=_unique_id(),
    )
    pull = Pin.PULL_UP if pins.BTN_ACTIVE_LOW else Pin.PULL_DOWN
    keys = (
        Pin(pins.BTN_ACK, Pin.IN, pull),
        Pin(pins.BTN_CHECK, Pin.IN, pull),
        Pin(pins.BTN_NIBP, Pin.IN, pull),
    )
    pressed = 0 if pins.BTN_ACTIVE_LOW else 1
    beat = Pin(pins.BACKUP_HEARTBEAT, Pin.OUT, value=0)
    loop = MainLoop(dev, Screen(now))
    return Board(dev, loop, wdt, keys, pressed, beat, now)


def loop_once(b, now):
    """One pass of the main loop at `now` (30-bit ms): sample the keys, run the shared
    MainLoop step, then feed the watchdog and toggle the backup-sounder heartbeat only while
    the device is healthy: once the alarm stages keep failing, the backup sounder sounds and
    the watchdog resets the board. Returns whether the device is healthy. Allocates nothing."""
    p = b.pressed
    levels = 0
    if b.k_ack.value() == p:
        levels |= K_ACK
    if b.k_check.value() == p:
        levels |= K_CHECK
    if b.k_nibp.value() == p:
        levels |= K_NIBP
    healthy = b.loop.step(now, levels)
    if healthy:
        b.wdt.feed()
        if elapsed(now, b.t_beat) >= HEARTBEAT_HALF_MS:
            b.t_beat = now
            b.beat.toggle()
    return healthy


def run():
    """setup(), then loop_once() every TICK_MS for ever."""
    b = setup()
    while True:
        t0 = time.ticks_ms()
        loop_once(b, t0 & MASK)  # type: ignore[operator]
        spare = TICK_MS - time.ticks_diff(time.ticks_ms(), t0)
        if spare > 0:
            time.sleep_ms(spare)
