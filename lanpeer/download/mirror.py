"""Mirror a peer's library (``download --all``, ``follow``) and pick among version variants.

Pure: which offered games this host lacks or has older, in which order, how many fit on disk,
and which content (``manifest_hash``) of a version to fetch. Never queues anything, never
reads the disk (free bytes are passed in).

Order: smallest first. At a party the point is to have as many games playable as early as
possible; small games finish first, and when the disk runs out the big game that did not fit
is the one left out, not ten small ones behind it. (Newest first would favour what changed
lately, which ``auto-update`` already covers.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lanpeer_proto.messages import GameSummary

from lanpeer.download.autoupdate import LocalView
from lanpeer.download.resolve import PeerView, version_key
from lanpeer.errors import UnknownGameError, UnknownPeerError


@dataclass(frozen=True)
class Pick:
    game_id: str
    peer_id: str
    summary: GameSummary


def find_peer(peers: Sequence[PeerView], text: str, names: Mapping[str, str]) -> str:
    """A peer id from an id, a unique id prefix or a name (``names``: peer_id -> name)."""
    if any(p.peer_id == text for p in peers):
        return text
    by_name = [p.peer_id for p in peers if names.get(p.peer_id) == text]
    by_prefix = [p.peer_id for p in peers if p.peer_id.startswith(text)]
    found = by_name or by_prefix
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownPeerError(f"no known peer is called or has an id starting with {text!r}")
    raise UnknownPeerError(f"{text!r} names {len(found)} peers; give more of the peer id")


def mirror_picks(
    local: Iterable[LocalView],
    peers: Sequence[PeerView],
    *,
    from_peer: str | None = None,
    match: str | None = None,
    pins: Mapping[str, str] | None = None,
) -> list[Pick]:
    """Offered games (by ``from_peer``, else any connected peer) that this host lacks or has
    older, the newest hashed version of each, smallest first. Pinned games are left as they are."""
    have = {g.id: g.version for g in local if g.downloaded}
    pins = pins or {}
    best: dict[str, Pick] = {}
    for peer in peers:
        if not peer.connected or (from_peer is not None and peer.peer_id != from_peer):
            continue
        for game_id, summary in peer.games.items():
            if summary.manifest_hash is None or game_id in pins or not _matches(summary, match):
                continue
            mine = have.get(game_id)
            if mine is not None and version_key(summary.version) <= version_key(mine):
                continue
            current = best.get(game_id)
            if current is None or version_key(summary.version) > version_key(
                current.summary.version
            ):
                best[game_id] = Pick(game_id, peer.peer_id, summary)
    return sorted(best.values(), key=lambda p: (p.summary.size, p.game_id))


def _matches(summary: GameSummary, match: str | None) -> bool:
    if not match:
        return True
    text = match.lower()
    return text in summary.id.lower() or text in summary.name.lower()


def fitting(picks: Sequence[Pick], free: int, margin: int, install: bool) -> int:
    """How many of ``picks``, in order, fit in ``free`` bytes. Each needs its size (twice when
    it is installed too: archives plus ``local/``; an estimate, extraction checks again), all
    together one ``margin`` (what each download keeps free)."""
    used = margin
    for count, pick in enumerate(picks):
        used += pick.summary.size * (2 if install else 1)
        if used > free:
            return count
    return len(picks)


@dataclass(frozen=True)
class Variant:
    version: str
    manifest_hash: bytes
    size: int
    peers: tuple[str, ...]


def variants(peers: Sequence[PeerView], game_id: str) -> list[Variant]:
    """Every content offered for ``game_id``, grouped by (version, manifest_hash), most
    sources first within a version; only hashed offers of connected peers count."""
    groups: dict[tuple[str, bytes], list[tuple[str, GameSummary]]] = {}
    for peer in peers:
        game = peer.games.get(game_id)
        if peer.connected and game is not None and game.manifest_hash is not None:
            groups.setdefault((game.version, game.manifest_hash), []).append((peer.peer_id, game))
    found = [
        Variant(version, digest, offers[0][1].size, tuple(sorted(pid for pid, _ in offers)))
        for (version, digest), offers in groups.items()
    ]
    return sorted(found, key=lambda v: (version_key(v.version), len(v.peers)), reverse=True)


def disputed_versions(found: Sequence[Variant]) -> set[str]:
    """Versions offered with more than one content (two builds both called "1.0")."""
    seen: dict[str, int] = {}
    for variant in found:
        seen[variant.version] = seen.get(variant.version, 0) + 1
    return {version for version, count in seen.items() if count > 1}


def choose_variant(
    found: Sequence[Variant],
    *,
    version: str | None = None,
    from_peer: str | None = None,
    variant: str | None = None,
) -> Variant:
    """The content to download: the one ``from_peer`` holds or whose hash starts with
    ``variant``, else (of the newest or named version) the one with the most sources."""
    pool = [v for v in found if version is None or v.version == version]
    if from_peer is not None:
        pool = [v for v in pool if from_peer in v.peers]
    if variant is not None:
        pool = [v for v in pool if v.manifest_hash.hex().startswith(variant.lower())]
    if not pool:
        what = " ".join(
            part
            for part in (
                f"version {version}" if version else "",
                f"from {from_peer[:12]}" if from_peer else "",
                f"variant {variant}" if variant else "",
            )
            if part
        )
        raise UnknownGameError(f"no connected peer offers that game {what}".rstrip())
    best_version = max((v.version for v in pool), key=version_key)
    same = [v for v in pool if version_key(v.version) == version_key(best_version)]
    return max(same, key=lambda v: (len(v.peers), v.manifest_hash))
