# sessdev.py: a lean harness for the infusion-session device tests (CPython and MicroPython):
# the real Device with the smallest fakes (no scenario/fakes modules: the session code must fit
# beside the core on a Pico-sized test heap). The oximeter's values are handed to the
# observations as the decoder would; NIBP readings through Device.nibp_result() (or a
# scripted SunTech module, sesskit.NibpModule); host lines parsed and kept slim.
import gc
import json

from authkit import line, provision
from bedside.device import Device
from bedside.ticks import MASK

T0 = (1 << 30) - 20000  # the clock crosses the tick wrap after 20 s


class Store:
    """Flash files in a dict: the store interface the core uses (read, write, size,
    read_into, append). logs=False: appended log records are counted, not kept (a long run
    within a Pico-sized heap; the logs have their own tests)."""

    def __init__(self, logs=True):
        self.files = {}
        self.logs = logs

    def read(self, name):
        f = self.files.get(name)
        return None if f is None else bytes(f)

    def size(self, name):
        f = self.files.get(name)
        return None if f is None else len(f)

    def read_into(self, name, offset, buf):
        f = self.files.get(name)
        if f is None:
            return 0
        part = f[offset : offset + len(buf)]
        buf[: len(part)] = part
        return len(part)

    def write(self, name, data):
        self.files[name] = bytearray(data)

    def append(self, name, data):
        if name not in self.files:
            self.files[name] = bytearray()
        if self.logs:
            self.files[name] += data


class Host:
    """The USB link: lines to the device, parsed messages from it."""

    def __init__(self, keep):
        self.keep = keep
        self.rx = []
        self.part = b""

    def readinto(self, buf):
        if not self.rx:
            return 0
        data = self.rx.pop(0)
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        if n < len(data):
            self.rx.insert(0, data[n:])
        return n

    def write(self, data):
        n = len(data)
        buf = self.part + bytes(data)
        while b"\n" in buf:
            i = buf.index(b"\n")
            if i:
                self.keep(json.loads(buf[:i]))
            buf = buf[i + 1 :]
        self.part = buf
        return n


class Quiet:
    """Oximeter UART (silent: values come through feed()), sounder and LEDs."""

    def __init__(self):
        self.tones = 0  # auditory pulses started
        self.on = False

    def readinto(self, buf):
        return 0

    def write(self, data):
        return len(data)

    def tone(self, hz, duty):
        if not self.on:
            self.tones += 1
        self.on = True

    def off(self):
        self.on = False

    def set(self, color, on):
        pass


def _slim(m):
    """What a test keeps of a message (no nested state objects)."""
    ty = m["type"]
    if ty == "session":
        s = m.get("session") or {}
        return {"type": ty, "seq": m["seq"], "event": m["event"], "by": m.get("by"),
                "error": m.get("error"), "phase": s.get("phase")}  # fmt: skip
    if ty == "alarm":
        return {"type": ty, "seq": m["seq"], "condition": m["condition"], "event": m["event"],
                "priority": m["priority"], "limit": m["limit"]}  # fmt: skip
    if ty == "fault":
        return {"type": ty, "where": m["where"], "error": m["error"]}
    if ty == "button":
        return {"type": ty, "button": m["button"], "affected": m["affected"]}
    return None


