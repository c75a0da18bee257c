# imports.py: heap used by importing the firmware core (issue 15 figure 4), printed per module
# as "BENCH {json}". Run on MicroPython with the core as .mpy (as flashed) or as source.
import gc
import json
import sys

MODULES = (
    "bedside.compat", "bedside.ticks", "bedside.crc", "bedside.readings",
    "bedside.alarms.conditions", "bedside.alarms.patterns", "bedside.alarms.fsm",
    "bedside.alarms.deficit", "bedside.alarms.engine", "bedside.alarms.rules",
    "bedside.sensors", "bedside.sensors.nonin_packet", "bedside.sensors.nonin2",
    "bedside.sensors.suntech", "bedside.settings", "bedside.observations", "bedside.messages",
    "bedside.hostlink", "bedside.commands", "bedside.alarmlog", "bedside.persist",
    "bedside.annunciator", "bedside.selftest", "bedside.nibp_schedule", "bedside.device",
    "bedside.buttons", "bedside.mainloop", "bedside.display",
)  # fmt: skip


def main():
    gc.collect()
    base = gc.mem_alloc()
    steps = {}
    prev = base
    for name in MODULES + tuple(a for a in sys.argv[1:] if not a.startswith("-")):
        __import__(name)
        gc.collect()
        now = gc.mem_alloc()
        steps[name] = now - prev
        prev = now
    total = prev - base
    print("import heap: %d B for %d modules" % (total, len(steps)))
    print("BENCH " + json.dumps({"kind": "imports", "data": {"total": total, "steps": steps}}))


main()
