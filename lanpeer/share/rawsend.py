"""The POSIX part of the share: an HTTP body sent with ``os.sendfile`` past aiohttp's writer.

aiohttp's FileResponse uses ``loop.sendfile``, which uvloop (the daemon's loop) does not have,
and it opens files by path (symlinks followed). So once aiohttp has flushed the response head,
the body goes out here, on a dup of the connection's socket: bytes with ``sock_sendall``, file
ranges with ``lanpeer.net.bulk.send_file_range`` (os.sendfile). Never writes while the transport
still holds buffered bytes, and never waits on a reader longer than the stall timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Protocol

from lanpeer.net.bulk import send_file_range


class FileChangedWhileSent(OSError):
    """The file being sent was rewritten: the body would mix two versions."""


class Limiter(Protocol):
    async def wait_acquire(self, n: int) -> None: ...


class BodySocket:
    """Writes one response body on ``sock`` (a dup the caller's ``open_body_socket`` made)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        stall_timeout: float,
        piece_size: int,
        limiter: Limiter | None,
        on_sent: Callable[[int], None],
    ) -> None:
        self._sock = sock
        self._stall_timeout = stall_timeout  # a reader that takes no piece for this long is gone
        self._piece_size = piece_size  # bytes per rate-limiter grant and per stall deadline
        self._limiter = limiter
        self._on_sent = on_sent

    def close(self) -> None:
        self._sock.close()

    async def send_bytes(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for start in range(0, len(data), self._piece_size):
            piece = data[start : start + self._piece_size]
            await self._grant(len(piece))
            async with asyncio.timeout(self._stall_timeout):
                await loop.sock_sendall(self._sock, piece)
            self._on_sent(len(piece))

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """``count`` bytes of ``fd`` from ``offset``; FileChangedWhileSent if it is rewritten."""
        before = os.fstat(fd)
        end = offset + count
        while offset < end:
            take = min(self._piece_size, end - offset)
            # Ask the kernel to read the next piece ahead, so a cold page cache stalls the
            # loop's sendfile less (the read itself is the kernel's, asynchronous).
            ahead = min(self._piece_size, end - offset - take)
            if ahead:
                os.posix_fadvise(fd, offset + take, ahead, os.POSIX_FADV_WILLNEED)
            await self._grant(take)
            async with asyncio.timeout(self._stall_timeout):
                await send_file_range(self._sock, fd, offset, take)
            now = os.fstat(fd)  # a file rewritten in place would mix versions in one body
            if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise FileChangedWhileSent("a file changed while it was sent")
            self._on_sent(take)
            offset += take

    async def _grant(self, n: int) -> None:
        if self._limiter is not None:
            await self._limiter.wait_acquire(n)


def dup_connection_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """A non-blocking dup of the transport's socket, or None when the transport has none (TLS).

    The dup keeps the connection open until it is closed, even if the transport closes first;
    the loop never polls it, so writing to it does not race the loop's own writer.
    """
    raw = transport.get_extra_info("socket")
    if raw is None or transport.is_closing():
        return None
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        sock.setblocking(False)
        return sock
    return None
