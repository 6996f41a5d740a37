"""Which peer's offer a download takes, and waiting for one: a version still being hashed.

Owns the choice among connected peers' offers (the newest or named version, hashed), the short
wait in the request for a small game's first hash, and the long wait of a stalled download that
shows its seeders' hashing progress (``HashWatch`` decides when to give up). Never starts a
download and never reads the library.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from lanpeer_proto.errors import ProtocolError
from lanpeer_proto.messages import GameSummary, HashStatus, Manifest

from lanpeer.download.hash_wait import HASH_WAIT_LIMITS, HashWaitLimits, HashWatch
from lanpeer.download.operations import Operation
from lanpeer.download.resolve import OfferTable, PeerView, newest_offer
from lanpeer.errors import LanpeerError, UnknownGameError

log = logging.getLogger(__name__)


class StillHashing(LanpeerError):
    """Peers offer the game but have no manifest hash for it yet."""


# Peers hash a new game in the background; a download asked for right after they start waits
# this long in the request for the first hash (a small game), then as a stalled operation.
HASH_WAIT = 5.0


async def wait_offer(
    node: OfferTable, game_id: str, version: str | None
) -> tuple[str, GameSummary]:
    """``choose_offer``, waiting up to HASH_WAIT while the peers are still hashing."""
    deadline = asyncio.get_running_loop().time() + HASH_WAIT
    while True:
        try:
            return choose_offer(node.peers(), game_id, version)
        except StillHashing:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise
            await node.wait_sources_changed(min(left, 1.0))


class NamedPeerView(PeerView, Protocol):
    @property
    def name(self) -> str: ...


class SeederTable(OfferTable, Protocol):
    """The peer table as a download waiting for its seeders' hash sees it (``PeerNode``)."""

    def peers(self) -> Sequence[NamedPeerView]: ...

    async def fetch_hash_status(self, peer_id: str, game_id: str) -> HashStatus | None: ...


async def wait_hashed_offer(
    node: SeederTable,
    game_id: str,
    version: str | None,
    op: Operation,
    limits: HashWaitLimits = HASH_WAIT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Manifest, GameSummary]:
    """Until a peer offers ``game_id`` hashed (then its manifest); the operation shows why not
    and how far its seeders' hashing has got (``op.waiting``). Raises SeederStalledError when
    they stop making progress or go away (``HashWatch`` decides)."""
    watch = HashWatch(game_id, limits, clock())
    while True:
        try:
            peer_id, summary = choose_offer(node.peers(), game_id, version)
            return await node.fetch_manifest(peer_id, game_id), summary
        except StillHashing:
            await _ask_seeders(node, game_id, version, watch, clock)
            op.waiting(watch.reason(), watch.best())
        except UnknownGameError:
            watch.offered_by({}, clock())
            op.waiting(watch.reason(), None)
        except (LanpeerError, ProtocolError, OSError) as exc:
            op.waiting(f"the manifest could not be fetched ({exc}); retrying", watch.best())
        failure = watch.verdict(clock())
        if failure is not None:
            raise failure
        await node.wait_sources_changed(limits.poll)


async def _ask_seeders(
    node: SeederTable,
    game_id: str,
    version: str | None,
    watch: HashWatch,
    clock: Callable[[], float],
) -> None:
    """Ask every connected peer offering ``game_id`` (at ``version``) unhashed how far it got,
    one at a time: a handful of small requests a second."""
    seeders = {
        p.peer_id: p.name
        for p in node.peers()
        if p.connected
        and (g := p.games.get(game_id)) is not None
        and g.manifest_hash is None
        and version in (None, g.version)
    }
    watch.offered_by(seeders, clock())
    for peer_id, name in seeders.items():
        try:
            status = await node.fetch_hash_status(peer_id, game_id)
        except (LanpeerError, ProtocolError, OSError) as exc:
            log.debug("%s: hash status of %s unknown: %s", game_id, peer_id[:8], exc)
            status = None
        watch.saw(peer_id, name, status, clock())


def choose_offer(
    peers: Sequence[PeerView], game_id: str, version: str | None
) -> tuple[str, GameSummary]:
    """(peer_id, summary) of the newest (or named) hashed version connected peers offer.

    The download part's ``newest_offer`` decides (ties go to the content most peers share, so
    the download has the most sources); this adds the errors a person needs.
    """
    offers = [peer.games[game_id] for peer in peers if peer.connected and game_id in peer.games]
    if not offers:
        raise UnknownGameError(f"no connected peer offers {game_id} (see `peer-cli games`)")
    if version is not None and all(summary.version != version for summary in offers):
        raise UnknownGameError(f"no connected peer offers {game_id} version {version}")
    offer = newest_offer(peers, game_id, version)
    if offer is None:
        raise StillHashing(f"the peers offering {game_id} are still hashing it; retry in a moment")
    return offer
