# patterns.py: IEC 60601-1-8 alarm signal patterns as data (alarms.md 1.3, 1.4).
# Auditory (Tables 3, 4): pulse duration t_d, pulse spacing (end of one pulse to the start of
# the next), interburst interval (end of a burst's last pulse to the next burst), rise/fall
# ramps of 10-20 % of t_d made by stepping the PWM duty. Visual (Table 2): colour, flash period
# and on-time. tests/test_signals.py measures the produced timeline against the tables' ranges.
from bedside.compat import const

# Auditory pattern per priority: (t_d ms, ramp ms, pulse start offsets ms, interburst ms,
#                                 pulses that must complete once a burst has started)
# HIGH: 10 pulses, 3 + 2, pause, 3 + 2: spacing x = 100 ms, 3rd->4th and 8th->9th = 2x + t_d,
#       5th->6th = 700 ms (0.35-1.30 s). A started HIGH burst completes at least half (5 pulses).
HIGH = (150, 20, (0, 250, 500, 1000, 1250, 2100, 2350, 2600, 3100, 3350), 5000, 5)
# MEDIUM: 3 pulses, spacing y = 200 ms; a started MEDIUM burst always completes (3 pulses).
MEDIUM = (200, 30, (0, 400, 800), 6000, 3)
# LOW: 2 pulses, spacing y = 200 ms, repeated after more than 15 s.
LOW = (200, 30, (0, 400), 20000, 2)
AUDITORY = (None, LOW, MEDIUM, HIGH)  # indexed by priority P_LOW..P_HIGH

# PWM duty at full level, as duty_u16. 25 % keeps the 2nd, 3rd, 5th and 6th harmonics within
# 15 dB of f0 (a 50 % square has no even harmonics), so f0 <= 666 Hz gives >= 4 harmonics in
# 300-4000 Hz (IEC Table 4). The envelope ramps the duty in RAMP_STEPS levels, reaching full
# level exactly `ramp` ms after the pulse starts (and leaving it `ramp` ms before its end):
# with the 10 ms main-loop tick a 20 ms ramp (HIGH, 13 % of t_d) is 3 levels at 0/10/20 ms and
# a 30 ms ramp (MEDIUM/LOW, 15 % of t_d) 3 levels at 0/15/30 ms (sampled at 0/20/30 ms).
# The levels are linear in sound amplitude, not in duty: a square wave's fundamental is
# proportional to sin(pi * duty), so level k of n uses duty = asin(k/n * sin(pi/4)) / pi
# (amplitude 1/3, 2/3, 1 of full; a duty-linear ramp would give 0.37, 0.71, 1).
FULL_DUTY = const(16384)
RAMP_STEPS = const(3)
DUTY = (0, 4964, 10240, 16384)  # duty_u16 per level 0..RAMP_STEPS

# AUDIO OFF reminder: one LOW-style pulse (t_d ms, ramp ms) every audio_off_reminder_min.
REMINDER = (200, 30)

# LED colours (index = the board's LED order) and the visual pattern per priority:
# (colour, flash period ms, on ms); period 0 = steady.
RED = const(0)
YELLOW = const(1)
CYAN = const(2)
GREEN = const(3)
COLOR_NAMES = ("red", "yellow", "cyan", "green")
VISUAL = (
    None,
    (CYAN, 0, 0),  # LOW: cyan, constant
    (YELLOW, 1600, 800),  # MEDIUM: yellow 0.625 Hz, 50 % (0.4-0.8 Hz, 20-60 %)
    (RED, 500, 250),  # HIGH: red 2 Hz, 50 % (1.4-2.8 Hz, 20-60 %)
)
# Green: steady = monitoring, no alarm shown; AUDIO OFF = green flashing (period, on ms), shown
# whatever else is lit: the persistent AUDIO OFF indication.
AUDIO_OFF_GREEN = (2000, 1000)


def burst_length(pattern):
    """Time from the first pulse's start to the last pulse's end."""
    return pattern[2][-1] + pattern[0]


def period(pattern):
    """Burst repetition period: burst length + interburst interval."""
    return burst_length(pattern) + pattern[3]
