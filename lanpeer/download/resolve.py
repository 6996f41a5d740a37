"""Which version to download: the newest one offered by connected peers (SPEC §7), and its manifest.

Owns the version ordering, the ``ManifestResolver`` the manager uses to notice that the
sources' content changed, and fetching the manifest of one exact version from whichever peer
has it (a full source, or a partial source downloading it: SPEC §7a). Reads the peer table
only through a small Protocol; never dials.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lanpeer_proto.errors import ProtocolError
from lanpeer_proto.messages import GameSummary, Manifest

from lanpeer.errors import LanpeerError
from lanpeer.library.manifest import verify_manifest

log = logging.getLogger(__name__)

#: Peers asked, per look, for the manifest of one version: each asked peer that does not have
#: it answers with a refusal, a partial source with the manifest it downloads.
MAX_MANIFEST_ASKS = 8

ManifestResolver = Callable[[str], Awaitable[Manifest | None]]


class PeerView(Protocol):
    @property
    def peer_id(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def games(self) -> Mapping[str, GameSummary]: ...


class PeerDirectory(Protocol):
    def peers(self) -> Sequence[PeerView]: ...

    async def fetch_manifest(self, peer_id: str, game_id: str) -> Manifest: ...


class OfferTable(PeerDirectory, Protocol):
    """The peer table as commands and resume wait on it (``PeerNode``)."""

    async def wait_sources_changed(self, timeout: float) -> None: ...  # noqa: ASYNC109 - seam


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order: "1.10" > "1.9" > "1.9b"; numbers sort below text at the same position."""
    parts = re.findall(r"\d+|[^\d.\-_ ]+", version.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def newest_offer(
    peers: Sequence[PeerView], game_id: str, version: str | None = None
) -> tuple[str, GameSummary] | None:
    """(peer_id, summary) of the newest (or named) hashed version; the most offered wins ties."""
    offers = [
        (p.peer_id, g)
        for p in peers
        if p.connected and (g := p.games.get(game_id)) is not None and g.manifest_hash is not None
    ]
    if version is not None:
        offers = [(pid, g) for pid, g in offers if g.version == version]
    if not offers:
        return None
    best_version = max((g.version for _, g in offers), key=version_key)
    offers = [(pid, g) for pid, g in offers if version_key(g.version) == version_key(best_version)]
    popular = Counter(g.manifest_hash for _, g in offers).most_common(1)[0][0]
    return next((pid, g) for pid, g in offers if g.manifest_hash == popular)


def peer_manifest_resolver(directory: PeerDirectory) -> ManifestResolver:
    async def resolve(game_id: str) -> Manifest | None:
        offer = newest_offer(directory.peers(), game_id)
        if offer is None:
            return None
        try:
            return await directory.fetch_manifest(offer[0], game_id)
        except LanpeerError:
            return None

    return resolve


@dataclass
class ManifestSearch:
    """What one wait for a version's manifest remembers between looks (bounded by the peer
    table): the peers that sent a wrong manifest (never asked again) and when each peer was
    last asked (the least recently asked go first, so every peer gets its turn)."""

    refused: set[str] = field(default_factory=set)
    asked: dict[str, int] = field(default_factory=dict)  # peer_id -> look number
    looks: int = 0


async def version_manifest(
    directory: PeerDirectory,
    game_id: str,
    manifest_hash: bytes,
    search: ManifestSearch | None = None,
) -> Manifest | None:
    """The manifest that is exactly ``manifest_hash``, or None when no connected peer gave it.

    Asks the peers offering that version first, then connected peers that do not offer the
    game at all: a partial source answers ``GetManifest`` with the version it downloads (a
    peer offering another version would answer with that one, so it is not asked); at most
    ``MAX_MANIFEST_ASKS`` per look. Every answer is checked: its ``manifest_hash`` must be the
    one wanted and its content must hash to it. A peer that sends another manifest is refused
    (in ``search``, which the caller keeps across looks) and the next one asked.
    """
    search = search or ManifestSearch()
    search.looks += 1
    full, others = [], []
    for peer in directory.peers():
        if not peer.connected or peer.peer_id in search.refused:
            continue
        offer = peer.games.get(game_id)
        if offer is None:
            others.append(peer.peer_id)
        elif offer.manifest_hash == manifest_hash:
            full.append(peer.peer_id)
    others.sort(key=lambda peer_id: search.asked.get(peer_id, 0))  # stable: table order else
    for peer_id in (full + others)[:MAX_MANIFEST_ASKS]:
        search.asked[peer_id] = search.looks
        try:
            manifest = await directory.fetch_manifest(peer_id, game_id)
        except (LanpeerError, ProtocolError, OSError) as exc:
            log.debug("%s: no manifest from %s (%s)", game_id, peer_id[:8], exc)
            continue  # does not have it (now): asked again on a later look
        if manifest.manifest_hash == manifest_hash and verify_manifest(manifest):
            return manifest
        search.refused.add(peer_id)
        log.warning("%s: peer %s sent a manifest that is not %s; refused, asking the next",
                    game_id, peer_id[:8], manifest_hash.hex()[:12])  # fmt: skip
    return None
