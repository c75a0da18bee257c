# test_week.py: a day of virtual time through the whole core with live input, the heap flat
# (REQ-REL-03; the full week is tools/bench_reliability.py on MicroPython).
from week import run


def test_a_day_with_input_keeps_the_heap_flat():
    """REQ-REL-03: 24 h of virtual time with oximeter input, desaturation episodes, signed
    host commands and log reads: no fault, alarms raised each episode, healthy at the end,
    and (MicroPython) the heap after collection never grows past the first sample by more
    than 2 KB."""
    samples, faults, raises, healthy = run(24, sample_h=3, tick=1000)
    assert faults == 0 and healthy
    assert raises >= 6 * 2  # SPO2_LOW and SPO2_DESAT in each of the 6 episodes
    heap = [s for s in samples if s is not None]
    if heap:
        assert max(heap[1:]) - heap[1] <= 2048, heap
