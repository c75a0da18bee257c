# board: the board layer, the only code that touches hardware (`machine`) or reads the clock.
#   pins.py     generated from hardware/pinmap.json (hardware/build.py): the pin map
#   rp2040.py   the Raspberry Pi Pico: UARTs, PWM sounder, LEDs, buttons, watchdog, flash files
# The PC board layer for software-in-the-loop lives in host_tools/bedside_host/sil/.
