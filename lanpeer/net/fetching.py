"""Requests this node makes to its peers: manifests and chunks, over QUIC or the bulk path.

Owns choosing the chunk path (bulk when both peers offer it and ``bulk='auto'``, else QUIC),
the per-peer bulk client pools and their tokens, the manifest checks (its hash against the
peer's advert, its content against its hash), and the download engine's ``ChunkSource``
adapter. Never verifies chunk bytes: the caller checks every chunk against the BLAKE3 hash in
the manifest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lanpeer_proto.errors import ErrorCode, ProtocolError
from lanpeer_proto.messages import (
    BulkToken,
    BulkTokenRequest,
    GetChunk,
    GetHashStatus,
    GetManifest,
    HashStatus,
    Manifest,
)
from lanpeer_proto.version import FEATURE_HASH_STATUS, FEATURE_TCP_BULK
from pydantic import ValidationError

from lanpeer.errors import LanpeerError
from lanpeer.library.manifest import verify_manifest
from lanpeer.net.bulk import BulkClient
from lanpeer.net.errors import ChunkRefused, ForgedManifest, PeerUnavailable
from lanpeer.net.identity import short_id
from lanpeer.net.peers import PeerTable
from lanpeer.net.session import PeerLink

BulkMode = Literal["auto", "quic"]
#: After the bulk path to a peer fails while its QUIC session works, QUIC carries its chunks
#: for this long before the bulk path is tried again.
BULK_RETRY_AFTER = 60.0
#: Other peers advertising the same hash asked, one after another, in place of a peer that
#: sent a forged manifest (each ask bounded by the request timeout).
MAX_MANIFEST_FALLBACKS = 8

log = logging.getLogger(__name__)


class PeerFetcher:
    def __init__(self, table: PeerTable, local_id: str, bulk: BulkMode, per_peer: int = 8) -> None:
        self._table = table
        self._local_id = local_id
        self._bulk = bulk
        self._clients: dict[str, BulkClient] = {}
        # Our own chunk requests to one peer wait here rather than hit its upload cap (TOO_MANY).
        self._per_peer = per_peer
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._bulk_broken: dict[str, float] = {}  # peer_id -> when to try the bulk path again
        # Peers that sent a manifest whose content is not its hash (bounded by the peer table:
        # dropped in ``forget``): asked for no manifest again.
        self._forgers: set[str] = set()

    def link(self, peer_id: str) -> PeerLink:
        record = self._table.get(peer_id)
        link = record.live_session() if record is not None else None
        if link is None:
            raise PeerUnavailable(f"peer {short_id(peer_id)} is not connected")
        return link

    def rtt(self, peer_id: str) -> float | None:
        """Smoothed round-trip time to the peer's live session; None: not connected or not
        measured yet."""
        record = self._table.get(peer_id)
        return record.rtt if record is not None else None

    def uses_bulk(self, peer_id: str) -> bool:
        return peer_id in self._clients

    async def manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        """The manifest of ``game_id`` that is ``manifest_hash`` (default: the one the peer
        advertises; a host serving one version may download another), asked for by that hash
        and checked: its ``manifest_hash`` must be the one wanted and its content must hash to
        it (every chunk is verified against the manifest's chunk hashes, so an unchecked
        manifest would make that check mean nothing). A peer that sends forged content is
        banned from manifest requests while it is in the table, and other connected peers
        advertising that same hash are asked in its place (at most
        ``MAX_MANIFEST_FALLBACKS``); ``ForgedManifest`` when none of them gives it either."""
        wanted = manifest_hash or self._advertised_hash(peer_id, game_id)
        try:
            return await self._checked_manifest(peer_id, game_id, wanted)
        except ForgedManifest as forged:
            if wanted is None:
                raise
            others = [
                record.peer_id
                for record in self._table.records()
                if record.peer_id not in self._forgers
                and record.connected
                and (offer := record.games.get(game_id)) is not None
                and offer.manifest_hash == wanted
            ]
            for other in others[:MAX_MANIFEST_FALLBACKS]:
                with contextlib.suppress(LanpeerError, ProtocolError, OSError):
                    return await self._checked_manifest(other, game_id, wanted)
            raise forged from None

    async def _checked_manifest(self, peer_id: str, game_id: str, wanted: bytes | None) -> Manifest:
        if peer_id in self._forgers:
            raise ForgedManifest(f"peer {short_id(peer_id)} sent a forged manifest before")
        try:
            request = GetManifest(game_id=game_id, manifest_hash=wanted)
        except ValidationError as exc:
            raise invalid_request(exc) from None
        manifest = await self.link(peer_id).request(request)
        if not isinstance(manifest, Manifest) or manifest.game_id != game_id:
            raise ChunkRefused(ErrorCode.UNEXPECTED, "answer is not the manifest asked for")
        if wanted not in (None, manifest.manifest_hash):
            # An older peer ignores the asked hash and answers with its own version.
            raise ChunkRefused(ErrorCode.STALE_MANIFEST, "answer is not the manifest asked for")
        if not verify_manifest(manifest):
            self._forgers.add(peer_id)
            log.warning("peer %s sent a manifest of %s whose content is not its hash %s; "
                        "asking it for no manifest again", short_id(peer_id), game_id,
                        manifest.manifest_hash.hex()[:12])  # fmt: skip
            raise ForgedManifest(
                f"peer {short_id(peer_id)} sent a manifest of {game_id} whose content does not "
                "hash to its manifest_hash"
            )
        return manifest

    def _advertised_hash(self, peer_id: str, game_id: str) -> bytes | None:
        record = self._table.get(peer_id)
        advertised = record.games.get(game_id) if record is not None else None
        return advertised.manifest_hash if advertised is not None else None

    async def hash_status(self, peer_id: str, game_id: str) -> HashStatus | None:
        """The peer's hashing progress of ``game_id``; None when it lacks hash-status/1."""
        link = self.link(peer_id)
        if FEATURE_HASH_STATUS not in link.facts.shared_features:
            return None
        try:
            request = GetHashStatus(game_id=game_id)
        except ValidationError as exc:
            raise invalid_request(exc) from None
        status = await link.request(request)
        if not isinstance(status, HashStatus) or status.game_id != game_id:
            raise ChunkRefused(ErrorCode.UNEXPECTED, "answer is not the hash status asked for")
        return status

    async def chunk(self, peer_id: str, request: GetChunk) -> bytes:
        slots = self._slots.setdefault(peer_id, asyncio.Semaphore(self._per_peer))
        async with slots:
            return await self._chunk(peer_id, request)

    async def _chunk(self, peer_id: str, request: GetChunk) -> bytes:
        link = self.link(peer_id)
        if self._bulk_allowed(link):
            try:
                return await self._chunk_by_bulk(link, request)
            except PeerUnavailable as exc:
                if not link.is_open:
                    raise
                # TCP blocked or the bulk listener gone while QUIC works: QUIC for a while.
                log.warning("%r: bulk path failed (%s); using QUIC for %.0f s", link, exc,
                            BULK_RETRY_AFTER)  # fmt: skip
                self._bulk_broken[peer_id] = time.monotonic() + BULK_RETRY_AFTER
                self._drop_client(peer_id)
        return await link.fetch_chunk(request)

    def _bulk_allowed(self, link: PeerLink) -> bool:
        if self._bulk != "auto" or FEATURE_TCP_BULK not in link.facts.shared_features:
            return False
        return time.monotonic() >= self._bulk_broken.get(link.peer_id, 0.0)

    async def _chunk_by_bulk(self, link: PeerLink, request: GetChunk) -> bytes:
        client = await self._client(link)
        try:
            return await client.fetch(request)
        except ChunkRefused as exc:
            if exc.wire_code is not ErrorCode.BAD_TOKEN:
                raise
        self._drop_client(link.peer_id)  # the token expired or the peer restarted: one more try
        return await (await self._client(link)).fetch(request)

    async def _client(self, link: PeerLink) -> BulkClient:
        client = self._clients.get(link.peer_id)
        if client is not None and client.host == link.address[0]:
            return client
        self._drop_client(link.peer_id)
        secrets = _SecretCache(lambda: self.link(link.peer_id), await bulk_token(link))
        client = BulkClient(link.address[0], secrets.port, self._local_id, link.peer_id,
                            secrets.get)  # fmt: skip
        self._clients[link.peer_id] = client
        return client

    def link_down(self, peer_id: str) -> None:
        """The peer's last session ended: its bulk authorisation ended with it."""
        self._drop_client(peer_id)

    def forget(self, peer_id: str) -> None:
        """The peer left the table: drop its slots and bulk connections."""
        self._slots.pop(peer_id, None)
        self._forgers.discard(peer_id)
        self._bulk_broken.pop(peer_id, None)
        self._drop_client(peer_id)

    def _drop_client(self, peer_id: str) -> None:
        client = self._clients.pop(peer_id, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for peer_id in list(self._clients):
            self.forget(peer_id)


async def bulk_token(link: PeerLink) -> BulkToken:
    answer = await link.request(BulkTokenRequest())
    if not isinstance(answer, BulkToken):
        raise ChunkRefused(ErrorCode.UNEXPECTED, "answer is not a bulk token")
    return answer


class _SecretCache:
    """Hands the bulk client its session secret, asking the peer for a fresh one before the
    old one expires."""

    def __init__(self, link: Callable[[], PeerLink], token: BulkToken) -> None:
        self._link = link
        self._token = token
        self.port = token.port
        self._renew_at = time.monotonic() + token.ttl_seconds * 0.8

    async def get(self) -> bytes:
        if time.monotonic() >= self._renew_at:
            self._token = await bulk_token(self._link())
            self._renew_at = time.monotonic() + self._token.ttl_seconds * 0.8
        return self._token.secret


def invalid_request(exc: ValidationError) -> ChunkRefused:
    """A request we would not send: refused locally with the code the peer would use."""
    first = exc.errors()[0]
    message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    code = ErrorCode.BAD_PATH if "bad_path" in message else ErrorCode.BAD_MESSAGE
    return ChunkRefused(code, message)


@dataclass(frozen=True)
class PeerChunkSource:
    """The download engine's ChunkSource for one peer."""

    fetcher: PeerFetcher
    peer_id: str

    @property
    def rtt(self) -> float | None:
        """Read live at each call: the planner prefers the nearest holder of a chunk."""
        return self.fetcher.rtt(self.peer_id)

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        try:
            request = GetChunk(
                game_id=game_id, manifest_hash=manifest_hash, path=path, offset=offset,
                length=length,
            )  # fmt: skip
        except ValidationError as exc:
            raise invalid_request(exc) from None
        return await self.fetcher.chunk(self.peer_id, request)
