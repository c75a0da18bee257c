"""Locate the firmware tree so CPython can import the same core that runs on the Pico."""

from __future__ import annotations

import os
import sys
from pathlib import Path

FIRMWARE_DIR = Path(
    os.environ.get("BEDSIDE_FIRMWARE", Path(__file__).resolve().parents[2] / "firmware")
)


def ensure_firmware_on_path() -> None:
    """Put ``firmware/`` first on sys.path (idempotent); fail clearly if it is missing."""
    if not (FIRMWARE_DIR / "bedside" / "__init__.py").is_file():
        raise ImportError(
            f"firmware core not found at {FIRMWARE_DIR}; set BEDSIDE_FIRMWARE to the firmware/ dir"
        )
    path = str(FIRMWARE_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
