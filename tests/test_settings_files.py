"""Settings files on flash (REQ-SET): any content loads without an exception into valid settings
(property test), every single-byte corruption is caught, MicroPython and CPython write the same
bytes, and docs/settings.md shows the invariants and the schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from bedside import settings as S
from bedside import settingsfile as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import micropython  # noqa: E402


class _Store:
    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def read(self, name: str) -> bytes | None:
        assert name == S.SETTINGS_FILE
        return self.data


def _valid(name: str) -> st.SearchStrategy[Any]:
    default, low, high = S.SPEC[name][0], S.SPEC[name][1], S.SPEC[name][2]
    if high is None:
        return st.sampled_from(low)
    return st.one_of(st.integers(low, high), st.just(default))


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def _stored(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in S.NAMES:
        kind = draw(st.sampled_from(["valid", "valid", "valid", "junk", "missing"]))
        if kind == "valid":
            out[name] = draw(_valid(name))
        elif kind == "junk":
            out[name] = draw(_junk)
    out.update(draw(st.dictionaries(st.text(min_size=1, max_size=60), _junk, max_size=4)))
    return out


def _check_loaded(s: S.Settings, stored: dict[str, Any], schema: int) -> None:
    assert s.defaulted == bool(s.problems)
    while schema < S.SCHEMA:  # a setting a migration fills is not a problem
        stored = F.MIGRATIONS[schema](dict(stored))
        schema += 1
    for name in S.NAMES:
        assert S.check(name, s.values[name]) is None, name
    for low, high, gap in S.INVARIANTS:
        assert s.values[low] + gap <= s.values[high], (low, high)
    text = " ".join(s.problems)
    for name in S.NAMES:
        value = stored.get(name)
        kept = name in stored and s.values[name] == value and type(value) is type(s.values[name])
        assert kept or name in text, (name, value, s.problems)
    for p in s.problems:
        assert isinstance(p, str) and len(p) < 600


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stored(), st.sampled_from(["current", "plain"]))
def test_any_stored_content_loads_into_valid_settings(stored: dict[str, Any], fmt: str) -> None:
    """REQ-SET-07: whatever a (checksum-valid or plain JSON) file holds, loading never raises,
    the result is in range and satisfies every invariant, and each stored value is either kept
    or named in a problem; defaulted is set exactly when there is a problem."""
    raw = S.encode(stored) if fmt == "current" else json.dumps(stored).encode()
    s = S.read_settings(_Store(raw))
    _check_loaded(s, stored, S.SCHEMA if fmt == "current" else 1)


def test_every_single_byte_corruption_is_caught() -> None:
    """REQ-SET-06: changing any one byte of a stored file (two different ways) is detected:
    defaults, SETTINGS_DEFAULTED, a problem; never a silently different value."""
    values = dict(S.defaults(), spo2_low=88, pr_high=140, oxi_format="masimo")
    good = S.encode(values)
    assert S.read_settings(_Store(good)).values == values
    for i in range(len(good)):
        for flip in (0x01, 0x10):
            bad = bytearray(good)
            bad[i] ^= flip
            s = S.read_settings(_Store(bytes(bad)))
            assert s.defaulted and s.problems, i
            assert s.values == S.defaults(), (i, s.values)


@pytest.mark.skipif(micropython.executable() is None, reason="MicroPython unix port not installed")
def test_micropython_writes_the_same_file(tmp_path: Path) -> None:
    """REQ-SET-06: the MicroPython firmware and the CPython SIL write byte-identical files, so a
    file from either loads on the other."""
    values = dict(S.defaults(), spo2_low=88, nibp_patient="neonate")
    # (data in files: this unix port aborts on a command-line argument over ~256 bytes)
    (tmp_path / "values.json").write_text(json.dumps(values))
    (tmp_path / "cpython.bin").write_bytes(S.encode(values))
    script = (
        "import json\n"
        "from bedside import settings as S\n"
        "class St:\n"
        "    def read(self, name):\n"
        "        return RAW\n"
        "with open('values.json') as f:\n"
        "    v = json.load(f)\n"
        "RAW = S.encode(v)\n"
        "with open('mp.bin', 'wb') as f:\n"
        "    f.write(RAW)\n"
        "s = S.read_settings(St())\n"
        "print(s.values == v, s.defaulted)\n"
        "with open('cpython.bin', 'rb') as f:\n"
        "    print(S.decode(f.read())[1] == v)\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(script)
    res = micropython.run(path, cwd=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    assert res.stdout.split() == ["True", "False", "True"]
    assert (tmp_path / "mp.bin").read_bytes() == S.encode(values)


def test_settings_doc_shows_invariants_and_schema() -> None:
    """REQ-SET-01: docs/settings.md (generated) lists every invariant, the schema and every
    migration."""
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for low, high, gap in S.INVARIANTS:
        assert f"| `{low}` | `{high}` | {gap} |" in text
    assert f'"schema": {S.SCHEMA}' in text
    for n in F.MIGRATIONS:
        assert f"| {n} | {n + 1} |" in text


def test_help_names_exactly_the_settings() -> None:
    """REQ-RAM-01: the meaning of each setting (bedside.settings_help, read by the docs and host
    tools, never by the device) exists for exactly the settings of SPEC, one line each."""
    from bedside.settings_help import HELP

    assert set(HELP) == set(S.SPEC)
    assert all(isinstance(t, str) and t and "\n" not in t for t in HELP.values())