class Rig:
    """A Device on the lean fakes; now in 30-bit ticks; t: ms since start (unwrapped)."""

    def __init__(self, store=None, nibp_uart=None, reset_cause="power_on"):
        gc.collect()  # a previous rig's device is garbage now: its blocks are free for this one
        self.now = T0
        self.t = 0
        self.messages = []  # the last keep_n slim messages
        self.keep_n = 24
        self.replies = {}
        self.last_hb = None
        self.host = Host(self._keep)
        self.quiet = Quiet()
        self.store = store if store is not None else Store()
        self.spo2 = 97
        self.pr = 72
        self.bp = None  # when set, sec() hands this NIBP reading over every bp_every_s
        self.bp_every_s = 300
        self._bp_t = 0
        self.dev = Device(
            self.now,
            self.quiet,
            self.host,
            self.quiet,
            self.quiet,
            store=self.store,
            nibp_uart=nibp_uart,
            reset_cause=reset_cause,
            selftest=False,
        )
        provision(self.dev)  # the key, as `bedside provision` installs it: commands are signed
        self._n = 0

    def _keep(self, m):
        if m["type"] == "heartbeat":
            self.last_hb = {"phase": m["phase"], "active": m["active"]}
        elif m["type"] == "reply":
            self.replies[m["id"]] = m
        else:
            s = _slim(m)
            if s is not None:
                self.messages.append(s)
                if len(self.messages) > self.keep_n:
                    self.messages.pop(0)

    def run(self, ms, tick=100):
        """Advance ms; the oximeter gives self.spo2/self.pr (None: no values) every tick and
        the host is heard from (no HOST_LINK_LOST)."""
        dev = self.dev
        end = self.t + ms
        while self.t < end:
            self.t += tick
            self.now = (self.now + tick) & MASK
            now = self.now
            if self.spo2 is not None:
                r = dev.oxi
                r.spo2 = self.spo2
                r.pr = self.pr
                dev.obs.oxi_frame(0, now)
                dev.obs.oxi_values(self.spo2, self.pr, 0, now)
            dev.obs.host_rx.mark(now)
            dev.poll(now)
            for _ in range(8):
                dev.background(now)
            dev.link.flush(self.host, 1 << 16)

    def cmd(self, obj, by="tester"):
        """One command line; the reply (run until it arrives, at most 3 s). A state-changing
        command is signed and gets `by` unless it has one (by=None: none added)."""
        self._n += 1
        obj = dict(obj)
        obj["id"] = "r%d" % self._n
        self.host.rx.append(line(self.dev, obj, by=by))  # signed, as DeviceLink sends it
        for _ in range(30):
            self.run(100)
            r = self.replies.pop(obj["id"], None)
            if r is not None:
                return r
        return None

    def op(self, name, by="nurse", **args):
        obj = {"cmd": "session", "op": name, "by": by}
        obj.update(args)
        return self.cmd(obj)

    def state(self):
        return self.cmd({"cmd": "get_session"})["session"]

    def events(self, event=None):
        return [
            m
            for m in self.messages
            if m["type"] == "session" and (event is None or m["event"] == event)
        ]

    def alarms(self, cond=None):
        return [
            m
            for m in self.messages
            if m["type"] == "alarm" and (cond is None or m["condition"] == cond)
        ]

    def press(self, name):
        self.dev.button(name, self.now)
        self.run(100)

    def reading(self, bp):
        """A valid NIBP reading handed over as the driver does."""
        n = self.dev.nibp
        n.sys, n.dia, n.map, n.pr = bp
        n.valid = True
        self.dev.nibp_result(self.now)
        self.run(100)

    def sec(self, n, tick=1000):
        """n seconds (and an NIBP reading every bp_every_s while self.bp is set)."""
        if self.bp is None:
            self.run(n * 1000, tick)
            return
        while n > 0:
            every = self.bp_every_s
            if not every:  # the session's NIBP interval now
                ctl = self.dev.sessctl
                every = 60 * (ctl.sess.nibp_interval_min() if ctl else 5)
            k = max(1, min(n, every - self._bp_t))
            self.run(k * 1000, tick)
            n -= k
            self._bp_t += k
            if self._bp_t >= every:
                self._bp_t = 0
                self.reading(self.bp)


def to_baseline(r):
    assert r.op("open", patient="P-0001", course_day=3, course_total=10)["ok"]
    assert r.op("screened", override=False)["ok"]


def to_infusion(r, bp1=(120, 80, 93, 72), bp2=(124, 82, 96, 74)):
    """open, screened, two readings 3 min apart with a stable oximeter, accept, start."""
    to_baseline(r)
    r.reading(bp1)
    r.sec(185)
    r.reading(bp2)
    a = r.op("baseline", action="accept")
    assert a["ok"], a
    a = r.op("start")
    assert a["ok"], a
    r.bp = bp2  # an NIBP reading every 5 min from now on (no NIBP_OVERDUE)
