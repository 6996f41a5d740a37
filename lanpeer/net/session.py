"""One authenticated connection to a peer (a ``PeerLink``): control stream, requests, liveness.

Owns running the control stream after the handshake (its sans-IO session answers pings, pings
when idle, ends a silent peer, says Goodbye), the request streams we open (one request per
stream: answer frame(s), then FIN) and the cap on concurrent incoming streams. Never decides
what a library change means (the node does) and never lets a bad request stream kill the
connection: only the control stream's session ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, LocalProtocolError, ProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE, MAX_LARGE_FRAME_SIZE
from lanpeer_proto.messages import ChunkHeader, Error, GetChunk, Message
from lanpeer_proto.session import MessageReceived, SessionClosed, SessionEvent, SessionFailed

from lanpeer.net.errors import ChunkRefused, PeerUnavailable
from lanpeer.net.handshake import ControlChannel, RemoteFacts
from lanpeer.net.identity import short_id
from lanpeer.net.quic import QuicPeerConnection, QuicStream, StreamClosed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionLimits:
    #: Incoming request streams served at once per connection; more get TOO_MANY.
    max_streams: int = 32
    #: A request whose answer takes longer is abandoned (a 64 MiB chunk at 20 MiB/s is ~3 s).
    request_timeout: float = 60.0
    #: After our Goodbye, how long to let the peer close before we do.
    goodbye_grace: float = 0.5


Answerer = Callable[["PeerLink", QuicStream], Awaitable[None]]


class PeerLink:
    """An authenticated connection: its control channel, our requests and its requests."""

    def __init__(
        self,
        conn: QuicPeerConnection,
        channel: ControlChannel,
        facts: RemoteFacts,
        address: tuple[str, int],
        limits: SessionLimits,
        answer: Answerer,
        on_message: Callable[[PeerLink, Message], None],
        *,
        dialled: bool,
    ) -> None:
        self.conn = conn
        #: True when this side dialled the connection (which of two duplicates to keep).
        self.dialled = dialled
        self.facts = facts
        self.peer_id = facts.peer_id
        self.address = address
        self._channel = channel
        self._limits = limits
        self._answer = answer
        self._on_message = on_message
        self._tasks: asyncio.TaskGroup | None = None
        self._children: set[asyncio.Task[None]] = set()
        self._active_streams = 0

    @property
    def is_open(self) -> bool:
        """Neither side has closed the connection (a closing one carries nothing more)."""
        return not self.conn.is_closing

    @property
    def rtt(self) -> float | None:
        """The connection's smoothed round-trip time in seconds (None: not measured yet)."""
        return self.conn.rtt

    @property
    def last_seen(self) -> float:
        """time.monotonic() of the last thing received from the peer."""
        return self._channel.last_seen

    def note_activity(self) -> None:
        with contextlib.suppress(LocalProtocolError):
            self._channel.note_activity()

    def __repr__(self) -> str:
        return f"<PeerLink {short_id(self.peer_id)} {self.address[0]}:{self.address[1]}>"

    async def run(self) -> None:
        """Serve until the connection ends; returns (never raises) when it does."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                # Only now: setting it hands over the streams held during the handshake, and
                # a stream handed to a session without its task group would be reset.
                self.conn.on_stream = self._stream_opened
                self._spawn(self._pump(self._channel.receive))
                self._spawn(self._pump(self._channel.wait_timer))
                await self.conn.wait_ended()
                for task in list(self._children):
                    task.cancel()
        finally:
            self._tasks = None
            self.conn.on_stream = None
            self.conn.close_connection("session over")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._tasks is None:
            coro.close()
            return
        task = self._tasks.create_task(coro)
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    def _stream_opened(self, stream: QuicStream) -> None:
        if self._tasks is None:
            stream.abort("session not running")
            return
        self.note_activity()
        if self._active_streams >= self._limits.max_streams:
            self._spawn(_refuse(stream, ErrorCode.TOO_MANY, "too many open requests"))
            return
        self._spawn(self._serve_stream(stream))

    async def _serve_stream(self, stream: QuicStream) -> None:
        self._active_streams += 1
        try:
            await self._answer(self, stream)
        except (ConnectionError, TimeoutError) as exc:
            log.debug("%r: request stream ended: %s", self, exc)
        except Exception:  # a bug in one answer must not end the session
            log.exception("%r: answering a request failed", self)
            await _refuse(stream, ErrorCode.INTERNAL, "internal error")
        finally:
            self._active_streams -= 1
            stream.close()

    # control stream ----------------------------------------------------------
    async def _pump(self, next_events: Callable[[], Awaitable[tuple[SessionEvent, ...]]]) -> None:
        try:
            while True:
                for event in await next_events():
                    self._session_event(event)
        except ConnectionError:
            self.conn.close_connection("control stream ended")

    def _session_event(self, event: SessionEvent) -> None:
        if isinstance(event, MessageReceived):
            if isinstance(event.message, Error):
                log.warning("%r reported: %s %s", self, event.message.code.value,
                            event.message.message)  # fmt: skip
            else:
                self._on_message(self, event.message)
        elif isinstance(event, SessionFailed):
            log.warning("%r: session ended: %s %s", self, event.code.value, event.reason)
            self.conn.close_connection(f"{event.code.value}: {event.reason}")
        elif isinstance(event, SessionClosed):
            log.info("%r: session closed: %s", self, event.reason)
            self.conn.close_connection(event.reason)

    async def push(self, message: Message) -> None:
        """Send a message on the control stream (summaries); dropped if not READY."""
        with contextlib.suppress(LocalProtocolError, ConnectionError):
            await self._channel.send(message)

    async def say_goodbye(self, reason: str) -> None:
        """Goodbye (a hint to the peer), a moment for it to close, then close ourselves."""
        with contextlib.suppress(ConnectionError):
            await self._channel.close(reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._limits.goodbye_grace):
                    await self.conn.wait_ended()
        self.conn.close_connection(reason)

    # requests we make ----------------------------------------------------------
    async def request(self, message: Message, max_size: int = MAX_LARGE_FRAME_SIZE) -> Message:
        """Send one request on a new stream; the answer, or ChunkRefused for an Error."""
        stream = self._open()
        try:
            async with asyncio.timeout(self._limits.request_timeout):
                await stream.write_frame(codec.encode(message), end=True)
                answer = codec.decode(await stream.read_frame(max_size))
        except (ConnectionError, TimeoutError) as exc:
            raise PeerUnavailable(f"{self!r}: {message.type} failed: {exc}") from exc
        except ProtocolError as exc:
            raise ChunkRefused(exc.code, f"bad answer: {exc.message}") from exc
        finally:
            stream.close()
        self.note_activity()
        if isinstance(answer, Error):
            raise ChunkRefused(answer.code, answer.message)
        return answer

    async def fetch_chunk(self, request: GetChunk) -> bytes:
        """A chunk over QUIC: ChunkHeader frame, then exactly ``length`` raw bytes."""
        stream = self._open()
        try:
            async with asyncio.timeout(self._limits.request_timeout):
                await stream.write_frame(codec.encode(request), end=True)
                header = codec.decode(await stream.read_frame(DEFAULT_MAX_FRAME_SIZE))
                if isinstance(header, Error):
                    raise ChunkRefused(header.code, header.message)
                if not isinstance(header, ChunkHeader) or header.length != request.length:
                    raise ChunkRefused(ErrorCode.UNEXPECTED, f"bad chunk answer {header.type}")
                data = await stream.read_exactly(header.length)
        except (ConnectionError, TimeoutError) as exc:
            raise PeerUnavailable(f"{self!r}: chunk fetch failed: {exc}") from exc
        except ProtocolError as exc:
            raise ChunkRefused(exc.code, f"bad answer: {exc.message}") from exc
        finally:
            stream.close()
        self.note_activity()
        return data

    def _open(self) -> QuicStream:
        try:
            return self.conn.open_stream()
        except StreamClosed as exc:
            raise PeerUnavailable(f"{self!r} is not connected") from exc


async def _refuse(stream: QuicStream, code: ErrorCode, message: str) -> None:
    try:
        await stream.write_frame(codec.encode(Error(code=code, message=message)), end=True)
    except ConnectionError:
        pass
    finally:
        stream.close()
