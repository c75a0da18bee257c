# generated from hardware/pinmap.json by hardware/build.py; do not edit
# Bedside board pin map: Raspberry Pi Pico H (RP2040). Every GPIO is 3.3 V and NOT 5 V tolerant.
# Plain ints (no micropython.const) so the module also imports on CPython.
# Baud rates are firmware settings, not pins: see hardware/connections.md.

# UART0: Pulse-oximeter OEM module
OXI_UART_ID = 0
OXI_TX = 0  # GP0, pin 1, UART0 TX
OXI_RX = 1  # GP1, pin 2, UART0 RX

# UART1: SunTech Advantage OEM NIBP module
NIBP_UART_ID = 1
NIBP_TX = 4  # GP4, pin 6, UART1 TX
NIBP_RX = 5  # GP5, pin 7, UART1 RX

# I2C1: SSD1306 128x64 I2C OLED
I2C_ID = 1
I2C_SDA = 2  # GP2, pin 4, I2C1 SDA
I2C_SCL = 3  # GP3, pin 5, I2C1 SCL

# Other signals
BTN_ACK = 6  # GP6, pin 9, GPIO in, S1 ACK / AUDIO PAUSED
BTN_CHECK = 7  # GP7, pin 10, GPIO in, S2 CHECK DONE
BTN_NIBP = 8  # GP8, pin 11, GPIO in, S3 NIBP START/STOP
LED_RED = 10  # GP10, pin 14, GPIO out, Q1 gate (red LED)
LED_YELLOW = 11  # GP11, pin 15, GPIO out, Q2 gate (yellow LED)
LED_CYAN = 12  # GP12, pin 16, GPIO out, Q3 gate (cyan LED)
LED_GREEN = 13  # GP13, pin 17, GPIO out, Q4 gate (green LED)
SOUNDER_PWM = 14  # GP14, pin 19, PWM7 A, A+ via trimmer, RC filter, 1 uF
SOUNDER_ENABLE = 15  # GP15, pin 20, GPIO out, SD (active-low shutdown)
HIL_LOOP_TX = 16  # GP16, pin 21, UART0 TX, J_HIL pin 1
HIL_LOOP_RX = 17  # GP17, pin 22, UART0 RX, J_HIL pin 2
BACKUP_HEARTBEAT = 22  # GP22, pin 29, GPIO out, heartbeat in (AC-coupled)

# Board constants
# SSD1306 7-bit I2C address 0x3C (some breakouts default to 0x3D: set the address jumper)
OLED_ADDR = 0x3C
# I2C clock in Hz
I2C_FREQ = 400000
# 1: driving an LED pin high turns the LED on (2N7002 low-side switch)
LED_ACTIVE_HIGH = 1
# 1: buttons pull the pin to GND when pressed; enable the internal pull-up
BTN_ACTIVE_LOW = 1
# 1: SOUNDER_ENABLE high = amplifier on (PAM8302A SD pin is active-low shutdown)
SOUNDER_ENABLE_ACTIVE_HIGH = 1

# (name, gpio) of every wired signal, for self-test and HIL code
SIGNALS = (
    ("OXI_TX", 0),
    ("OXI_RX", 1),
    ("I2C_SDA", 2),
    ("I2C_SCL", 3),
    ("NIBP_TX", 4),
    ("NIBP_RX", 5),
    ("BTN_ACK", 6),
    ("BTN_CHECK", 7),
    ("BTN_NIBP", 8),
    ("LED_RED", 10),
    ("LED_YELLOW", 11),
    ("LED_CYAN", 12),
    ("LED_GREEN", 13),
    ("SOUNDER_PWM", 14),
    ("SOUNDER_ENABLE", 15),
    ("HIL_LOOP_TX", 16),
    ("HIL_LOOP_RX", 17),
    ("BACKUP_HEARTBEAT", 22),
)
SPARE_GPIO = (9, 18, 19, 20, 21, 26, 27, 28)
