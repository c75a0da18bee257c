# main.py: boot entry on the Pico. Everything else is in board/ (hardware) and bedside/ (core).
from board.rp2040 import run

run()
