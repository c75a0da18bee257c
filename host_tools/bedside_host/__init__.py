"""Bedside host tools: software-in-the-loop, patient simulator, monitor.

Not a certified medical device. The firmware core in ``firmware/bedside`` is imported from
the repository checkout (one source of truth for protocols, settings and alarm rules).
"""

from bedside_host._firmware import FIRMWARE_DIR, ensure_firmware_on_path

__version__ = "0.1.0"  # the same as host_tools/pyproject.toml (tests/test_cli_device.py checks)

__all__ = ["FIRMWARE_DIR", "__version__", "ensure_firmware_on_path"]

ensure_firmware_on_path()
