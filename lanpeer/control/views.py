"""Turns the daemon parts' state into the stable documents of SPEC §9.

Owns the merged library view (local games + what peers offer, newest version, update available)
and the translation of part events into control events. Pure functions over what the parts
return; never changes state, never does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from lanpeer_proto.control import (
    Event,
    FinishedEvent,
    GameEntry,
    HashingInfo,
    LibraryChangedEvent,
    OperationInfo,
    PeerDownEvent,
    PeerEntry,
    PeerUpEvent,
    ProgressEvent,
    ShareDownloadEntry,
    SourceEntry,
    UploadEntry,
    UploadEvent,
    VariantEntry,
)
from lanpeer_proto.messages import GameSummary

from lanpeer.download import progress
from lanpeer.download.hash_wait import PeerHashing
from lanpeer.download.progress import OperationStatus
from lanpeer.download.resolve import version_key  # one order for `games` and for `download`
from lanpeer.library.state import LocalGame
from lanpeer.net.peers import PeerEvent, PeerEventKind, PeerInfo
from lanpeer.net.swarm_member import PartialHolder
from lanpeer.net.uploads import UploadNotice, UploadSession
from lanpeer.share.server import ShareDownload

__all__ = ["version_key"]


def newest(versions: Iterable[str]) -> str | None:
    return max(versions, key=version_key, default=None)


def format_address(address: tuple[str, int] | tuple[str, int, int, int] | str | None) -> str:
    """``host:port`` (``[v6]:port``) of a socket address; a string passes through."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address or "")


def peer_entry(peer: PeerInfo, rate_up: float = 0.0, rate_down: float = 0.0) -> PeerEntry:
    return PeerEntry(
        peer_id=str(peer.peer_id),
        name=str(peer.name)[:256],
        address=format_address(peer.address),
        proto_ver=str(peer.proto_ver),
        library_rev=int(peer.library_rev),
        last_seen=float(peer.last_seen),
        games=len(peer.games),
        connected=peer.connected,
        rate_up=max(0.0, rate_up),
        rate_down=max(0.0, rate_down),
        rtt_ms=None if peer.rtt is None else round(max(0.0, peer.rtt) * 1000, 3),
    )


def upload_entry(session: UploadSession, name: str, rate: float) -> UploadEntry:
    return UploadEntry(
        peer_id=session.peer_id,
        name=name[:256],
        game_id=session.game_id,
        bytes=session.bytes,
        rate=max(0.0, rate),
        since=session.since,
    )


def upload_event(notice: UploadNotice, session: UploadSession, name: str) -> UploadEvent:
    return UploadEvent(
        state=notice,
        peer_id=session.peer_id,
        name=name[:256],
        game_id=session.game_id,
        bytes=session.bytes,
        seconds=max(0.0, session.seconds),
    )


def merge_games(
    local_games: Iterable[LocalGame],
    peers: Iterable[PeerInfo],
    busy: set[str],
    installed_versions: Mapping[str, str | None] | None = None,
    known: Mapping[str, tuple[str, int]] | None = None,
    partial: Mapping[str, list[str]] | None = None,
    holders: Sequence[PartialHolder] = (),
) -> list[GameEntry]:
    """One entry per game id, local facts first, then what connected peers offer.

    ``installed_versions``: what each installed game's ``local/`` holds (read from disk by the
    caller), which may differ from the downloaded version (a ``--no-install`` download).
    ``known``: (name, size) of games seen before, for a download whose peers left meanwhile
    (a stalled one's row once lost both).
    ``partial``: per game, the partial sources our download of it uses (SPEC §7a).
    ``holders``: what the partial sources of our downloads hold; each is a ``sources`` row
    (``partial``, with its chunks and bytes) and one of ``partial_peers``.
    """
    installed = installed_versions or {}
    partial = partial or {}
    remembered = known or {}
    offers: dict[str, list[tuple[str, GameSummary]]] = {}
    for peer in peers:
        if peer.connected:
            for game_id, summary in peer.games.items():
                offers.setdefault(game_id, []).append((str(peer.peer_id), summary))
    local = {game.id: game for game in local_games}
    entries = [
        _game_entry(
            game_id,
            local.get(game_id),
            offers.get(game_id, []),
            game_id in busy,
            installed.get(game_id),
            remembered.get(game_id),
        )
        for game_id in sorted(set(local) | set(offers))
    ]
    return [_with_partial(e, partial.get(e.id, []), holders) for e in entries]


