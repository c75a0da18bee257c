# settingsfile.py: reading the settings file (bedside.settings describes it): decode, the
# migrations of older schemas (MIGRATIONS, RENAMED) and the checks of a stored file. Imported
# by bedside.settings for a read (at boot) and released after: no RAM while the device runs.
# Pure: the flash store is passed in.
import json

from bedside.compat import const
from bedside.crc import crc32
from bedside.settings import (
    CHECKSUM,
    INVARIANTS,
    NAMES,
    RENAMED,
    SCHEMA,
    SETTINGS_FILE,
    SPEC,
    Settings,
    _broken,
    _short,
    check,
    defaults,
)  # fmt: skip

_MAX_FILE = const(8192)  # bytes; larger is not a settings file (today's is under 700 bytes)
_LISTED = const(6)  # names listed one by one in a problem, the rest counted

# Settings added while the file was schema 1 (plain JSON): a file from the first release lacks
# them, which is not a problem. (git: latch_medium, spo2_integral_ref, audio_off_allowed and
# audio_off_reminder_min came with the integrated-deficit delay, oxi_baud with oximeter_link.)
_ADDED_IN_SCHEMA_1 = (
    "audio_off_allowed",
    "audio_off_reminder_min",
    "latch_medium",
    "oxi_baud",
    "spo2_integral_ref",
)


def _from_1(values):
    """Plain JSON without a checksum (first releases): settings added since then get defaults."""
    return _add(_ADDED_IN_SCHEMA_1, values)


# Settings added with the infusion session and the limit-widening confirmation (schema 3).
_ADDED_IN_SCHEMA_2 = (
    "aldrete_min", "baseline_gap_min", "baseline_stable_s", "check_escalate_s",
    "check_grace_min", "check_interval_min", "discharge_band_pct", "discharge_spo2",
    "nibp_first_min", "nibp_infusion_min", "nibp_min_gap_s", "nibp_recovery_min", "padss_min",
    "recovery_min", "sedation_priority", "sedation_score_max", "limit_step",
)  # fmt: skip


def _add(names, values):
    for name in names:
        if name not in values:
            values[name] = SPEC[name][0]
    return values


def _from_2(values):
    """Schema 2 (before the infusion session and the confirmation of widened limits): the
    session settings and limit_step get their defaults."""
    return _add(_ADDED_IN_SCHEMA_2, values)


# schema n -> function(values dict of schema n) -> values dict of schema n + 1. A migration sees
# the names of its own schema; RENAMED is applied after all migrations.
MIGRATIONS = {1: _from_1, 2: _from_2}


def _listed(names):
    """'a, b, c, d, e, f and 5 more': a bounded problem text however many names."""
    text = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        text += " and %d more" % (len(names) - _LISTED)
    return text


def _repair(values, problems):
    """Put back to default the setting that breaks an invariant: the one not at its default
    (both differ: `high` first, then `low` if still needed). Repeats until all rows hold."""
    again = True
    while again:
        again = False
        for low, high, gap in INVARIANTS:
            text = _broken(low, values[low], high, values[high], gap)
            if text is None:
                continue
            name = high if values[high] != SPEC[high][0] else low
            if values[name] == SPEC[name][0]:
                continue  # both at default: cannot happen (the defaults satisfy every row)
            values[name] = SPEC[name][0]
            problems.append("%s: %s back to default %s" % (text, name, SPEC[name][0]))
            again = True


def _json(data):
    try:
        return json.loads(data)
    except Exception:  # ValueError, RecursionError, MicroPython MemoryError ...
        raise ValueError("unreadable: not JSON") from None


def _is_hex(data):
    for byte in data:
        if not (48 <= byte <= 57 or 97 <= byte <= 102):  # 0-9 a-f
            return False
    return True


def decode(raw):
    """(schema, values dict) of a settings file's bytes, not yet checked against SPEC.
    Raises ValueError with a readable reason: CHECKSUM, or "unreadable: ..."."""
    if len(raw) > _MAX_FILE:
        raise ValueError("unreadable: %d bytes is too large for a settings file" % len(raw))
    raw = bytes(raw)
    if raw.lstrip()[:1] == b"{":  # schema 1: plain JSON {name: value}, no checksum
        values = _json(raw)
        if not isinstance(values, dict):
            raise ValueError("unreadable: not a settings object")
        return 1, values
    if len(raw) < 10 or raw[8:9] != b" " or not _is_hex(raw[:8]):
        raise ValueError("unreadable: not a settings file")
    body = raw[9:-1] if raw[-1:] == b"\n" else raw[9:]
    if int(raw[:8], 16) != crc32(body) & 0xFFFFFFFF:
        raise ValueError(CHECKSUM)
    doc = _json(body)
    if not isinstance(doc, dict):
        raise ValueError("unreadable: not a settings object")
    schema = doc.get("schema")
    values = doc.get("values")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise ValueError("unreadable: no valid schema number")
    if not isinstance(values, dict):
        raise ValueError("unreadable: no settings values")
    return schema, values


def read_settings(store):
    """The Settings in force at boot, from store.read(SETTINGS_FILE). No store or no file
    (first boot): defaults, not defaulted. An unreadable or corrupt file: defaults, defaulted,
    and the reason in `problems`. Never raises: nothing here may stop the device booting."""
    s = Settings()
    if store is None:
        return s
    try:
        raw = store.read(SETTINGS_FILE)
    except Exception as e:  # OSError from the flash, or anything else
        s._unreadable("unreadable: %s %s" % (type(e).__name__, e))
        return s
    if raw is None:
        return s
    try:
        schema, values = decode(raw)
    except ValueError as e:
        s._unreadable(str(e))
        return s
    except Exception as e:  # MemoryError on a huge file, ...
        s._unreadable("unreadable: %s" % type(e).__name__)
        return s
    load(s, values, schema)
    return s


def load(s, stored, schema):
    """Settings.load: apply the values dict of a settings file of `schema` to Settings s."""
    if not isinstance(stored, dict):
        s._unreadable("unreadable: not a settings object")
        return False
    values = defaults()
    problems = []
    stored = dict(stored)  # the caller's dict is left as it was
    older = schema < SCHEMA
    if schema > SCHEMA:
        problems.append("schema %d is newer than this firmware's %d" % (schema, SCHEMA))
    while schema < SCHEMA:
        migrate = MIGRATIONS.get(schema)
        if migrate is not None:
            stored = migrate(stored)
        schema += 1
    for old in RENAMED:
        if old in stored:
            value = stored.pop(old)
            new = RENAMED[old]
            if new in stored:
                problems.append("%s dropped: its new name %s is also stored" % (old, new))
            else:
                stored[new] = value
    missing = []
    for name in NAMES:
        if name not in stored:
            missing.append(name)
            continue
        value = stored.pop(name)
        err = check(name, value)
        if err:
            problems.append("%s; default %s used" % (err, SPEC[name][0]))
        else:
            values[name] = value
    if stored:  # whatever is left is unknown to this firmware
        problems.append("unknown, dropped: " + _listed(sorted(_short(n) for n in stored)))
    if missing:
        problems.append("missing, default used: " + ", ".join(missing))
    _repair(values, problems)
    s.values = values
    s.problems = problems
    s.defaulted = bool(problems)
    s.needs_save = older and not problems
    return not problems
