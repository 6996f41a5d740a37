"""The TCP bulk path (SPEC §5b): chunk bytes by os.sendfile, authorised by QUIC-issued tokens.

Owns the bulk listener, its tokens (bound to the requesting peer's id on this server, expiring,
constant-time compared), the server loop (BulkHello, then GetChunk -> ChunkHeader + sendfile)
and the downloader's small connection pool. Never trusts the bytes: the caller verifies every
chunk against the manifest from the authenticated QUIC session. Bytes are not encrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, ProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE, FrameDecoder, encode_frame
from lanpeer_proto.messages import BulkHello, ChunkHeader, Error, GetChunk, Message

from lanpeer.net.errors import ChunkRefused, PeerUnavailable
from lanpeer.net.library_view import LibraryView
from lanpeer.net.serving import Limiter, ServeError, UploadSlots, open_chunk

log = logging.getLogger(__name__)

#: A token outlives a download burst but not a party; re-issued over QUIC when it expires.
TOKEN_TTL = 600.0
#: Room for a whole 4 MiB chunk in flight, so sendfile rarely waits for the reader.
SOCKET_BUFFER = 4 << 20
#: First frame must arrive quickly; an idle authorised connection is dropped after a while.
HELLO_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
#: A downloader's bulk exchange stalls (no byte sent or received) at most this long.
EXCHANGE_TIMEOUT = 60.0


@dataclass
class _Grant:
    token: bytes
    peer_id: str
    expires: float


class BulkTokens:
    """Session-scoped tokens: valid for one peer_id on this server until they expire."""

    def __init__(self, ttl: float = TOKEN_TTL, max_live: int = 256) -> None:
        self.ttl = ttl
        self._max_live = max_live
        self._grants: list[_Grant] = []

    def issue(self, peer_id: str) -> bytes:
        now = time.monotonic()
        self._grants = [g for g in self._grants if g.expires > now][-self._max_live + 1 :]
        grant = _Grant(secrets.token_bytes(32), peer_id, now + self.ttl)
        self._grants.append(grant)
        return grant.token

    def check(self, peer_id: str, token: bytes) -> bool:
        """Constant time in the token: every live grant is compared in full."""
        now = time.monotonic()
        found = False
        for grant in self._grants:
            same = hmac.compare_digest(grant.token, token)
            found |= same and grant.peer_id == peer_id and grant.expires > now
        return found

    def revoke(self, peer_id: str) -> None:
        self._grants = [g for g in self._grants if g.peer_id != peer_id]


async def _recv_exactly(sock: socket.socket, count: int) -> bytearray | None:
    """``count`` bytes, or None on a clean EOF before the first byte."""
    loop = asyncio.get_running_loop()
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            if got == 0:
                return None
            raise ConnectionError(f"connection ended after {got} of {count} bytes")
        got += n
    return buffer


async def _read_message(sock: socket.socket) -> Message | None:
    header = await _recv_exactly(sock, HEADER_SIZE)
    if header is None:
        return None
    decoder = FrameDecoder(DEFAULT_MAX_FRAME_SIZE)
    decoder.feed(bytes(header))  # refuses an oversize length before reading the body
    body = await _recv_exactly(sock, int.from_bytes(header, "big"))
    if body is None:
        raise ConnectionError("connection ended inside a frame")
    decoder.feed(bytes(body))
    frame = decoder.next_frame()
    assert frame is not None
    return codec.decode(frame)


async def _send_message(sock: socket.socket, message: Message) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, encode_frame(codec.encode(message)))


class BulkServer:
    """Listens on TCP; each connection: BulkHello with a token, then chunk requests."""

    def __init__(
        self,
        library: LibraryView,
        tokens: BulkTokens,
        uploads: UploadSlots,
        limiter: Limiter | None = None,
    ) -> None:
        self._library = library
        self._tokens = tokens
        self._uploads = uploads
        self._limiter = limiter
        self._sock: socket.socket | None = None
        self._connections: dict[str, set[socket.socket]] = {}

    def drop_peer(self, peer_id: str) -> None:
        """The peer's last QUIC session ended: its tokens and bulk connections end too."""
        self._tokens.revoke(peer_id)
        for conn in self._connections.pop(peer_id, set()):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # the serving task sees EOF and closes it

    def open(self, host: str, port: int = 0) -> int:
        """Bind and listen now (so HelloAck can carry the port); returns the port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        bound: int = sock.getsockname()[1]
        return bound

    async def serve(self) -> None:
        """Accept until cancelled; closes the listener and every connection on the way out."""
        assert self._sock is not None, "open() first"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tasks:
                while True:
                    conn, _addr = await loop.sock_accept(self._sock)
                    conn.setblocking(False)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                    tasks.create_task(self._serve_connection(conn))
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening (idempotent; also done when serve() ends)."""
        if self._sock is not None:
            self._sock.close()

    async def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                async with asyncio.timeout(HELLO_TIMEOUT):
                    hello = await _read_message(conn)
                if not isinstance(hello, BulkHello) or not self._tokens.check(
                    hello.peer_id, hello.token
                ):
                    log.warning("bulk: refusing a connection without a valid token")
                    await _send_message(
                        conn,
                        Error(code=ErrorCode.BAD_TOKEN, message="token unknown, used or expired"),
                    )
                    return
                peer_conns = self._connections.setdefault(hello.peer_id, set())
                peer_conns.add(conn)
                try:
                    await self._serve_requests(conn, hello.peer_id)
                finally:
                    peer_conns.discard(conn)
            except (ConnectionError, TimeoutError, ProtocolError) as exc:
                log.debug("bulk connection ended: %s", exc)

    async def _serve_requests(self, conn: socket.socket, peer_id: str) -> None:
        while True:
            async with asyncio.timeout(IDLE_TIMEOUT):
                request = await _read_message(conn)
            if request is None:
                return
            if not isinstance(request, GetChunk):
                await _send_message(
                    conn,
                    Error(code=ErrorCode.UNEXPECTED, message="only get_chunk on the bulk path"),
                )
                continue
            if not self._uploads.try_acquire(peer_id):
                await _send_message(
                    conn, Error(code=ErrorCode.TOO_MANY, message="too many uploads")
                )
                continue
            try:
                await self._send_chunk(conn, request, peer_id)
            finally:
                self._uploads.release(peer_id)

    async def _send_chunk(self, conn: socket.socket, request: GetChunk, peer_id: str) -> None:
        try:
            chunk = open_chunk(self._library, request)
        except ServeError as exc:
            await _send_message(conn, exc.to_message())
            return
        try:
            if self._limiter is not None:
                await self._limiter.wait_acquire(chunk.length)
            await _send_message(conn, ChunkHeader(offset=chunk.offset, length=chunk.length))
            await send_file_range(conn, chunk.fd, chunk.offset, chunk.length)
            self._uploads.served(peer_id, request.game_id, chunk.length)
        finally:
            chunk.close()


