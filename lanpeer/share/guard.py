"""Connection bounds of the share's HTTP server: how many, from whom, and how slow.

Owns a thin protocol around each aiohttp connection handler that refuses a connection over the
total or per-address cap (a canned 503, then close) and closes one that has not sent a complete
request head within the head deadline (slowloris), re-armed after every response. aiohttp has no
such deadline of its own (its keep-alive timer does not cover a head trickled byte by byte).
Never parses HTTP: the request handler says when a head has arrived and when a response is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

log = logging.getLogger(__name__)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 36\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n\r\ntoo many connections; retry shortly\n"
)


class ConnectionGuard:
    def __init__(self, *, max_connections: int, per_address: int, head_timeout: float) -> None:
        self.max_connections = max_connections
        self.per_address = per_address
        self.head_timeout = head_timeout
        self._open: dict[asyncio.BaseTransport, GuardedConnection] = {}
        self._per_address: dict[str, int] = {}
        self.refused = 0  # connections turned away by a cap since start

    def wrap(self, handler_factory: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        """A protocol factory for ``loop.create_server`` around aiohttp's handler factory."""
        return lambda: GuardedConnection(self, handler_factory())

    def open_count(self) -> int:
        return len(self._open)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.disarm()

    def request_done(self, transport: asyncio.BaseTransport | None) -> None:
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.arm()

    def _admit(self, connection: GuardedConnection) -> bool:
        address = connection.address
        if len(self._open) >= self.max_connections or (
            self._per_address.get(address, 0) >= self.per_address
        ):
            self.refused += 1
            return False
        assert connection.transport is not None
        self._open[connection.transport] = connection
        self._per_address[address] = self._per_address.get(address, 0) + 1
        return True

    def _release(self, connection: GuardedConnection) -> None:
        if self._open.pop(connection.transport, None) is None:  # type: ignore[arg-type]
            return
        left = self._per_address.get(connection.address, 1) - 1
        if left:
            self._per_address[connection.address] = left
        else:
            self._per_address.pop(connection.address, None)


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: forwards everything to aiohttp's handler once admitted."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        if not self._guard._admit(self):
            self.transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._inner.connection_made(transport)
        self.arm()

    def arm(self) -> None:
        self.disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.head_timeout, self._expire)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        log.info("share: closing a connection from %s (no request within %.0fs)",
                 self.address, self._guard.head_timeout)  # fmt: skip
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self._admitted:
            self._guard._release(self)
            self._inner.connection_lost(exc)
