"""HL7 v2 to the hospital (docs/hl7.md): IHE PCD-01 ORU^R01 (observations) and PCD-04 ORU^R40
(alarms) over MLLP, built and validated with hl7apy; MDC codes in ``mdc`` (one table)."""
