"""Keeps our copy of each peer's library in step with what the peer announces.

Owns the sync rule of SPEC §6: equal digest -> nothing; else a delta from the rev we hold, else a
snapshot; a delta that does not start at our rev (out of order, missed) -> snapshot. One sync per
peer at a time; announcements that arrive meanwhile are coalesced into the running one.
Never trusts a peer's games for identity: the table is keyed by the session's proven peer_id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from lanpeer_proto.messages import (
    LibraryDelta,
    LibraryDeltaRequest,
    LibrarySnapshot,
    LibrarySnapshotRequest,
    Message,
)

from lanpeer.net.errors import ChunkRefused, PeerUnavailable
from lanpeer.net.peers import LibraryTooLarge, PeerEventKind, PeerRecord, PeerTable
from lanpeer.net.session import PeerLink

log = logging.getLogger(__name__)

#: Rounds one sync runs while the peer keeps changing; the next announcement starts another.
MAX_ROUNDS = 8
#: A sync gives up after this many failed requests in a row, waiting 0.5, 1, 2 s between.
MAX_FAILURES = 4
RETRY_DELAY = 0.5


class LibrarySync:
    def __init__(self, table: PeerTable, emit: Callable[[PeerEventKind, str], None]) -> None:
        self._table = table
        self._emit = emit
        self._wanted: dict[str, tuple[int, bytes]] = {}  # peer_id -> announced (rev, digest)
        self._running: set[str] = set()
        #: How our copies were updated ("delta" / "snapshot"): for logs and tests.
        self.applied: Counter[str] = Counter()

    async def wait_synced(
        self, session: PeerLink, rev: int, digest: bytes, *, hello: bool = False
    ) -> None:
        """Bring our copy to the announced ``digest`` (or give up with a log line).

        A failed round is retried with backoff over the peer's newest open session, so an
        announcement coalesced into a failing sync is not lost.
        """
        peer_id = session.peer_id
        held = self._wanted.get(peer_id)
        if hello or held is None or rev >= held[0]:  # a late, older push changes nothing
            self._wanted[peer_id] = (rev, digest)
        record = self._table.get(peer_id)
        if hello and record is not None and (record.library_rev or 0) > rev:
            # A new session's Hello is the truth: a rev lower than our copy's means the peer's
            # index started over (same identity), so our copy and its rev are worth nothing.
            record.library_rev = None
        if peer_id in self._running:
            return  # the running sync re-checks the wanted digest after each round
        self._running.add(peer_id)
        try:
            await self._sync_rounds(peer_id)
        finally:
            self._running.discard(peer_id)

    async def _sync_rounds(self, peer_id: str) -> None:
        failures = 0
        for _ in range(MAX_ROUNDS + MAX_FAILURES):
            record = self._table.get(peer_id)
            link = record.live_session() if record is not None else None
            if record is None or link is None or self._in_step(record):
                return  # gone, disconnected (the next handshake syncs again) or in step
            try:
                await self._sync_once(link, record)
            except LibraryTooLarge as exc:
                log.warning("%r: not keeping its library: %s", link, exc)
                return
            except (PeerUnavailable, ChunkRefused) as exc:
                if not link.is_open and record.live_session() not in (None, link):
                    # A duplicate connection was closed under the request (node keeps one per
                    # pair): not a failure of the peer, go on over the connection kept.
                    log.debug("%r: closed during a sync; going on over the kept one", link)
                    continue
                failures += 1
                if failures >= MAX_FAILURES:
                    log.warning("%r: library sync failed %d times: %s", link, failures, exc)
                    return
                log.info("%r: library sync failed (%s); retrying", link, exc)
                await asyncio.sleep(RETRY_DELAY * 2 ** (failures - 1))

    def _in_step(self, record: PeerRecord) -> bool:
        """Our copy is the announced one, or newer (a snapshot answers with the current one)."""
        wanted = self._wanted.get(record.peer_id)
        if record.library_rev is None or wanted is None:
            return False
        rev, digest = wanted
        return record.library_digest == digest or record.library_rev > rev

    async def _sync_once(self, session: PeerLink, record: PeerRecord) -> None:
        request: Message = (
            LibraryDeltaRequest(from_rev=record.library_rev)
            if record.library_rev is not None
            else LibrarySnapshotRequest()
        )
        answer = await session.request(request)
        if isinstance(answer, LibraryDelta):
            if self._table.apply_delta(record.peer_id, answer):
                self.applied["delta"] += 1
                self._emit(PeerEventKind.LIBRARY, record.peer_id)
                return
            log.info(
                "%r: delta %d->%d does not follow our rev %s, asking a snapshot",
                session,
                answer.from_rev,
                answer.to_rev,
                record.library_rev,
            )
            answer = await session.request(LibrarySnapshotRequest())
        if not isinstance(answer, LibrarySnapshot):
            raise ChunkRefused.unexpected(answer.type)
        self.applied["snapshot"] += 1
        if self._table.apply_snapshot(record.peer_id, answer):
            self._emit(PeerEventKind.LIBRARY, record.peer_id)