def _with_partial(
    entry: GameEntry, used: Sequence[str], holders: Sequence[PartialHolder]
) -> GameEntry:
    mine = [h for h in holders if h.game_id == entry.id]
    if not used and not mine:
        return entry
    rows = [
        SourceEntry(
            peer_id=h.peer_id,
            version=h.version[:256],
            manifest_hash=h.manifest_hash.hex(),
            partial=True,
            held_chunks=h.chunks,
            held_bytes=h.bytes,
        )
        for h in mine
    ]
    peers = sorted({*used, *(h.peer_id for h in mine)})
    return entry.model_copy(update={"partial_peers": peers, "sources": [*entry.sources, *rows]})


def with_pins(games: list[GameEntry], pins: Mapping[str, str]) -> list[GameEntry]:
    """Each entry with the version it is pinned at (``peer-cli pin``), if any."""
    return [g.model_copy(update={"pinned": pins[g.id]}) if g.id in pins else g for g in games]


def _game_entry(
    game_id: str,
    game: LocalGame | None,
    offers: Sequence[tuple[str, GameSummary]],
    busy: bool,
    installed_version: str | None,
    known: tuple[str, int] | None = None,
) -> GameEntry:
    newest_version = newest(str(summary.version) for _, summary in offers)
    version = game.version if game else None
    downloaded = bool(game and game.downloaded)
    listed = game.name if game and game.in_catalog else None
    name = listed or next((s.name for _, s in offers), None) or (known or (game_id, 0))[0]
    here = game.size if game and game.downloaded else None
    size = here or max((s.size for _, s in offers), default=0) or (known or ("", 0))[1]
    installed = bool(game and game.installed)
    return GameEntry(
        id=game_id,
        name=str(name)[:256],
        version=version,
        downloaded=downloaded,
        installed=installed,
        state=_state(game, busy),
        size=int(size),
        peers=sorted(peer_id for peer_id, _ in offers),
        newest_version=newest_version,
        update_available=update_available(
            installed_version if installed else None,
            version if downloaded else None,
            newest_version,
        ),
        ready_peers=sorted(
            peer_id
            for peer_id, s in offers
            if s.version == newest_version and s.manifest_hash is not None
        ),
        installed_version=installed_version if installed else None,
        hashed_bytes=game.hashed_bytes if game else 0,
        hash_total=game.hash_total if game else 0,
        sources=[_source(peer_id, summary) for peer_id, summary in sorted(offers)],
        variants=_variants(offers),
    )


def update_available(installed: str | None, downloaded: str | None, offered: str | None) -> bool:
    """Something newer than what is in use: offered by a peer, or downloaded but not installed.

    In use is the installed version when known, else the downloaded one (an install made
    before lanpeer recorded versions, or a game kept downloaded only).
    """
    current = installed or downloaded
    if current is None:
        return False
    best = newest(v for v in (downloaded, offered) if v is not None)
    return best is not None and version_key(best) > version_key(current)


def _source(peer_id: str, summary: GameSummary) -> SourceEntry:
    digest = summary.manifest_hash
    return SourceEntry(
        peer_id=peer_id,
        version=str(summary.version),
        manifest_hash=digest.hex() if digest is not None else None,
    )


def _variants(offers: Sequence[tuple[str, GameSummary]]) -> list[VariantEntry]:
    """Only when one version string names different bytes on different peers."""
    by_version: dict[str, dict[str, list[str]]] = {}
    sizes: dict[str, int] = {}
    for peer_id, summary in offers:
        if summary.manifest_hash is not None:
            hashes = by_version.setdefault(str(summary.version), {})
            hashes.setdefault(summary.manifest_hash.hex(), []).append(peer_id)
            sizes[summary.manifest_hash.hex()] = int(summary.size)
    return [
        VariantEntry(version=version, manifest_hash=digest, peers=sorted(peers), size=sizes[digest])
        for version, hashes in sorted(by_version.items())
        if len(hashes) > 1
        for digest, peers in sorted(hashes.items())
    ]


