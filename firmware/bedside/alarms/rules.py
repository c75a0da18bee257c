# rules.py: when each alarm condition holds. One function per group of conditions; each
# reports (predicate, value, limit) to the engine. Delays, latching and signals live in the
# engine; limits come from bedside.settings; the facts come from bedside.observations (one
# object, with saturating ages). "Below a limit" means value < limit; hysteresis: a condition
# that exists ends only once the value is HYST past the limit.
from bedside.alarms import conditions as c
from bedside.alarms.deficit import REF_ABOVE_LIMIT, REF_LIMIT
from bedside.compat import const
from bedside.readings import F_ARTIFACT, F_LOW_PERF, F_SEARCHING, NONE

_HYST_SPO2 = const(1)  # %-points
_HYST_PR = const(2)  # beats/min
_POOR = F_SEARCHING | F_ARTIFACT | F_LOW_PERF


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


def _hold(eng, i, now):
    """Condition i stays as it is: an existing one goes on, none starts."""
    eng.report(i, eng.exists[i], eng.value[i], eng.limit[i], now)


def oximeter(eng, s, o, now):
    """SpO2 and pulse limits, sensor-off, poor signal, comm lost, stale data."""
    v = s.values  # the settings dict itself: no Python __getitem__ call per limit
    r = o.oxi
    comm_ok = o.comm_ok(now, v["oxi_comm_timeout_s"] * 1000)
    eng.report(c.OXI_COMM_LOST, not comm_ok, NONE, v["oxi_comm_timeout_s"], now)
    off = comm_ok and o.oxi_seen and o.sensor_off(now)
    eng.report(c.OXI_SENSOR_OFF, off, NONE, NONE, now)
    poor = comm_ok and o.oxi_seen and not o.off_flags and bool(r.flags & _POOR)
    if not o.spo2_held:
        eng.report(c.OXI_SIGNAL_POOR, poor, NONE, NONE, now)
    # Stale: the module talks but has had no current SpO2 value for too long (ISO 80601-2-61),
    # counted with the probe on: from the last value, or from the end of a sensor-off.
    stale_ms = v["oxi_stale_s"] * 1000
    stale = comm_ok and not off and o.spo2_wait(now) >= stale_ms
    eng.report(c.OXI_DATA_STALE, stale, NONE, v["oxi_stale_s"], now)
    usable = comm_ok and not off
    spo2 = r.spo2 if usable and o.spo2_current(now) else NONE
    pr = r.pr if usable and o.pr_current(now) else NONE
    # A value momentarily not current (a corrupt packet, sensor-off not yet confirmed): the
    # existing alarms go on, nothing new starts from old data, until the data is stale.
    pending = usable and o.off_pending(now)
    spo2_gap = usable and not stale and (pending or spo2 == NONE)
    pr_gap = usable and o.value_age(o.pr, now) < stale_ms and (pending or pr == NONE)
    if spo2_gap:
        _hold(eng, c.SPO2_DESAT, now)
        _hold(eng, c.SPO2_LOW, now)
        eng.deficit.hold(now)
    else:
        _low(eng, c.SPO2_DESAT, spo2, v["spo2_desat"], _HYST_SPO2, now)
        if o.spo2_held:
            # NIBP inflation on the same arm (alarms.md 6): an existing SPO2_LOW goes on, none
            # starts, the integrated deficit is frozen. SPO2_DESAT is never held.
            _hold(eng, c.SPO2_LOW, now)
            eng.deficit.hold(now)
        elif v["spo2_delay_mode"] == "integral":
            _spo2_integral(eng, spo2, s, now)
        else:
            eng.no_delay[c.SPO2_LOW] = 0
            eng.deficit.reset()
            _low(eng, c.SPO2_LOW, spo2, v["spo2_low"], _HYST_SPO2, now)
    if pr_gap or o.spo2_held:
        _hold(eng, c.PR_LOW, now)
        _hold(eng, c.PR_HIGH, now)
    else:
        _low(eng, c.PR_LOW, pr, v["pr_low"], _HYST_PR, now)
        _high(eng, c.PR_HIGH, pr, v["pr_high"], _HYST_PR, now)


