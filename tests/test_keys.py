"""The one key mapping (bedside.buttons.Keys) driven by sampled levels, as MainLoop drives it."""

from __future__ import annotations

from bedside.buttons import (
    CHORD_MS,
    E_ACK,
    E_CHECK,
    E_NIBP,
    E_RESET,
    E_SELFTEST,
    K_ACK,
    K_CHECK,
    K_NIBP,
    Keys,
)

TICK = 10


def _press(keys: Keys, t: int, levels: int, held_ms: int, release_ms: int = 100) -> list[int]:
    """Hold `levels` for held_ms then release for release_ms, one update per tick; the events."""
    out = []
    for dt in range(0, held_ms + release_ms, TICK):
        ev = keys.update(levels if dt < held_ms else 0, t + dt)
        while ev:
            out.append(ev)
            ev = keys.next_event()
    return out


def test_single_short_presses_of_each_key() -> None:
    """REQ-CORE-13: a short press of CHECK or NIBP alone is one CHECK or NIBP event (a single
    key's release is not mistaken for the release of the CHECK+NIBP chord); ACK short = ack,
    ACK long = reset."""
    keys = Keys()
    assert _press(keys, 1000, K_NIBP, 150) == [E_NIBP]
    assert _press(keys, 2000, K_CHECK, 150) == [E_CHECK]
    assert _press(keys, 3000, K_ACK, 150) == [E_ACK]
    assert _press(keys, 4000, K_ACK, 1700) == [E_RESET]
    assert _press(keys, 6000, K_NIBP, 150) == [E_NIBP]


def test_chord_gives_selftest_only_and_keys_work_after_it() -> None:
    """REQ-CORE-13: CHECK+NIBP held CHORD_MS is the self-test alone (the chord's release is no
    CHECK or NIBP press, whichever key is let go first); single presses work again after."""
    keys = Keys()
    assert _press(keys, 0, K_CHECK | K_NIBP, CHORD_MS + 200) == [E_SELFTEST]
    t = CHORD_MS + 1000
    out = _press(keys, t, K_CHECK | K_NIBP, CHORD_MS + 200, release_ms=0)
    out += _press(keys, t + CHORD_MS + 200, K_CHECK, 300)  # NIBP let go first, then CHECK
    assert out == [E_SELFTEST]
    t += 2 * CHORD_MS
    assert _press(keys, t, K_CHECK | K_NIBP, 500) == []  # a short chord: nothing
    assert _press(keys, t + 1000, K_NIBP, 150) == [E_NIBP]
    assert _press(keys, t + 2000, K_CHECK, 150) == [E_CHECK]


def test_idle_fast_path_gives_what_the_full_update_gives() -> None:
    """REQ-CORE-13: Keys.update's shortcut for a tick with no key down and nothing settling or
    queued (no calls, for the main loop's cost) returns the same events, with the same
    timing, as the full update on random presses, holds, chords and bounces."""
    import random

    rng = random.Random(15)
    fast, full = Keys(), Keys()
    t = 1000
    levels = 0
    got: list[tuple[int, int]] = []
    want: list[tuple[int, int]] = []
    for _ in range(200000):
        if rng.random() < 0.01:  # a change of the held keys (bounces: changes ticks apart)
            levels = rng.choice((0, 0, 0, K_ACK, K_CHECK, K_NIBP, K_CHECK | K_NIBP, 7))
        t += TICK
        full._rest = False  # never the shortcut
        for keys, out in ((fast, got), (full, want)):
            ev = keys.update(levels, t)
            while ev:
                out.append((t, ev))
                ev = keys.next_event()
    assert got == want
    assert len(want) > 100
