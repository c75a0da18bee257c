"""The host side of the device link: transport, DeviceLink client, port discovery.

    from bedside_host.link import DeviceLink, Received, Gap, LinkError, LinkDown, LinkTimeout

The message types (``bedside_host.link.messages``) import nothing heavy; ``DeviceLink``
(pyserial, transitions) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bedside_host.link.messages import (
    PROTOCOL_VERSION,
    UNKNOWN_END,
    Gap,
    LinkDown,
    LinkError,
    LinkProblem,
    LinkStats,
    LinkTimeout,
    Received,
)

if TYPE_CHECKING:
    from bedside_host.link.client import DeviceLink

__all__ = [
    "PROTOCOL_VERSION",
    "UNKNOWN_END",
    "DeviceLink",
    "Gap",
    "LinkDown",
    "LinkError",
    "LinkProblem",
    "LinkStats",
    "LinkTimeout",
    "Received",
]


def __getattr__(name: str) -> Any:
    if name == "DeviceLink":
        from bedside_host.link.client import DeviceLink

        return DeviceLink
    raise AttributeError(name)
