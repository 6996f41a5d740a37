"""Resume at startup: every download a previous run left staged is queued again (SPEC §7).

Owns choosing which offer a resumed download continues with (the staged version while a
connected peer offers it, or a partial source downloads it, else the newest, as ``download``
picks) and waiting for one. Never
touches the staging itself: the download manager loads, keeps or wipes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lanpeer_proto.errors import ProtocolError
from lanpeer_proto.messages import GameSummary, Manifest

from lanpeer.download.manager import DownloadManager, OfferFinder
from lanpeer.download.resolve import (
    ManifestSearch,
    OfferTable,
    PeerView,
    newest_offer,
    version_manifest,
)
from lanpeer.errors import LanpeerError

log = logging.getLogger(__name__)

RETRY_WAIT = 1.0  # seconds to wait for a source change before looking at the offers again


def resume_downloads(downloads: DownloadManager, offers: OfferTable) -> int:
    """Queue every unfinished download; returns how many. Call before the queue runs."""
    unfinished = downloads.unfinished()
    for record in unfinished:
        log.info(
            "resuming download of %s (staged version %s, install afterwards: %s); "
            "it continues once a peer offers it",
            record.game_id,
            record.manifest_hash.hex()[:12],
            "yes" if record.then_install else "no",
        )
        finder = _finder(offers, record.game_id, record.manifest_hash, record.pin)
        downloads.submit_resume(record, finder)
    return len(unfinished)


def _finder(offers: OfferTable, game_id: str, staged: bytes, pin: str | None) -> OfferFinder:
    async def find() -> tuple[Manifest, GameSummary | None]:
        return await wait_resume_offer(offers, game_id, staged, pin)

    return find


async def wait_resume_offer(
    offers: OfferTable, game_id: str, staged: bytes, pin: str | None = None
) -> tuple[Manifest, GameSummary | None]:
    """The manifest to continue with, waiting (until cancelled) for a peer that offers it.
    With no full source of the staged version, a partial source's manifest of it will do (the
    download then goes on from partial sources; SPEC §7a)."""
    search = ManifestSearch()  # who sent a wrong manifest, who was asked when
    while True:
        offer = resume_offer(offers.peers(), game_id, staged, pin)
        if offer is None or offer[1].manifest_hash != staged:
            manifest = await version_manifest(offers, game_id, staged, search)
            if manifest is not None:
                return manifest, None
        if offer is not None:
            peer_id, summary = offer
            try:
                manifest = await offers.fetch_manifest(peer_id, game_id)
                return manifest, summary
            except (LanpeerError, ProtocolError, OSError) as exc:
                log.info("%s: manifest from %s failed (%s); waiting", game_id, peer_id[:8], exc)
        await offers.wait_sources_changed(RETRY_WAIT)


def resume_offer(
    peers: Sequence[PeerView], game_id: str, staged: bytes, pin: str | None = None
) -> tuple[str, GameSummary] | None:
    """(peer_id, summary): a connected peer offering the staged version, else the newest (or,
    for a download pinned with ``--version``, that version: once a restart lost the pin)."""
    for peer in peers:
        game = peer.games.get(game_id) if peer.connected else None
        if game is not None and game.manifest_hash == staged:
            return str(peer.peer_id), game
    return newest_offer(peers, game_id, pin)
