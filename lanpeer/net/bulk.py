"""The TCP bulk path (SPEC §5b): chunk bytes by os.sendfile, authorised by a per-connection proof.

Owns the bulk listener and its bounds (unauthenticated connections per host and in total,
connections in total, accept that backs off on EMFILE and goes on), the per-session secrets
(issued over QUIC, bound to the requesting peer's id, expiring), the server loop (BulkChallenge
-> BulkHello proof, then GetChunk -> ChunkHeader + sendfile, a typed Error for a bad request)
and the downloader's small connection pool. Never sends a secret on TCP and never trusts the
bytes: the caller verifies every chunk against the manifest from the authenticated QUIC session.
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
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, ProtocolError, RemoteProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE, encode_frame
from lanpeer_proto.handshake import bulk_proof
from lanpeer_proto.messages import BulkChallenge, BulkHello, ChunkHeader, Error, GetChunk, Message

from lanpeer.net.errors import ChunkRefused, PeerUnavailable
from lanpeer.net.frames import read_frame, read_frame_blocking
from lanpeer.net.library_view import LibraryView
from lanpeer.net.serving import Limiter, ServeError, UploadSlots, open_chunk

log = logging.getLogger(__name__)

#: A secret outlives a download burst but not a party; re-issued over QUIC when it expires.
TOKEN_TTL = 600.0
#: Room for a whole 4 MiB chunk in flight, so sendfile rarely waits for the reader.
SOCKET_BUFFER = 4 << 20
#: The proof must arrive quickly; an idle authorised connection is dropped after a while.
HELLO_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0
#: A downloader's bulk exchange stalls (no byte sent or received) at most this long.
EXCHANGE_TIMEOUT = 60.0
#: First wait after a failed accept (EMFILE...), doubled up to the second: long enough not to
#: spin, short enough that the listener is back soon after descriptors are freed.
ACCEPT_RETRY = (0.05, 1.0)


@dataclass(frozen=True)
class BulkLimits:
    #: Connections that have not yet proven a secret, from one host: a downloader opens at
    #: most 4 per serving peer, so 16 covers a few daemons behind one address.
    max_unauthenticated_per_host: int = 16
    #: ... and in total: each costs one descriptor for up to HELLO_TIMEOUT.
    max_unauthenticated: int = 64
    #: Connections in total (authenticated: 4 per downloading peer, a party is < 64 peers).
    max_connections: int = 256


@dataclass
class _Grant:
    secret: bytes
    peer_id: str
    expires: float


class BulkSecrets:
    """Per-session secrets: one per issue, valid for one peer_id on this server until expiry."""

    def __init__(self, server_id: str, ttl: float = TOKEN_TTL, max_live: int = 256) -> None:
        self.server_id = server_id
        self.ttl = ttl
        self._max_live = max_live  # a peer asks one per session and TTL; 256 covers a party
        self._grants: list[_Grant] = []

    def issue(self, peer_id: str) -> bytes:
        now = time.monotonic()
        self._grants = [g for g in self._grants if g.expires > now][-self._max_live + 1 :]
        grant = _Grant(secrets.token_bytes(32), peer_id, now + self.ttl)
        self._grants.append(grant)
        return grant.secret

    def check(self, hello: BulkHello, nonce: bytes) -> bool:
        """Constant time in the proof: every live grant of that peer is compared in full."""
        now = time.monotonic()
        found = False
        for grant in self._grants:
            if grant.peer_id != hello.peer_id:
                continue
            expected = bulk_proof(grant.secret, nonce, hello.peer_id, self.server_id)
            found |= hmac.compare_digest(expected, hello.proof) and grant.expires > now
        return found

    def revoke(self, peer_id: str) -> None:
        self._grants = [g for g in self._grants if g.peer_id != peer_id]


async def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    """``count`` bytes; ConnectionError when the peer closes first."""
    loop = asyncio.get_running_loop()
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            raise ConnectionError(f"connection ended after {got} of {count} bytes")
        got += n
    return bytes(buffer)


async def _read_frame(sock: socket.socket) -> bytes:
    return await read_frame(lambda n: _recv_exactly(sock, n), DEFAULT_MAX_FRAME_SIZE)


async def _send_message(sock: socket.socket, message: Message) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, encode_frame(codec.encode(message)))


class BulkServer:
    """Listens on TCP; each connection: a challenge, its proof, then chunk requests."""

    def __init__(
        self,
        library: LibraryView,
        secrets_: BulkSecrets,
        uploads: UploadSlots,
        limiter: Limiter | None = None,
        limits: BulkLimits | None = None,
    ) -> None:
        self._library = library
        self._secrets = secrets_
        self._uploads = uploads
        self._limiter = limiter
        self._limits = limits or BulkLimits()
        self._sock: socket.socket | None = None
        self._connections: dict[str, set[socket.socket]] = {}
        self._strangers: Counter[str] = Counter()  # unauthenticated connections per host
        self._waiting: dict[socket.socket, str] = {}  # the same (conn -> host), oldest first
        self._open = 0
        self.accept_failures = 0  # failed accepts (EMFILE...), for logs and tests

    def drop_peer(self, peer_id: str) -> None:
        """The peer's last QUIC session ended: its secrets and bulk connections end too."""
        self._secrets.revoke(peer_id)
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
        """Accept until cancelled; closes the listener and every connection on the way out.

        A failed accept (out of descriptors) backs off and goes on: the live transfers and
        the listener survive, and accepting resumes once descriptors are free again.
        """
        assert self._sock is not None, "open() first"
        loop = asyncio.get_running_loop()
        retry = ACCEPT_RETRY[0]
        try:
            async with asyncio.TaskGroup() as tasks:
                while True:
                    try:
                        conn, addr = await loop.sock_accept(self._sock)
                    except OSError as exc:
                        self.accept_failures += 1
                        if retry == ACCEPT_RETRY[0]:
                            log.warning("bulk: accept failed (%s); backing off", exc)
                        await asyncio.sleep(retry)
                        retry = min(retry * 2, ACCEPT_RETRY[1])
                        continue
                    retry = ACCEPT_RETRY[0]
                    host = str(addr[0]).removeprefix("::ffff:")
                    if not self._admit(host):
                        conn.close()  # over a cap: no challenge, no descriptor held
                        continue
                    self._waiting[conn] = host
                    tasks.create_task(self._serve_connection(conn, host))
                    await asyncio.sleep(0)  # a burst of accepts lets evicted ones close
        finally:
            self.close()

    def _admit(self, host: str) -> bool:
        limits = self._limits
        if self._open >= limits.max_connections:
            return False
        if self._strangers[host] >= limits.max_unauthenticated_per_host:
            return False
        if self._strangers.total() >= limits.max_unauthenticated:
            # Full: the oldest stranger makes room (its task sees EOF and closes it). An
            # honest downloader proves itself in one round trip, so a flood keeps nobody out.
            oldest = next(iter(self._waiting))
            self._forget_stranger(oldest)
            with contextlib.suppress(OSError):
                oldest.shutdown(socket.SHUT_RDWR)
        self._open += 1
        self._strangers[host] += 1
        return True

    def _forget_stranger(self, conn: socket.socket) -> None:
        host = self._waiting.pop(conn, None)
        if host is None:
            return  # proven, or already evicted
        self._strangers[host] -= 1
        if self._strangers[host] <= 0:
            del self._strangers[host]

    def close(self) -> None:
        """Stop listening (idempotent; also done when serve() ends)."""
        if self._sock is not None:
            self._sock.close()

    async def _serve_connection(self, conn: socket.socket, host: str) -> None:
        try:
            with conn:
                conn.setblocking(False)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                async with asyncio.timeout(HELLO_TIMEOUT):
                    peer_id = await self._wait_proof(conn)
                self._forget_stranger(conn)
                if peer_id is None:
                    return
                peer_conns = self._connections.setdefault(peer_id, set())
                peer_conns.add(conn)
                try:
                    await self._serve_requests(conn, peer_id)
                finally:
                    peer_conns.discard(conn)
        except (OSError, TimeoutError, ProtocolError) as exc:
            log.debug("bulk connection ended: %s", exc)
        finally:
            self._open -= 1
            self._forget_stranger(conn)

    async def _wait_proof(self, conn: socket.socket) -> str | None:
        """Challenge with a fresh nonce; the proven peer_id, or None after a refusal."""
        nonce = secrets.token_bytes(32)
        await _send_message(conn, BulkChallenge(nonce=nonce))
        hello = codec.decode(await _read_frame(conn))
        if isinstance(hello, BulkHello) and self._secrets.check(hello, nonce):
            return hello.peer_id
        log.info("bulk: refusing a connection without a valid proof")
        await _send_message(
            conn, Error(code=ErrorCode.BAD_TOKEN, message="bulk secret unknown or expired")
        )
        return None

    async def _serve_requests(self, conn: socket.socket, peer_id: str) -> None:
        while True:
            async with asyncio.timeout(IDLE_TIMEOUT):
                frame = await _read_frame(conn)  # an oversize length ends the connection
            try:
                request = codec.decode(frame)
            except RemoteProtocolError as exc:  # a whole frame: answer and go on
                await _send_message(conn, Error(code=exc.code, message=exc.message[:500]))
                continue
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