async def send_file_range(sock: socket.socket, fd: int, offset: int, count: int) -> None:
    """Zero-copy os.sendfile on the non-blocking socket, waiting for writability in between.

    Works on any loop (uvloop has no sock_sendfile). The file is expected in the page cache
    (just hashed or just read); a cold read stalls the loop for that read only.
    """
    loop = asyncio.get_running_loop()
    while count > 0:
        try:
            sent = os.sendfile(sock.fileno(), fd, offset, count)
        except BlockingIOError:
            await _wait_writable(loop, sock)
            continue
        if sent == 0:
            raise ConnectionError("file ended or peer closed during sendfile")
        offset += sent
        count -= sent


async def _wait_writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_writer(sock.fileno())


TokenSource = Callable[[], Awaitable[bytes]]


class BulkClient:
    """A downloader's pool of bulk connections to one peer.

    Each exchange runs in a worker thread on a blocking socket: the answer's body lands in one
    ``recv(length, MSG_WAITALL)`` (the kernel copies straight into the returned bytes, no event
    loop round per segment, the GIL released meanwhile). Kernel timeouts bound every call; a
    cancelled fetch shuts its socket down so the thread returns at once.
    """

    def __init__(
        self, host: str, port: int, local_id: str, token: TokenSource, max_connections: int = 4
    ) -> None:
        self.host, self.port = host, port
        self._local_id = local_id
        self._token = token
        self._idle: list[socket.socket] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._threads = ThreadPoolExecutor(max_connections, thread_name_prefix="lanpeer-bulk")

    async def fetch(self, request: GetChunk) -> bytes:
        async with self._slots:
            sock = self._idle.pop() if self._idle else await self._connect()
            work = self._threads.submit(_exchange, sock, request, f"{self.host}:{self.port}")
            try:
                data = await asyncio.wrap_future(work)
            except BaseException:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread if it still waits
                work.add_done_callback(lambda _: sock.close())
                raise
            self._idle.append(sock)
            return data

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            await loop.sock_connect(sock, (self.host, self.port))
            token = await self._token()
            await _send_message(sock, BulkHello(peer_id=self._local_id, token=token))
            _make_blocking(sock, EXCHANGE_TIMEOUT)
        except OSError as exc:
            sock.close()
            raise PeerUnavailable(f"bulk path to {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        for sock in self._idle:
            with contextlib.suppress(OSError):
                sock.close()
        self._idle.clear()
        self._threads.shutdown(wait=False)


def _make_blocking(sock: socket.socket, timeout: float) -> None:
    """Blocking mode (so MSG_WAITALL waits) with kernel send/receive timeouts."""
    sock.setblocking(True)
    whole = int(timeout)
    limit = struct.pack("@ll", whole, int((timeout - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)


def _exchange(sock: socket.socket, request: GetChunk, where: str) -> bytes:
    """In a worker thread: one GetChunk, its ChunkHeader, then exactly ``length`` bytes."""
    try:
        sock.sendall(encode_frame(codec.encode(request)))
        answer = codec.decode(_recv_frame(sock))
        if isinstance(answer, Error):
            raise ChunkRefused(answer.code, answer.message)
        if not isinstance(answer, ChunkHeader) or answer.length != request.length:
            raise ChunkRefused(ErrorCode.UNEXPECTED, "bad bulk answer")
        return _recv_all(sock, answer.length)
    except (ConnectionError, OSError) as exc:
        raise PeerUnavailable(f"bulk path to {where} failed: {exc}") from exc
    except ProtocolError as exc:
        raise ChunkRefused(exc.code, f"bad bulk answer: {exc.message}") from exc


def _recv_frame(sock: socket.socket) -> bytes:
    decoder = FrameDecoder(DEFAULT_MAX_FRAME_SIZE)
    header = _recv_all(sock, HEADER_SIZE)
    decoder.feed(header)  # refuses an oversize length before reading the body
    decoder.feed(_recv_all(sock, int.from_bytes(header, "big")))
    frame = decoder.next_frame()
    assert frame is not None
    return frame


def _recv_all(sock: socket.socket, count: int) -> bytes:
    """Exactly ``count`` bytes from a blocking socket; one recv unless a signal cuts it short."""
    data = sock.recv(count, socket.MSG_WAITALL)
    if len(data) == count:
        return data
    pieces = [data]
    got = len(data)
    while got < count:
        piece = sock.recv(count - got, socket.MSG_WAITALL)
        if not piece:
            raise ConnectionError(f"connection ended after {got} of {count} bytes")
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)
