"""Turns the daemon parts' state into the stable documents of SPEC §9.

Owns the merged library view (local games + what peers offer, newest version, update available)
and the translation of part events into control events. Pure functions over what the parts
return; never changes state, never does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lanpeer_proto.control import (
    Event,
    FinishedEvent,
    GameEntry,
    LibraryChangedEvent,
    OperationInfo,
    PeerDownEvent,
    PeerEntry,
    PeerUpEvent,
    ProgressEvent,
)
from lanpeer_proto.messages import GameSummary

from lanpeer.download import progress
from lanpeer.download.progress import OperationStatus
from lanpeer.download.resolve import version_key  # one order for `games` and for `download`
from lanpeer.library.state import LocalGame
from lanpeer.net.peers import PeerEvent, PeerEventKind, PeerInfo

__all__ = ["version_key"]


def newest(versions: Iterable[str]) -> str | None:
    return max(versions, key=version_key, default=None)


def format_address(address: tuple[str, int] | tuple[str, int, int, int] | str | None) -> str:
    """``host:port`` (``[v6]:port``) of a socket address; a string passes through."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address or "")


def peer_entry(peer: PeerInfo) -> PeerEntry:
    return PeerEntry(
        peer_id=str(peer.peer_id),
        name=str(peer.name)[:256],
        address=format_address(peer.address),
        proto_ver=str(peer.proto_ver),
        library_rev=int(peer.library_rev),
        last_seen=float(peer.last_seen),
        games=len(peer.games),
        connected=peer.connected,
    )


def merge_games(
    local_games: Iterable[LocalGame],
    peers: Iterable[PeerInfo],
    busy: set[str],
    partial: dict[str, list[str]] | None = None,
) -> list[GameEntry]:
    """One entry per game id, local facts first, then what connected peers offer; ``partial``:
    per game, the partial sources our download of it uses (SPEC §7a)."""
    offers: dict[str, list[tuple[str, GameSummary]]] = {}
    for peer in peers:
        if peer.connected:
            for game_id, summary in peer.games.items():
                offers.setdefault(game_id, []).append((str(peer.peer_id), summary))
    local = {game.id: game for game in local_games}
    partial = partial or {}
    entries = [
        _game_entry(game_id, local.get(game_id), offers.get(game_id, []), game_id in busy)
        for game_id in sorted(set(local) | set(offers))
    ]
    return [
        e.model_copy(update={"partial_peers": sorted(partial[e.id])}) if partial.get(e.id) else e
        for e in entries
    ]


def _game_entry(
    game_id: str, game: LocalGame | None, offers: Sequence[tuple[str, GameSummary]], busy: bool
) -> GameEntry:
    newest_version = newest(str(summary.version) for _, summary in offers)
    version = game.version if game else None
    downloaded = bool(game and game.downloaded)
    name = (game.name if game else None) or next((s.name for _, s in offers), game_id)
    size = (game.size if game else None) or max((s.size for _, s in offers), default=0)
    update = (
        downloaded
        and version is not None
        and newest_version is not None
        and version_key(newest_version) > version_key(version)
    )
    return GameEntry(
        id=game_id,
        name=str(name)[:256],
        version=version,
        downloaded=downloaded,
        installed=bool(game and game.installed),
        state=_state(game, busy),
        size=int(size),
        peers=sorted(peer_id for peer_id, _ in offers),
        newest_version=newest_version,
        update_available=update,
        ready_peers=sorted(
            peer_id
            for peer_id, s in offers
            if s.version == newest_version and s.manifest_hash is not None
        ),
    )


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
    )