SecretSource = Callable[[], Awaitable[bytes]]


class BulkClient:
    """A downloader's pool of bulk connections to one peer.

    Each exchange runs in a worker thread on a blocking socket: the answer's body lands in one
    ``recv(length, MSG_WAITALL)`` (the kernel copies straight into the returned bytes, no event
    loop round per segment, the GIL released meanwhile). Kernel timeouts bound every call; a
    cancelled fetch shuts its socket down so the thread returns at once. A typed refusal keeps
    the connection (the server goes on reading requests). ``close`` closes the idle sockets;
    a fetch or connect still running on another socket closes that one when it ends (it is
    never pooled again), so a fetch in flight when a token is renewed still completes.
    """

    def __init__(
        self,
        host: str,
        port: int,
        local_id: str,
        server_id: str,
        secret: SecretSource,
        max_connections: int = 4,
    ) -> None:
        self.host, self.port = host, port
        self._local_id = local_id
        self._server_id = server_id
        self._secret = secret
        self._idle: list[socket.socket] = []
        self._closed = False
        self._slots = asyncio.Semaphore(max_connections)
        self._threads = ThreadPoolExecutor(max_connections, thread_name_prefix="lanpeer-bulk")

    async def fetch(self, request: GetChunk) -> bytes:
        async with self._slots:
            self._check_open()
            sock = self._idle.pop() if self._idle else await self._connect()
            if self._closed:  # closed while we connected
                sock.close()
                self._check_open()
            try:
                work = self._threads.submit(_exchange, sock, request, f"{self.host}:{self.port}")
            except BaseException:
                sock.close()
                raise
            try:
                data = await asyncio.wrap_future(work)
            except ChunkRefused as exc:
                if exc.wire_code in (ErrorCode.BAD_TOKEN, ErrorCode.BAD_FRAME):
                    sock.close()  # the server ends the connection after these
                else:
                    self._put_back(sock)  # a typed refusal: the connection goes on
                raise
            except BaseException:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread if it still waits
                work.add_done_callback(lambda _: sock.close())
                raise
            self._put_back(sock)
            return data

    def _check_open(self) -> None:
        if self._closed:
            # BAD_TOKEN: the fetcher tries once more on a fresh client (its token renewed).
            raise ChunkRefused(ErrorCode.BAD_TOKEN, "this bulk connection pool was closed")

    def _put_back(self, sock: socket.socket) -> None:
        """Pool a socket whose exchange ended cleanly; after ``close``, close it instead."""
        if self._closed:
            sock.close()
        else:
            self._idle.append(sock)

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            await loop.sock_connect(sock, (self.host, self.port))
            secret = await self._secret()
            async with asyncio.timeout(HELLO_TIMEOUT):
                nonce = await _wait_challenge(sock)
            proof = bulk_proof(secret, nonce, self._local_id, self._server_id)
            await _send_message(sock, BulkHello(peer_id=self._local_id, proof=proof))
            _make_blocking(sock, EXCHANGE_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise PeerUnavailable(f"bulk path to {self.host}:{self.port}: {exc}") from exc
        except ProtocolError as exc:
            sock.close()
            raise ChunkRefused(exc.code, f"bad bulk challenge: {exc.message}") from exc
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Close the idle sockets; each busy one is closed by its fetch when its exchange ends
        (bounded by the kernel timeouts; closing an fd a worker thread still reads could close
        a reused one)."""
        self._closed = True
        for sock in self._idle:
            with contextlib.suppress(OSError):
                sock.close()
        self._idle.clear()
        self._threads.shutdown(wait=False)


async def _wait_challenge(sock: socket.socket) -> bytes:
    challenge = codec.decode(await _read_frame(sock))
    if not isinstance(challenge, BulkChallenge):
        raise ChunkRefused(ErrorCode.UNEXPECTED, f"bulk server sent {challenge.type}")
    return challenge.nonce


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
        frame = read_frame_blocking(lambda n: _recv_all(sock, n), DEFAULT_MAX_FRAME_SIZE)
        answer = codec.decode(frame)
        if isinstance(answer, Error):
            raise ChunkRefused(answer.code, answer.message)
        if not isinstance(answer, ChunkHeader) or answer.length != request.length:
            raise ChunkRefused(ErrorCode.UNEXPECTED, "bad bulk answer")
        return _recv_all(sock, answer.length)
    except (ConnectionError, OSError) as exc:
        raise PeerUnavailable(f"bulk path to {where} failed: {exc}") from exc
    except ProtocolError as exc:
        raise ChunkRefused(exc.code, f"bad bulk answer: {exc.message}") from exc


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
