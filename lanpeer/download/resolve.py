"""Which version to download: the newest one offered by connected peers (SPEC §7), and its manifest.

Owns the version ordering and the ``ManifestResolver`` the manager uses to notice that the
sources' content changed. Reads the peer table only through a small Protocol; never dials.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from lanpeer_proto.messages import GameSummary, Manifest

from lanpeer.errors import LanpeerError

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
