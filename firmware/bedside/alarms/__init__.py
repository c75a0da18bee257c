# alarms: the IEC 60601-1-8 alarm system of the core (conditions -> occurrences -> signals).
#   conditions.py  the table of alarm conditions: id, kind, priority, latching, delays
#   fsm.py         the occurrence state table (shared with the host's `transitions` model)
#   rules.py       the predicates: when each condition holds, with value and limit
#   engine.py      delays, escalation, latching, inactivation; emits alarm events
#   patterns.py    auditory bursts and visual flash patterns as data (IEC Tables 2-4)
