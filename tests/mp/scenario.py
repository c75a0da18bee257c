# scenario.py: a scripted bench scenario through the whole core with fake board objects.
# Used by tests on CPython and on MicroPython; `python scenario.py` / `micropython scenario.py`
# print the same canonical timeline, which tests/test_parity.py compares byte for byte.
import json

from authkit import provision
from bedside.device import Device
from bedside.hostlink import WRITE_BUDGET
from fakes import Clock, FakeLeds, FakeSounder, FakeUart, MemStore
from mputil import nonin2_packet

_PERIODIC = ("oxi", "heartbeat")


class Bench:
    """A device on fake hardware, a clock starting just below the tick wrap, and helpers."""

    def __init__(
        self,
        store=None,
        start=(1 << 30) - 20000,
        reset_cause="power_on",
        on_message=None,
        sounder_sink=None,
        led_sink=None,
        selftest=False,
        nibp_uart=None,
    ):
        self.clock = Clock(start)
        self.oxi = FakeUart()
        self.host = FakeUart()
        self.sounder = FakeSounder(self.clock, sounder_sink)
        self.leds = FakeLeds(self.clock, led_sink)
        self.on_message = on_message  # called per host message instead of keeping them
        self.store = store if store is not None else MemStore()
        self.dev = Device(
            self.clock.now,
            self.oxi,
            self.host,
            self.sounder,
            self.leds,
            store=self.store,
            reset_cause=reset_cause,
            selftest=selftest,
            nibp_uart=nibp_uart,
        )
        provision(self.dev)  # the test key (tests/mp/authkit.py), as `bedside provision` does
        self.messages = []  # every message but the periodic oxi/heartbeat ones
        self.periodic = {"oxi": [], "heartbeat": []}
        self.seq_gaps = 0
        self.last_seq = 0
        self.t = 0  # ms since the bench started

    def run(self, ms, hr=None, spo2=None, status=0x82, tick=10):
        """Advance ms of time; while hr/spo2 are given, the module sends 3 packets a second."""
        end = self.t + ms
        while self.t < end:
            if spo2 is not None and self.t % 333 < tick:
                self.oxi.push(nonin2_packet(hr, spo2, status))
            self.clock.advance(tick)
            self.t += tick
            self.dev.poll(self.clock.now)
            self.dev.background(self.clock.now)  # flash write-behind, as the main loop does
            if tick > 10:
                # a long virtual tick stands for tick/10 real ones: as much host output and
                # write-behind as those would have done
                p = self.dev.persist
                for _ in range(tick // 10):
                    if p is None or not p.pending():
                        break
                    self.dev.background(self.clock.now)
                self.dev.link.flush(self.host, WRITE_BUDGET * (tick // 10))
            if self.t % 1000 < tick or len(self.host._tx) > 8:  # a reading host, not a backlog
                self._drain()
        self._drain()

    def _drain(self):
        for line in self.host.take_lines():
            m = json.loads(line)
            if m["seq"] != self.last_seq + 1 and m["seq"] > self.last_seq:
                self.seq_gaps += 1
            self.last_seq = m["seq"]
            if self.on_message is not None:
                self.on_message(m)
            else:
                self.keep(m)

    def keep(self, m):
        """What the bench keeps of a message by default."""
        if m["type"] in _PERIODIC:  # kept apart, the last few: a Pico-sized test heap
            kept = self.periodic[m["type"]]
            kept.append(m)
            if len(kept) > 1:
                kept.pop(0)
        else:
            self.messages.append(m)

    def last(self, mtype):
        """The latest periodic message (oxi, heartbeat) of that type, or None."""
        kept = self.periodic[mtype]
        return kept[-1] if kept else None

    def press(self, name):
        self.dev.button(name, self.clock.now)
        self.dev.poll(self.clock.now)
        self._drain()

    def alarms(self, cond=None):
        return [
            m
            for m in self.messages
            if m["type"] == "alarm" and (cond is None or m["condition"] == cond)
        ]


def main():
    def message(m):
        if m["type"] == "alarm":
            print(
                "alarm",
                m["t_ms"],
                m["condition"],
                m["priority"],
                m["state"],
                m["event"],
                m["value"],
                m["limit"],
            )

    def buzzer(t, hz, duty):
        print("buzzer", t, hz, duty)

    def led(t, color, on):
        print("led", t, color, on)

    b = Bench(on_message=message, sounder_sink=buzzer, led_sink=led)
    b.run(15000, 72, 97)  # normal
    b.run(30000, 75, 88)  # below 90 %: SPO2_LOW after its delay
    b.press("ack")
    b.run(5000, 75, 88)
    b.run(10000, 80, 83)  # below 85 %: SPO2_DESAT (HIGH, latching) breaks through the pause
    b.run(10000, 72, 97)  # recovered: DESAT stays latched
    b.press("reset")
    b.run(3000, 72, 97)
    b.run(5000, 511, 127, status=0x88)  # finger out: SNSA, missing values
    b.run(5000, 72, 97)
    print("last seq", b.last_seq)


if __name__ == "__main__":
    main()
