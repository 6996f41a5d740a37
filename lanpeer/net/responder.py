"""Answers one request stream opened by an authenticated peer.

Owns the dispatch of a request to serving (sync, manifests, chunks, bulk tokens) and turns
every refusal or malformed request into a typed ``Error`` on that stream only.
Never closes the connection and never sends a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE
from lanpeer_proto.messages import (
    BulkToken,
    BulkTokenRequest,
    ChunkHeader,
    GetChunk,
    GetHashStatus,
    GetHaves,
    GetManifest,
    LibraryDeltaRequest,
    LibrarySnapshotRequest,
    Message,
)

from lanpeer.net.bulk import BulkSecrets
from lanpeer.net.library_view import HashStatusSource, LibraryView
from lanpeer.net.quic import QuicStream
from lanpeer.net.serving import (
    Limiter,
    ServeError,
    UploadSlots,
    hash_status_for,
    manifest_for,
    open_chunk,
    sync_answer,
)
from lanpeer.net.session import PeerLink
from lanpeer.net.swarm import SwarmHost

log = logging.getLogger(__name__)

#: Chunk bytes are read off the loop in pieces this big: large enough to amortise the thread hop.
READ_PIECE = 1 << 20


@dataclass(frozen=True)
class Responder:
    """Built once the listeners are bound (``PeerNode.start``) and never changed after."""

    library: LibraryView
    uploads: UploadSlots
    tokens: BulkSecrets | None
    bulk_port: int | None  # the bound TCP bulk listener's port; None: no bulk path
    limiter: Limiter | None = None
    swarm: SwarmHost | None = None  # answers GetHaves (feature swarm/1)
    hashing: HashStatusSource | None = None  # answers GetHashStatus (feature hash-status/1)

    async def answer(self, session: PeerLink, stream: QuicStream) -> None:
        try:
            request = codec.decode(await stream.read_frame(DEFAULT_MAX_FRAME_SIZE))
        except RemoteProtocolError as exc:
            log.info("%r sent a bad request: %s %s", session, exc.code.value, exc.message)
            await self._refuse(stream, ServeError(exc.code, exc.message))
            return
        try:
            await self._dispatch(session, stream, request)
        except ServeError as exc:
            log.info("%r: refused %s: %s %s", session, request.type, exc.code.value, exc.message)
            await self._refuse(stream, exc)

    async def _refuse(self, stream: QuicStream, exc: ServeError) -> None:
        await stream.write_frame(codec.encode(exc.to_message()), end=True)

    async def _dispatch(self, session: PeerLink, stream: QuicStream, request: Message) -> None:
        answer: Message
        if isinstance(request, GetChunk):
            await self._send_chunk(session, stream, request)
            return
        if isinstance(request, LibraryDeltaRequest | LibrarySnapshotRequest):
            answer = sync_answer(self.library, request)
        elif isinstance(request, GetManifest):
            answer = await manifest_for(self.library, request)
        elif isinstance(request, GetHaves) and self.swarm is not None:
            answer = await self.swarm.answer(session.peer_id, request)
        elif isinstance(request, GetHashStatus) and self.hashing is not None:
            answer = hash_status_for(self.hashing, request)
        elif isinstance(request, BulkTokenRequest):
            answer = self._bulk_token(session)
        else:
            raise ServeError(ErrorCode.UNEXPECTED, f"{request.type} is not a request")
        await stream.write_frame(codec.encode(answer), end=True)

    def _bulk_token(self, session: PeerLink) -> BulkToken:
        if self.tokens is None or self.bulk_port is None:
            raise ServeError(ErrorCode.NOT_FOUND, "this peer offers no bulk path")
        secret = self.tokens.issue(session.peer_id)
        return BulkToken(secret=secret, port=self.bulk_port, ttl_seconds=self.tokens.ttl)

    async def _send_chunk(self, session: PeerLink, stream: QuicStream, req: GetChunk) -> None:
        if not self.uploads.try_acquire(session.peer_id):
            raise ServeError(ErrorCode.TOO_MANY, "too many concurrent uploads to this peer")
        try:
            chunk = open_chunk(self.library, req)
            try:
                await stream.write_frame(
                    codec.encode(ChunkHeader(offset=req.offset, length=req.length))
                )
                await self._stream_file(stream, chunk.fd, chunk.offset, chunk.length)
                self.uploads.served(session.peer_id, req.game_id, chunk.length)
            finally:
                chunk.close()
        finally:
            self.uploads.release(session.peer_id)

    async def _stream_file(self, stream: QuicStream, fd: int, offset: int, length: int) -> None:
        end = offset + length
        while offset < end:
            size = min(READ_PIECE, end - offset)
            if self.limiter is not None:
                await self.limiter.wait_acquire(size)
            piece = await asyncio.to_thread(os.pread, fd, size, offset)
            if len(piece) != size:
                raise ConnectionError("file shrank while it was being served")
            offset += size
            await stream.write(piece, end=offset >= end)
