# rules.py: when each alarm condition holds. One function per group of conditions; each
# reports (predicate, value, limit) to the engine. Delays, latching and signals live in the
# engine; settings (limits) come from bedside.settings. "Below a limit" means value < limit;
# hysteresis: a condition that exists ends only once the value is HYST past the limit.
from bedside.alarms import conditions as c
from bedside.alarms.deficit import REF_ABOVE_LIMIT, REF_LIMIT
from bedside.compat import const
from bedside.readings import F_ARTIFACT, F_LOW_PERF, F_NO_FINGER, F_SEARCHING, F_SENSOR_OFF, NONE
from bedside.ticks import elapsed

_HYST_SPO2 = const(1)  # %-points
_HYST_PR = const(2)  # beats/min
_OFF = F_SENSOR_OFF | F_NO_FINGER
_POOR = F_SEARCHING | F_ARTIFACT | F_LOW_PERF
_HELD = (c.SPO2_DESAT, c.SPO2_LOW, c.PR_LOW, c.PR_HIGH, c.OXI_SIGNAL_POOR)


def _low(eng, i, value, limit, hyst, now):
    if value == NONE:
        eng.report(i, False, value, limit, now)
        return
    lim = limit + hyst if eng.exists[i] else limit
    eng.report(i, value < lim, value, limit, now)


def _high(eng, i, value, limit, hyst, now):
    if value == NONE:
        eng.report(i, False, value, limit, now)
        return
    lim = limit - hyst if eng.exists[i] else limit
    eng.report(i, value > lim, value, limit, now)


def oximeter(eng, dev, now):
    """SpO2 and pulse limits, sensor-off, poor signal, comm lost, stale data."""
    s = dev.settings
    r = dev.oxi
    comm_ok = dev.oxi_seen and elapsed(now, dev.oxi_rx_ms) < s["oxi_comm_timeout_s"] * 1000
    if not dev.oxi_seen:
        # From power-up the module gets the same grace time to start talking.
        comm_ok = elapsed(now, dev.boot_ms) < s["oxi_comm_timeout_s"] * 1000
    eng.report(c.OXI_COMM_LOST, not comm_ok, NONE, s["oxi_comm_timeout_s"], now)
    off = comm_ok and dev.oxi_seen and bool(r.flags & _OFF)
    eng.report(c.OXI_SENSOR_OFF, off, NONE, NONE, now)
    poor = comm_ok and dev.oxi_seen and not off and bool(r.flags & _POOR)
    if not dev.spo2_held:
        eng.report(c.OXI_SIGNAL_POOR, poor, NONE, NONE, now)
    # Stale: the module talks but has had no current SpO2 value for too long (ISO 80601-2-61).
    stale_ms = s["oxi_stale_s"] * 1000
    stale = comm_ok and not off and elapsed(now, dev.spo2_valid_ms) >= stale_ms
    eng.report(c.OXI_DATA_STALE, stale, NONE, s["oxi_stale_s"], now)
    if dev.spo2_held:
        # NIBP inflation on the same arm (alarms.md 4.5): SpO2/pulse conditions that exist
        # stay as they are; none starts (pending delays restart afterwards); the integrated
        # deficit neither grows nor shrinks. Sensor-off/comm/stale are never held.
        for i in _HELD:
            eng.report(i, eng.exists[i], eng.value[i], eng.limit[i], now)
        eng.deficit.hold(now)
        return
    usable = comm_ok and not off
    spo2 = r.spo2 if usable else NONE
    pr = r.pr if usable else NONE
    _low(eng, c.SPO2_DESAT, spo2, s["spo2_desat"], _HYST_SPO2, now)
    if s["spo2_delay_mode"] == "integral":
        _spo2_integral(eng, spo2, s, now)
    else:
        eng.no_delay[c.SPO2_LOW] = 0
        eng.deficit.reset()
        _low(eng, c.SPO2_LOW, spo2, s["spo2_low"], _HYST_SPO2, now)
    _low(eng, c.PR_LOW, pr, s["pr_low"], _HYST_PR, now)
    _high(eng, c.PR_HIGH, pr, s["pr_high"], _HYST_PR, now)


def _spo2_integral(eng, spo2, s, now):
    """SPO2_LOW by the integrated deficit (deficit.py): the rule is its own delay."""
    i = c.SPO2_LOW
    eng.no_delay[i] = 1
    limit = s["spo2_low"]
    ref = REF_ABOVE_LIMIT if s["spo2_integral_ref"] == "above_limit" else REF_LIMIT
    d = eng.deficit
    raw = d.update(spo2, limit, ref, s["spo2_integral_limit"], now)
    if not raw and eng.exists[i] and spo2 != NONE and d.deficit(spo2, limit, ref) > -_HYST_SPO2:
        raw = True  # hysteresis: an existing condition ends only HYST past the reference
    eng.report(i, raw, spo2, limit, now)


def nibp(eng, dev, now):
    """NIBP limits on the latest valid reading (intermittent), failures, overdue."""
    s = dev.settings
    n = dev.nibp
    have = n.valid
    eng.report(c.NIBP_SYS_HIGH, have and n.sys > s["sys_high"], n.sys, s["sys_high"], now)
    eng.report(c.NIBP_SYS_LOW, have and n.sys < s["sys_low"], n.sys, s["sys_low"], now)
    eng.report(c.NIBP_DIA_HIGH, have and n.dia > s["dia_high"], n.dia, s["dia_high"], now)
    eng.report(c.NIBP_MAP_LOW, have and n.map < s["map_low"], n.map, s["map_low"], now)
    pct = s["bp_rise_pct"]
    base = dev.bp_baseline_sys
    rise = have and pct > 0 and base != NONE and n.sys * 100 > base * (100 + pct)
    eng.report(c.BP_RISE, rise, n.sys, (base * (100 + pct)) // 100 if base != NONE else NONE, now)
    cond = dev.nibp_condition()
    eng.report(c.NIBP_FAILED, cond == "NIBP_FAILED", dev.nibp_error_code(), NONE, now)
    eng.report(c.NIBP_COMM_LOST, cond == "NIBP_COMM_LOST", NONE, NONE, now)
    interval = s["nibp_interval_min"]
    overdue = interval > 0 and elapsed(now, dev.nibp_due_ref_ms) >= 2 * interval * 60000
    eng.report(c.NIBP_OVERDUE, overdue, NONE, 2 * interval, now)


def device(eng, dev, now):
    """Host link, restart, defaulted settings, responsiveness check."""
    s = dev.settings
    lost = dev.host_seen and elapsed(now, dev.host_rx_ms) >= s["host_timeout_s"] * 1000
    eng.report(c.HOST_LINK_LOST, lost, NONE, s["host_timeout_s"], now)
    eng.report(c.DEVICE_RESTARTED, dev.restarted, NONE, NONE, now)
    eng.report(c.SETTINGS_DEFAULTED, s.defaulted, NONE, NONE, now)
    eng.report(c.CHECK_OVERDUE, dev.check_overdue, NONE, NONE, now)


def evaluate(eng, dev, now):
    oximeter(eng, dev, now)
    nibp(eng, dev, now)
    device(eng, dev, now)
