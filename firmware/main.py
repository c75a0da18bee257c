# main.py: boot entry on the Pico. Everything else is in board/ (hardware) and bedside/ (core).
# Hold the ACK key while powering up to stay in the REPL (maintenance: mpremote, make flash):
# once the firmware runs, its watchdog resets the board if the loop is interrupted.
from board import pins
from machine import Pin

_key = Pin(pins.BTN_ACK, Pin.IN, Pin.PULL_UP if pins.BTN_ACTIVE_LOW else Pin.PULL_DOWN)
if _key.value() == (0 if pins.BTN_ACTIVE_LOW else 1):
    print("Bedside: ACK held at power-up: maintenance mode, firmware not started")
else:
    from board.rp2040 import run

    run()