def _spo2_integral(eng, spo2, s, now):
    """SPO2_LOW by the integrated deficit (deficit.py): the rule is its own delay."""
    v = s.values
    i = c.SPO2_LOW
    eng.no_delay[i] = 1
    limit = v["spo2_low"]
    ref = REF_ABOVE_LIMIT if v["spo2_integral_ref"] == "above_limit" else REF_LIMIT
    d = eng.deficit
    raw = d.update(spo2, limit, ref, v["spo2_integral_limit"], now)
    if not raw and eng.exists[i] and spo2 != NONE and d.deficit(spo2, limit, ref) > -_HYST_SPO2:
        raw = True  # hysteresis: an existing condition ends only HYST past the reference
    eng.report(i, raw, spo2, limit, now)


def nibp(eng, s, o, now):
    """NIBP limits on the latest valid reading (intermittent), failures, cuff, overdue."""
    v = s.values
    n = o.nibp
    have = n.valid
    eng.report(c.NIBP_SYS_HIGH, have and n.sys > v["sys_high"], n.sys, v["sys_high"], now)
    eng.report(c.NIBP_SYS_LOW, have and n.sys < v["sys_low"], n.sys, v["sys_low"], now)
    eng.report(c.NIBP_DIA_HIGH, have and n.dia > v["dia_high"], n.dia, v["dia_high"], now)
    eng.report(c.NIBP_MAP_LOW, have and n.map < v["map_low"], n.map, v["map_low"], now)
    pct = v["bp_rise_pct"]
    base = o.bp_baseline_sys
    rise = have and pct > 0 and base != NONE and n.sys * 100 > base * (100 + pct)
    eng.report(c.BP_RISE, rise, n.sys, (base * (100 + pct)) // 100 if base != NONE else NONE, now)
    cond = o.nibp_cond
    eng.report(c.NIBP_FAILED, cond == "NIBP_FAILED", o.nibp_error, NONE, now)
    eng.report(c.NIBP_COMM_LOST, cond == "NIBP_COMM_LOST", NONE, NONE, now)
    eng.report(c.NIBP_CUFF_FAULT, o.cuff_fault, NONE, NONE, now)
    interval = o.nibp_interval_min  # the schedule's interval now (the session's phase)
    overdue = interval > 0 and o.nibp_due.ms(now) >= 2 * interval * 60000
    eng.report(c.NIBP_OVERDUE, overdue, NONE, 2 * interval, now)


def device(eng, s, o, now):
    """Host link, restart, settings, storage, caught faults, checks, test alarms."""
    v = s.values
    lost = o.host_seen and o.host_rx.ms(now) >= v["host_timeout_s"] * 1000
    eng.report(c.HOST_LINK_LOST, lost, NONE, v["host_timeout_s"], now)
    eng.report(c.DEVICE_RESTARTED, o.restarted, NONE, NONE, now)
    eng.report(c.SETTINGS_DEFAULTED, s.defaulted, NONE, NONE, now)
    eng.report(c.CHECK_OVERDUE, o.check_overdue, NONE, NONE, now)
    eng.report(c.SEDATION_DEEP, o.sedation_deep, o.sedation_score, s["sedation_score_max"], now)
    eng.report(c.STORAGE_FAULT, o.storage_fault, NONE, NONE, now)
    eng.report(c.CORE_FAULT, o.core_fault(now), NONE, NONE, now)
    t = o.test_running(now)
    eng.report(c.TEST_HIGH, t == c.P_HIGH, NONE, NONE, now)
    eng.report(c.TEST_MEDIUM, t == c.P_MEDIUM, NONE, NONE, now)
    eng.report(c.TEST_LOW, t == c.P_LOW, NONE, NONE, now)


def evaluate(eng, s, o, now):
    o.tick(now)
    oximeter(eng, s, o, now)
    nibp(eng, s, o, now)
    device(eng, s, o, now)
