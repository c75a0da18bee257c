"""False sensor-off under line noise, per oximeter format (decoder level).

The simulator's real encoders and fault injector feed the firmware decoders the way the device
reads its UART (what arrived in each 10 ms tick); bedside_host.sim.false_off counts edges into
sensor-off (F_SENSOR_OFF | F_NO_FINGER) while the simulated probe stays on, and the delay until
a real finger removal shows. tools/bench_decoders.py prints the same figures per hour.
"""

from __future__ import annotations

import pytest
from bedside.sensors import OXIMETER_FORMATS
from bedside_host.sim.false_off import FAULTS, false_sensor_off, true_sensor_off

MINUTES = 10.0
# Longest allowed delay (s) from finger removal until the decoder shows sensor-off. Clean line:
# Nonin #2/#7 one frame (13 ms) to confirm the frame, BerryMed AGREE_PACKETS packets (30 ms),
# Nonin #1 one frame to close it + one to agree (2 s), Masimo one line to agree (1 s); plus the
# 10 ms tick. Under 1 % garbage the lock may have to be found again first (Nonin: up to the next
# good packet), and Masimo loses more than half its lines to non-printable garbage.
CLEAN_BOUND_S = {"nonin2": 0.04, "nonin7": 0.04, "berrymed": 0.05, "nonin1": 2.01, "masimo": 1.01}
NOISY_BOUND_S = {"nonin2": 1.0, "nonin7": 1.0, "berrymed": 0.25, "nonin1": 5.0, "masimo": 10.0}


def test_every_format_is_measured() -> None:
    assert set(CLEAN_BOUND_S) == set(NOISY_BOUND_S) == set(OXIMETER_FORMATS)


@pytest.mark.parametrize("fmt", sorted(OXIMETER_FORMATS))
def test_no_false_sensor_off_under_one_percent_garbage(fmt: str) -> None:
    """REQ-SEN-37: 10 simulated minutes of a patient whose probe stays on (artifact, loss of
    track, low perfusion) with 1 % garbage bytes (the example fault of `bedside simulate
    --help`): the decoder never shows sensor-off, and still publishes readings."""
    r = false_sensor_off(fmt, "garbage:0.01", MINUTES * 60)
    assert r.edges == 0 and r.off_s == 0.0, r
    assert r.readings > 0.2 * MINUTES * 60, r


@pytest.mark.slow
@pytest.mark.parametrize("fault", [f for f in FAULTS if not f.startswith("garbage")])
@pytest.mark.parametrize("fmt", sorted(OXIMETER_FORMATS))
def test_no_false_sensor_off_under_corruption_and_drops(fmt: str, fault: str) -> None:
    """REQ-SEN-37: the same with 1 % of bytes bit-flipped or lost."""
    r = false_sensor_off(fmt, fault, MINUTES * 60)
    assert r.edges == 0, r


@pytest.mark.parametrize("fmt", sorted(OXIMETER_FORMATS))
def test_true_sensor_off_still_seen_promptly(fmt: str) -> None:
    """REQ-SEN-37: a real finger removal (30 s every 120 s) is shown within a few frames on a
    clean line, and within a bounded time under 1 % garbage; none is missed."""
    clean = true_sensor_off(fmt, None, 150.0)
    assert clean.missed == 0 and len(clean.delays_s) == 2, clean
    assert max(clean.delays_s) <= CLEAN_BOUND_S[fmt], clean
    noisy = true_sensor_off(fmt, "garbage:0.01", MINUTES * 60)
    assert noisy.missed == 0 and len(noisy.delays_s) == 5, noisy
    assert max(noisy.delays_s) <= NOISY_BOUND_S[fmt], noisy
