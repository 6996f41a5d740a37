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

#: ``LanpeerError.code`` of a manifest whose content does not hash to its ``manifest_hash``
#: (``lanpeer.net.errors.ForgedManifest``; matched by code so this layer does not import net).
FORGED_MANIFEST = "forged_manifest"

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

    async def fetch_manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        """Of exactly ``manifest_hash`` when given, else the one the peer advertises."""
        ...


class OfferTable(PeerDirectory, Protocol):
    """The peer table as commands and resume wait on it (``PeerNode``)."""

    async def wait_sources_changed(self, timeout: float) -> None: ...  # noqa: ASYNC109 - seam


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order: "1.10" > "1.9" > "1.9b"; numbers sort below text at the same position."""
    parts = re.findall(r"\d+|[^\d.\-_ ]+", version.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def stall_hold(
    current: Manifest, offered: Manifest, *, own_sources_left: bool, chosen: bool
) -> str | None:
    """Why a stalled download of ``current`` must not move to ``offered`` (the newest version
    the peers offer, another manifest); None when it may (ARCHITECTURE "Stalled downloads").

    It moves only to a newer version, or to the same version string with other content when
    no source of its own manifest is left and the user did not choose a variant. Anything
    else would be a silent downgrade or swap: it stays stalled (sources may come back)."""
    newer = version_key(offered.version) > version_key(current.version)
    if newer:
        return None
    same = version_key(offered.version) == version_key(current.version)
    if not same:
        return (
            f"no connected peer serves {current.version} now; only the older {offered.version} "
            "is offered, and a download never moves to an older version: it continues when a "
            f"source of {current.version} returns"
        )
    if chosen:
        return (
            f"no connected peer serves the chosen variant of {current.version} now; another "
            f"variant ({offered.manifest_hash.hex()[:12]}) is offered: it continues when a "
            "source of the chosen one returns"
        )
    if own_sources_left:
        return (
            f"the sources of this variant of {current.version} do not answer now; another "
            f"variant ({offered.manifest_hash.hex()[:12]}) is offered: it continues when "
            "one of them does"
        )
    return None


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

    Asks for it by hash: the peers offering that version first, then connected peers that do
    not offer the game at all (a partial source answers with the version it downloads), then
    peers offering another version (a host updating to it holds it partially; an older peer
    ignores the hash and answers with its own version, refused as stale); at most
    ``MAX_MANIFEST_ASKS`` per look. Every answer is checked: its ``manifest_hash`` must be the
    one wanted and its content must hash to it. A peer that sends another manifest is refused
    (in ``search``, which the caller keeps across looks) and the next one asked.
    """
    search = search or ManifestSearch()
    search.looks += 1
    full, others = [], []
    updating: set[str] = set()  # offer another version: asked after those that offer none
    for peer in directory.peers():
        if not peer.connected or peer.peer_id in search.refused:
            continue
        offer = peer.games.get(game_id)
        if offer is not None and offer.manifest_hash == manifest_hash:
            full.append(peer.peer_id)
            continue
        others.append(peer.peer_id)
        if offer is not None:
            updating.add(peer.peer_id)
    # Stable: table order else.
    others.sort(key=lambda peer_id: (search.asked.get(peer_id, 0), peer_id in updating))
    for peer_id in (full + others)[:MAX_MANIFEST_ASKS]:
        search.asked[peer_id] = search.looks
        try:
            manifest = await directory.fetch_manifest(peer_id, game_id, manifest_hash)
        except (LanpeerError, ProtocolError, OSError) as exc:
            if isinstance(exc, LanpeerError) and exc.code == FORGED_MANIFEST:
                manifest = None  # the fetcher found it forged: refused below
            else:
                log.debug("%s: no manifest from %s (%s)", game_id, peer_id[:8], exc)
                continue  # does not have it (now): asked again on a later look
        if (
            manifest is not None
            and manifest.manifest_hash == manifest_hash
            and verify_manifest(manifest)
        ):
            return manifest
        search.refused.add(peer_id)
        log.warning("%s: peer %s sent a manifest that is not %s; refused, asking the next",
                    game_id, peer_id[:8], manifest_hash.hex()[:12])  # fmt: skip
    return None
