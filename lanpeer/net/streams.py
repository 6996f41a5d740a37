"""One QUIC stream as lanpeer uses it: a bounded receive buffer, frames, raw bytes, send credit.

Owns the per-stream receive bound (aioquic hands over whatever arrives) and the app-level send
credit (aioquic buffers without limit and has no backpressure): ``write`` waits while the
stream has more than its credit unacknowledged. Never touches aioquic: it talks to its
connection through ``StreamOwner``, and never interprets the bytes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from lanpeer_proto.framing import encode_frame

from lanpeer.net.frames import read_frame


class StreamClosed(ConnectionError):
    """The stream ended, was reset, or its connection closed before the expected bytes."""


class StreamOwner(Protocol):
    """What a stream needs from its connection (``QuicPeerConnection``)."""

    def send(self, stream_id: int, data: bytes, end: bool) -> None: ...
    def unacked(self, stream_id: int) -> int: ...
    def abort_stream(self, stream_id: int, *, send: bool, receive: bool) -> None: ...
    def forget(self, stream_id: int) -> None: ...


class QuicStream:
    """One bidirectional stream: bounded receive buffer, frames, raw bytes, credit on send."""

    def __init__(self, conn: StreamOwner, stream_id: int, *, max_buffer: int, credit: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        #: Unread bytes this stream may buffer; more resets it.
        self._max_buffer = max_buffer
        #: Unacknowledged bytes a writer may have in flight before write() waits.
        self._credit = credit
        self._buffer = bytearray()
        self._eof = False
        self._failure: str | None = None
        self._readable = asyncio.Event()
        self._wanted = 1  # bytes the waiting reader needs before waking is worth it
        self._writable = asyncio.Event()
        self._fin_sent = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # receiving ---------------------------------------------------------------
    def feed(self, data: bytes, end: bool) -> None:
        self._buffer += data
        self._eof = self._eof or end
        if len(self._buffer) > self._max_buffer:
            self._buffer.clear()
            self.abort("receive buffer over its limit")
        if len(self._buffer) >= self._wanted or self._eof:
            self._readable.set()  # wake the reader only when its read can complete

    def fail(self, why: str) -> None:
        self._failure = self._failure or why
        self._readable.set()
        self._writable.set()

    async def _wait_readable(self, wanted: int = 1) -> None:
        if self._failure is not None:
            raise StreamClosed(self._failure)
        if self._eof:
            raise StreamClosed("stream ended early")
        self._wanted = wanted
        self._readable.clear()
        await self._readable.wait()

    async def read_frame(self, max_size: int) -> bytes:
        """One length-prefixed frame; raises RemoteProtocolError if it is over ``max_size``.

        Only the frame's own bytes are consumed: raw chunk bytes may follow it.
        """
        return await read_frame(self.read_exactly, max_size)

    async def read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._wait_readable(count)
        if len(self._buffer) == count:  # a whole chunk: one copy, and a fresh buffer
            data = bytes(self._buffer)
            self._buffer = bytearray()
            return data
        with memoryview(self._buffer) as view:
            data = view[:count].tobytes()
        del self._buffer[:count]
        return data

    async def wait_end(self) -> None:
        """Wait for the peer's FIN (any further bytes are discarded)."""
        while not self._eof:
            self._buffer.clear()
            await self._wait_readable()

    # sending -----------------------------------------------------------------
    async def write_frame(self, payload: bytes, *, end: bool = False) -> None:
        await self.write(encode_frame(payload), end=end)

    async def write(self, data: bytes, *, end: bool = False) -> None:
        """Queue ``data``; wait while this stream has more than its credit unacknowledged."""
        if self._failure is not None:
            raise StreamClosed(self._failure)
        self.conn.send(self.stream_id, data, end)
        self._fin_sent = self._fin_sent or end
        while self.conn.unacked(self.stream_id) > self._credit:
            self._writable.clear()
            await self._writable.wait()
            if self._failure is not None:
                raise StreamClosed(self._failure)

    def credit_changed(self) -> None:
        """Wake a waiting writer only once its stream is back under its credit."""
        if self._writable.is_set():
            return
        if self.conn.unacked(self.stream_id) <= self._credit:
            self._writable.set()

    # ending ------------------------------------------------------------------
    def abort(self, why: str) -> None:
        """Reset both directions; only this stream is affected."""
        self.fail(why)
        self.conn.abort_stream(self.stream_id, send=not self._fin_sent, receive=not self._eof)
        self.conn.forget(self.stream_id)

    def close(self) -> None:
        """Finish our side (FIN) and stop receiving; safe to call twice."""
        if self._failure is None and not self._fin_sent:
            self.conn.send(self.stream_id, b"", True)
            self._fin_sent = True
        if self._failure is None and not self._eof:
            self.conn.abort_stream(self.stream_id, send=False, receive=True)
        self.fail("stream closed")
        self.conn.forget(self.stream_id)
