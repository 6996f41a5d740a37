"""Static peers (``--peer`` / ``add-peer``): what the dialler last saw of each, for people.

Owns one ``StaticPeer`` record per HOST:PORT: the last dial error in words (never an empty
reason), the attempt count, and the signals ``add-peer`` waits on and ``remove-peer`` sets.
Never dials: ``Dialler`` (``lanpeer.net.dialling``) does, and writes here after each attempt.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field


@dataclass(eq=False)
class StaticPeer:
    host: str
    port: int
    error: str | None = None  # the last attempt's failure; None once connected
    attempts: int = 0
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    attempted: asyncio.Event = field(default_factory=asyncio.Event)  # set after each failure

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def failed(self, exc: BaseException) -> None:
        self.attempts += 1
        self.error = dial_error_text(exc)
        self.attempted.set()
        self.attempted = asyncio.Event()

    def connected(self) -> None:
        self.error = None


def dial_error_text(exc: BaseException) -> str:
    """A dial failure in words: a bare ``TimeoutError()`` once logged an empty reason."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return "no answer (nothing listens there, or a firewall drops UDP)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (no lanpeerd on that port)"
    text = str(exc).strip()
    return text or type(exc).__name__
