# settings_help.py: what each setting of bedside.settings.SPEC means, one line each: read by
# tools/gen_docs.py (docs/settings.md) and the host tools, never imported by the firmware (the
# text would take RAM on the device for nothing). tests/mp/test_settings.py checks that it
# names exactly the settings of SPEC.
HELP = {
    "spo2_low": "SpO2 low limit (SPO2_LOW below it)",
    "spo2_desat": "deep desaturation limit, no delay (SPO2_DESAT)",
    "spo2_delay_mode": "SPO2_LOW delay: fixed seconds, or integrated deficit (%-points x s)",
    "spo2_integral_ref": (
        "integral mode: deficit counted from the limit, or from limit+1 (UNCONFIRMED which)"
    ),
    "spo2_low_delay_s": "SPO2_LOW condition delay (fixed mode)",
    "spo2_integral_limit": "SPO2_LOW integrated-deficit threshold (integral mode)",
    "spo2_escalate_s": "SPO2_LOW escalates to HIGH after this; 0 = never",
    "spo2_hold_nibp": "hold SpO2 alarms while the NIBP cuff inflates (same arm)",
    "spo2_hold_max_s": "cap on the NIBP-inflation hold",
    "pr_low": "pulse rate low limit (PR_LOW)",
    "pr_high": "pulse rate high limit (PR_HIGH)",
    "pr_delay_s": "pulse rate condition delay",
    "sys_high": "systolic high limit (NIBP_SYS_HIGH)",
    "sys_low": "systolic low limit (NIBP_SYS_LOW)",
    "dia_high": "diastolic high limit (NIBP_DIA_HIGH)",
    "map_low": "mean pressure low limit (NIBP_MAP_LOW)",
    "bp_rise_pct": "systolic rise over baseline (BP_RISE); 0 = off",
    "nibp_interval_min": "automatic NIBP interval; 0 = manual only",
    "nibp_patient": "NIBP patient type",
    "oxi_format": "pulse-oximeter module wire format",
    "oxi_baud": (
        "oximeter UART baud rate; 0 = the format's documented rate (BerryMed: UNCONFIRMED)"
    ),
    "oxi_comm_timeout_s": "no valid oximeter data for this long: OXI_COMM_LOST",
    "oxi_stale_s": "no current SpO2 for this long: OXI_DATA_STALE",
    "oxi_poor_signal_s": "searching/artifact/low perfusion sustained",
    "host_timeout_s": "no host traffic for this long: HOST_LINK_LOST",
    "audio_pause_s": "audio pause length after a short ACK press",
    "latch_high": "HIGH physiological alarms latch until reset",
    "latch_medium": "MEDIUM physiological alarms latch until reset",
    "audio_off_allowed": "AUDIO OFF may be entered (host command audio_off); 0 = never",
    "audio_off_reminder_min": "while AUDIO OFF: one reminder pulse this often",
    "limit_step": (
        "an operator limit widens by at most this (its own unit) without confirm; 0 = never"
    ),
    "sounder_hz": "alarm tone f0 (IEC 150-1000 Hz; <= 660 keeps 4 harmonics under 4 kHz)",
    "baseline_gap_min": "baseline NIBP readings this far apart",
    "baseline_stable_s": "baseline SpO2/pulse stable this long",
    "nibp_first_min": "NIBP interval, infusion hour 1 and after a rise",
    "nibp_infusion_min": "NIBP interval, rest of the infusion",
    "nibp_recovery_min": "NIBP interval in recovery",
    "nibp_min_gap_s": "least gap between NIBP cycles",
    "check_interval_min": "responsiveness check interval",
    "check_grace_min": "check late this long: CHECK_OVERDUE",
    "check_escalate_s": "CHECK_OVERDUE to MEDIUM; 0 = never",
    "sedation_score_max": "MOAA/S at or below: SEDATION_DEEP",
    "sedation_priority": "SEDATION_DEEP priority",
    "recovery_min": "least recovery time",
    "discharge_band_pct": "discharge BP/pulse band around baseline",
    "discharge_spo2": "discharge SpO2 above, room air",
    "aldrete_min": "least modified Aldrete total",
    "padss_min": "least PADSS total",
}
