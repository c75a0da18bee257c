# fsm.py: the alarm occurrence state table (IEC 60601-1-8 signal states), data only.
# The firmware engine looks transitions up in it; the host builds a `transitions` reference
# model from the same rows and a property test requires both to agree.
from bedside.compat import const

# States of one condition's occurrence.
S_INACTIVE = const(0)  # no condition, no signals
S_ACTIVE = const(1)  # condition exists: visual + auditory signals
S_PAUSED = const(2)  # condition exists, audio paused (ACK): visual only, until the pause ends
S_LATCHED = const(3)  # condition ended, latching: visual + auditory continue until reset/ack
S_LATCHED_ACK = const(4)  # condition ended, latched and acknowledged: visual until reset
STATE_NAMES = ("inactive", "active", "audio_paused", "latched", "latched_acknowledged")

# Events.
E_RAISE = const(0)  # the condition starts to exist (after its delay)
E_END = const(1)  # the condition ceases to exist
E_ACK = const(2)  # operator: short press (acknowledge / audio pause)
E_PAUSE_END = const(3)  # the audio pause time ran out
E_RESET = const(4)  # operator: long press (alarm reset)
E_ESCALATE = const(5)  # priority raised (breaks through an audio pause)
EVENT_NAMES = ("raise", "end", "ack", "pause_end", "reset", "escalate")

# Guards.
G_ANY = const(0)
G_LATCHING = const(1)
G_NONLATCHING = const(2)
GUARD_NAMES = ("any", "latching", "nonlatching")

# (event, source, destination, guard). Pairs not listed leave the state unchanged.
TRANSITIONS = (
    (E_RAISE, S_INACTIVE, S_ACTIVE, G_ANY),
    (E_RAISE, S_LATCHED, S_ACTIVE, G_ANY),
    (E_RAISE, S_LATCHED_ACK, S_ACTIVE, G_ANY),
    (E_END, S_ACTIVE, S_INACTIVE, G_NONLATCHING),
    (E_END, S_ACTIVE, S_LATCHED, G_LATCHING),
    (E_END, S_PAUSED, S_INACTIVE, G_NONLATCHING),
    (E_END, S_PAUSED, S_LATCHED_ACK, G_LATCHING),
    (E_ACK, S_ACTIVE, S_PAUSED, G_ANY),
    (E_ACK, S_LATCHED, S_LATCHED_ACK, G_ANY),
    (E_PAUSE_END, S_PAUSED, S_ACTIVE, G_ANY),
    (E_RESET, S_LATCHED, S_INACTIVE, G_ANY),
    (E_RESET, S_LATCHED_ACK, S_INACTIVE, G_ANY),
    (E_ESCALATE, S_ACTIVE, S_ACTIVE, G_ANY),
    (E_ESCALATE, S_PAUSED, S_ACTIVE, G_ANY),
)

N_STATES = const(5)
N_EVENTS = const(6)

AUDIBLE = (S_ACTIVE, S_LATCHED)  # states whose auditory signal sounds
VISIBLE = (S_ACTIVE, S_PAUSED, S_LATCHED, S_LATCHED_ACK)  # states whose visual signal shows


def build_lookup(latching):
    """bytearray[event * N_STATES + state] = destination + 1 (0: no transition)."""
    table = bytearray(N_EVENTS * N_STATES)
    for event, src, dst, guard in TRANSITIONS:
        if guard == G_ANY or (guard == G_LATCHING) == bool(latching):
            table[event * N_STATES + src] = dst + 1
    return table
