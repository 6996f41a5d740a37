"""One authenticated connection to a peer: control stream, requests, liveness.

Owns the control stream after the handshake (summaries, pings only when idle, Goodbye), the
request streams we open (one request per stream, answer frame(s) then FIN) and the per-peer caps
on concurrent incoming streams. Never decides what a library change means (the node does) and
never lets a bad stream kill the connection: only a broken control stream closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lanpeer_proto import codec
from lanpeer_proto.codec import UnknownMessageType
from lanpeer_proto.errors import ErrorCode, ProtocolError, RemoteProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE, MAX_LARGE_FRAME_SIZE
from lanpeer_proto.messages import ChunkHeader, Error, GetChunk, Goodbye, Message, Ping, Pong

from lanpeer.net.errors import ChunkRefused, PeerUnavailable
from lanpeer.net.handshake import RemoteFacts
from lanpeer.net.identity import short_id
from lanpeer.net.quic import QuicPeerConnection, QuicStream, StreamClosed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionLimits:
    #: Incoming request streams served at once per connection; more get TOO_MANY.
    max_streams: int = 32
    #: Ping after this much silence; the peer answers, proving it is alive.
    ping_interval: float = 5.0
    #: Close after this much silence (pings unanswered): the peer vanished.
    silence_timeout: float = 20.0
    #: A request whose answer takes longer is abandoned (a 64 MiB chunk at 20 MiB/s is ~3 s).
    request_timeout: float = 60.0


Answerer = Callable[["PeerSession", QuicStream], Awaitable[None]]


class PeerSession:
    def __init__(
        self,
        conn: QuicPeerConnection,
        control: QuicStream,
        facts: RemoteFacts,
        address: tuple[str, int],
        limits: SessionLimits,
        answer: Answerer,
        on_message: Callable[[PeerSession, Message], None],
    ) -> None:
        self.conn = conn
        self.facts = facts
        self.peer_id = facts.peer_id
        self.address = address
        self.last_seen = time.monotonic()
        self._control = control
        self._limits = limits
        self._answer = answer
        self._on_message = on_message
        self._tasks: asyncio.TaskGroup | None = None
        self._active_streams = 0
        self._ping_seq = 0
        self._send_lock = asyncio.Lock()
        self.goodbye_received = False

    @property
    def is_open(self) -> bool:
        return not self.conn.is_closed

    def __repr__(self) -> str:
        return f"<PeerSession {short_id(self.peer_id)} {self.address[0]}:{self.address[1]}>"

    async def run(self) -> None:
        """Serve until the connection ends; returns (never raises) when it does."""
        self.conn.on_stream = self._stream_opened
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._read_control())
                tasks.create_task(self._keep_alive())
                await self.conn.wait_ended()
                raise _Ended
        except* _Ended:
            pass
        finally:
            self._tasks = None
            self.conn.on_stream = None
            self.conn.close_connection("session over")

    def _stream_opened(self, stream: QuicStream) -> None:
        if self._tasks is None:
            stream.abort("session not running")
            return
        if self._active_streams >= self._limits.max_streams:
            self._tasks.create_task(_refuse(stream, ErrorCode.TOO_MANY, "too many open requests"))
            return
        self._tasks.create_task(self._serve_stream(stream))

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
    async def _read_control(self) -> None:
        try:
            while True:
                frame = await self._control.read_frame(DEFAULT_MAX_FRAME_SIZE)
                self.last_seen = time.monotonic()
                try:
                    message = codec.decode(frame)
                except UnknownMessageType as exc:
                    log.info("%r: ignoring message of unknown type %r", self, exc.type_name)
                    continue
                await self._control_message(message)
        except RemoteProtocolError as exc:
            log.warning("%r: closing: control stream broken: %s", self, exc.message)
            await self._try_send(Error(code=exc.code, message=exc.message[:500]))
            self.conn.close_connection(f"protocol error: {exc.code.value}")
        except StreamClosed:
            self.conn.close_connection("control stream ended")

    async def _control_message(self, message: Message) -> None:
        if isinstance(message, Ping):
            await self._try_send(Pong(seq=message.seq))
        elif isinstance(message, Goodbye):
            log.info("%r said goodbye: %s", self, message.reason)
            self.goodbye_received = True
            self.conn.close_connection("goodbye")
        elif isinstance(message, Error):
            log.warning("%r reported an error: %s %s", self, message.code.value, message.message)
        elif not isinstance(message, Pong):
            self._on_message(self, message)

    async def _keep_alive(self) -> None:
        """Ping only when the peer has been silent; give up after the silence timeout."""
        while True:
            idle = time.monotonic() - self.last_seen
            if idle >= self._limits.silence_timeout:
                log.warning("%r: silent for %.0f s, closing", self, idle)
                self.conn.close_connection("peer silent")
                return
            if idle >= self._limits.ping_interval:
                self._ping_seq += 1
                await self._try_send(Ping(seq=self._ping_seq))
                idle = 0.0
            await asyncio.sleep(self._limits.ping_interval - idle)

    async def push(self, message: Message) -> None:
        """Send a message on the control stream (summaries, goodbye)."""
        await self._try_send(message)

    async def _try_send(self, message: Message) -> None:
        async with self._send_lock:
            with contextlib.suppress(ConnectionError):
                await self._control.write_frame(codec.encode(message))

    async def say_goodbye(self, reason: str) -> None:
        await self._try_send(Goodbye(reason=reason))
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
        self.last_seen = time.monotonic()
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
        self.last_seen = time.monotonic()
        return data

    def _open(self) -> QuicStream:
        try:
            return self.conn.open_stream()
        except StreamClosed as exc:
            raise PeerUnavailable(f"{self!r} is not connected") from exc


class _Ended(Exception):
    """Raised inside run() to leave the task group when the connection ends."""


async def _refuse(stream: QuicStream, code: ErrorCode, message: str) -> None:
    try:
        await stream.write_frame(codec.encode(Error(code=code, message=message)), end=True)
    except ConnectionError:
        pass
    finally:
        stream.close()
