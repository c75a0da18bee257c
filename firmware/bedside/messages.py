# messages.py: every device -> host message body in one place (docs/protocol.md). Built at
# most a few times a second; the envelope (v, seq, boot, type, t_ms) is added by hostlink.
from bedside import VERSION
from bedside.alarms import fsm
from bedside.alarms.conditions import CONDITIONS, COUNT, IDS, KIND_NAMES, PRIORITY_NAMES
from bedside.hostlink import HISTORY, PROTOCOL_VERSION
from bedside.readings import NONE

_QUALITY_NAMES = ("unknown", "low", "marginal", "good")
_AUTH_STATES = ("unprovisioned", "provisioned", "key_unreadable")  # bedside.auth S_*


def val(x):
    return None if x == NONE else x


def hello(dev, rid):
    return {
        "fw": VERSION,
        "protocol": PROTOCOL_VERSION,
        "reset_cause": dev.reset_cause,
        "oxi_format": dev.settings["oxi_format"],
        "nibp": dev.nibp_drv is not None,
        "settings_defaulted": dev.settings.defaulted,
        "settings_problems": list(getattr(dev.settings, "problems", ())),
        "log": dev.log_positions(),
        "history": HISTORY,
        "device": dev.device_id,
        "auth": {"state": _AUTH_STATES[dev.auth.state], "ctr": dev.auth.last},
        "id": rid,
    }


def oxi(dev, now):
    r = dev.oxi
    o = dev.obs
    silent = not o.comm_ok(now, dev.settings["oxi_comm_timeout_s"] * 1000) or not o.oxi_seen
    return {
        "spo2": val(r.spo2) if o.spo2_current(now) else None,
        "pr": val(r.pr) if o.pr_current(now) else None,
        "spo2_age_s": o.spo2.s(now) if o.spo2.known() else None,
        "flags": ["no_data"] if silent else r.flag_names(),
        "quality": _QUALITY_NAMES[r.quality],
        "pi": r.pi_x100 / 100 if r.pi_x100 >= 0 else None,
    }


def nibp(dev, now):
    n = dev.nibp
    if not n.valid:
        return {"sys": None, "dia": None, "map": None, "pr": None, "age_s": None}
    return {
        "sys": n.sys,
        "dia": n.dia,
        "map": n.map,
        "pr": val(n.pr),
        "age_s": dev.nibp_age.s(now),
    }


def alarm(dev, i, event):
    a = dev.alarms
    fields = {
        "condition": IDS[i],
        "priority": PRIORITY_NAMES[a.prio[i]],
        "state": fsm.STATE_NAMES[a.state[i]],
        "event": fsm.EVENT_NAMES[event],
        "kind": KIND_NAMES[CONDITIONS[i][1]],
        "value": val(a.value[i]),
        "limit": val(a.limit[i]),
    }
    if event == fsm.E_ACK:
        fields["pause_s"] = dev.settings["audio_pause_s"]
    return fields


def alarm_list(dev, now):
    """Every condition with a signal: highest priority first, then the oldest onset."""
    a = dev.alarms
    idx = [i for i in range(COUNT) if a.state[i]]
    idx.sort(key=lambda i: (-a.prio[i], -a.age_ms(i, now)))
    return [
        {
            "condition": IDS[i],
            "priority": PRIORITY_NAMES[a.prio[i]],
            "state": fsm.STATE_NAMES[a.state[i]],
            "kind": KIND_NAMES[CONDITIONS[i][1]],
            "value": val(a.value[i]),
            "limit": val(a.limit[i]),
            "age_s": a.age_ms(i, now) // 1000,
        }
        for i in idx
    ]


def heartbeat(dev, now):
    a = dev.alarms
    top = a.top()
    alarms = alarm_list(dev, now)
    hb = {
        "priority": PRIORITY_NAMES[a.visible_priority()],
        "audible": PRIORITY_NAMES[a.audible_priority()],
        "top": IDS[top] if top >= 0 else None,
        "alarms": alarms,
        "active": [x["condition"] for x in alarms],
        "audio_paused_s": a.paused_remaining_ms(now) // 1000,
        "audio_off": a.audio_off,
        "audio_off_left_s": dev.audio_off_left_ms(now) // 1000 if a.audio_off else None,
        "phase": dev.sessctl.sess.name() if dev.sessctl is not None else "idle",
        "rx_errors": dev.link.rx_errors + dev.decoder.frames_bad,
        "tx_dropped": dev.link.tx_dropped,
        "faults": dev.faults,
        "storage_errors": dev.persist.errors if dev.persist is not None else 0,
        "display_errors": dev.display_errors,
        "uptime_s": dev.up_s,
    }
    drv = dev.nibp_drv
    if drv is not None:
        hb["nibp"] = nibp(dev, now)
        hb["nibp_state"] = dev.nibp_states[drv.state]
        hb["cuff"] = val(drv.cuff_mmhg)
    return hb


def session(sess, event, by):
    """The `session` message: what happened, who did it, the state object after it."""
    return {"event": event, "by": by, "session": sess.state()}
