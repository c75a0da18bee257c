# main.py: boot entry on the Pico. Everything else is in board/ (hardware) and bedside/ (core).
# Hold the ACK key while powering up for maintenance mode (mpremote, make flash): the firmware
# does not start, so there is no watchdog and the REPL answers (the running firmware ignores
# Ctrl-C). main.py runs in the REPL's own globals (__main__), so BEDSIDE_MAINTENANCE stays
# defined there until the next reset: `make flash` checks it (host_tools/bedside_host/flashing.py).
from board import pins
from machine import Pin

BEDSIDE_MAINTENANCE = False
_key = Pin(pins.BTN_ACK, Pin.IN, Pin.PULL_UP if pins.BTN_ACTIVE_LOW else Pin.PULL_DOWN)
if _key.value() == (0 if pins.BTN_ACTIVE_LOW else 1):
    BEDSIDE_MAINTENANCE = True
    print("Bedside: maintenance mode (ACK held at power-up): firmware not started, no alarms;")
    print("the backup sounder sounds (no heartbeat). Power-cycle without ACK to monitor again.")
else:
    from board.rp2040 import run

    run()
