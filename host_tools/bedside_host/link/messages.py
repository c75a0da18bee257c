"""What a DeviceLink hands out: received lines, explicit gaps, counters and errors.

No serial or state-machine imports here, so the records store can import these types cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 2  # the host-link protocol this client speaks (docs/protocol.md)

# Gap.last_seq when the end is not known: the rest of that boot after first_seq (the device
# restarted; how many lines the old boot sent after the last one received cannot be known).
UNKNOWN_END = -1


@dataclass(frozen=True)
class Received:
    """One device line, delivered once (duplicates are dropped)."""

    port: str  # the url it came from
    line: str  # the raw NDJSON line, verbatim, without the trailing newline
    msg: dict[str, Any]  # parsed
    rx_time: float  # host receive time, UTC epoch seconds (time.time())
    wall_time: float | None  # device t_ms mapped to UTC epoch seconds (log: the record's time)
    replayed: bool  # came from replay or the flash log (history, not current state)
    # a flash-log record the client read while looking for a gap's alarm events that holds
    # no news (an event already delivered, or outside the gap): delivered so a recorder keeps
    # every device message once; a view skips it
    known: bool = False


@dataclass(frozen=True)
class Gap:
    """Device lines of one boot that neither replay nor the flash alarm log could give.

    ``last_seq`` is UNKNOWN_END (-1) for the unknown tail of a boot that ended by a restart.
    ``reason`` is readable and says what the flash alarm log recovered for that stretch.
    """

    port: str
    boot: int
    first_seq: int
    last_seq: int
    reason: str
    rx_time: float


@dataclass
class LinkStats:
    received: int = 0  # lines delivered (live and replayed)
    bad_lines: int = 0  # lines that were not a protocol message (bad JSON, no seq/type)
    gaps: int = 0  # Gap records reported
    lost: int = 0  # seqs reported lost in those gaps (known ends only)
    missing: int = 0  # seqs found missing by seq (before any recovery)
    recovered: int = 0  # lines recovered by replay, plus alarm events from the flash log
    duplicates: int = 0  # lines received twice (replays of lines already held), dropped
    restarts: int = 0  # device restarts seen (new boot, or seq back to the start)
    reconnects: int = 0  # the port was opened again after it was lost
    last_rx: float = 0.0  # clock() of the last line (0: none yet)


class LinkProblem(Exception):
    """Base of the errors DeviceLink.send and request raise."""


class LinkDown(LinkProblem):
    """The port is not open (disconnected, reconnecting) or was lost while waiting."""


class LinkTimeout(LinkProblem):
    """No reply with the command's id in time."""


class LinkError(LinkProblem):
    """The device refused the command (``ok: false``); ``str(e)`` is the device's reason."""

    def __init__(self, cmd: str, reply: dict[str, Any]) -> None:
        self.cmd = cmd
        self.reply = reply
        self.error = str(reply.get("error") or "refused")
        super().__init__(self.error)