def _state(game: LocalGame | None, busy: bool) -> str:
    if game is None:
        return "remote"
    if busy:
        return "busy"
    if game.local_only:
        return "local-only"
    if game.downloaded and game.in_catalog and game.manifest_hash is None:
        return "hashing"
    if game.installed:
        return "installed"
    return "downloaded" if game.downloaded else "partial"


def operation_info(status: OperationStatus) -> OperationInfo:
    """An operation of the queue (download or transaction lane) as the ``ops`` document."""
    return OperationInfo(
        game_id=status.game_id,
        kind=str(status.kind),
        state=str(status.state),
        lane=str(status.lane),
        queue_position=status.queue_position,
        bytes_done=status.bytes_done,
        bytes_total=status.bytes_total,
        rate=max(0.0, status.rate),
        eta=_eta(status.eta),
        sources=list(status.sources),
        partial_sources=list(status.partial_sources),
        reason=status.reason,
        hashing=hashing_info(status.hashing),
    )


def hashing_info(hashing: PeerHashing | None) -> HashingInfo | None:
    if hashing is None:
        return None
    return HashingInfo(
        peer_id=hashing.peer_id,
        name=hashing.name[:256],
        hashed_bytes=hashing.hashed_bytes,
        total_bytes=hashing.total_bytes,
        queued=hashing.queued,
    )


def _eta(value: float | None) -> float | None:
    return None if value is None or value < 0 else float(value)


def peer_event(event: PeerEvent, peers: Iterable[PeerInfo]) -> Event | None:
    """A net ``PeerEvent`` (kind up/down/library/removed) as a control event."""
    kind, peer_id = event.kind, event.peer_id
    info = next((p for p in peers if p.peer_id == peer_id), None)
    if kind is PeerEventKind.UP:
        name = str(info.name)[:256] if info else ""
        address = format_address(info.address) if info else ""
        return PeerUpEvent(peer_id=peer_id, name=name, address=address)
    if kind in (PeerEventKind.DOWN, PeerEventKind.REMOVED):
        return PeerDownEvent(peer_id=peer_id)
    if kind is PeerEventKind.LIBRARY:
        return LibraryChangedEvent(
            peer_id=peer_id, library_rev=int(info.library_rev) if info else 0
        )
    return None


def download_event(event: progress.ProgressEvent) -> Event:
    """An operation's ``ProgressEvent`` (progress / state / finished) as a control event."""
    if event.event == "finished":
        return FinishedEvent(
            game_id=event.game_id,
            kind=str(event.kind),
            ok=bool(event.ok),
            error=None if event.ok else (event.error or event.state),
            bytes=int(event.bytes_done),
            seconds=max(0.0, float(event.seconds or 0.0)),
            peers_used=[str(p) for p in event.peers_used] if event.kind == "download" else [],
            bytes_from_partial=event.bytes_from_partial,
            bytes_by_peer={str(k): int(v) for k, v in event.bytes_by_peer.items()},
            bytes_fetched=int(event.bytes_fetched),
        )
    return ProgressEvent(
        game_id=event.game_id,
        kind=str(event.kind),
        state=str(event.state),
        bytes_done=int(event.bytes_done),
        bytes_total=int(event.bytes_total),
        rate=max(0.0, float(event.rate)),
        eta=_eta(event.eta),
        peer_rates={str(k): float(v) for k, v in event.peers.items()},
        reason=event.reason,
        hashing=hashing_info(event.hashing),
    )


def share_download_entry(download: ShareDownload) -> ShareDownloadEntry:
    """One HTTP share download (``ShareServer.downloads()``) as its control document."""
    elapsed = max(time.time() - download.started, 1e-3)
    return ShareDownloadEntry(
        client=download.client[:256],
        game_id=download.game_id,
        item=download.item[:4096],
        offset=download.offset,
        bytes_sent=download.sent,
        bytes_total=download.total,
        rate=download.sent / elapsed,
        started=download.started,
    )


def share_upload_entry(download: ShareDownload) -> UploadEntry:
    """An HTTP share download as a row of ``uploads`` (``via="http"``, the client's address)."""
    entry = share_download_entry(download)
    return UploadEntry(
        peer_id=entry.client,
        name="HTTP share",
        game_id=entry.game_id,
        bytes=entry.bytes_sent,
        rate=entry.rate,
        since=entry.started,
        via="http",
    )
