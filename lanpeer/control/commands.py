"""What each control command does, in terms of the daemon parts (SPEC §9).

Owns the mapping request -> part calls -> result document, and the checks a person expects
before anything starts (unknown game -> exit 4, busy game -> exit 5). Never touches the socket
(``server`` does) and never holds state of its own beyond references to the parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lanpeer_proto.control import (
    AcceptedResult,
    AddPeerRequest,
    CancelRequest,
    DoctorRequest,
    DoctorResult,
    DownloadRequest,
    ErrorMessage,
    GamesRequest,
    GamesResult,
    InstallRequest,
    OperationInfo,
    OpsRequest,
    OpsResult,
    PeersRequest,
    PeersResult,
    RemoveRequest,
    Request,
    RescanRequest,
    ResultMessage,
    ShutdownRequest,
    StatusRequest,
    StatusResult,
    UninstallRequest,
    UpdateRequest,
    WatchRequest,
)
from lanpeer_proto.messages import GameSummary

from lanpeer import doctor
from lanpeer.control import views
from lanpeer.download.operations import Operation, OpKind
from lanpeer.download.resolve import OfferTable, PeerView, newest_offer
from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError
from lanpeer.library.state import LocalGame
from lanpeer.parts import Parts

log = logging.getLogger(__name__)

#: The parts ``status`` reports (all of them always run; the field stays for old clients).
PART_NAMES = ("library", "node", "downloads", "install")
# The one Any of this module: a handler's request type is the key it is registered under, so
# the table is checked by hand (``answer`` looks a request up by its own type).
Handler = Callable[[Any], Awaitable[Any]]


class ControlCommands:
    """Answers every control request; each ``LanpeerError`` becomes an error line upstream."""

    def __init__(self, parts: Parts, request_stop: Callable[[], None]) -> None:
        self._parts = parts
        self._request_stop = request_stop
        self._handlers: dict[type[Request], Handler] = {
            StatusRequest: self.status,
            PeersRequest: self.peers,
            GamesRequest: self.games,
            DownloadRequest: self.download,
            InstallRequest: self.transaction,
            UpdateRequest: self.transaction,
            UninstallRequest: self.transaction,
            RemoveRequest: self.transaction,
            CancelRequest: self.cancel,
            OpsRequest: self.ops,
            WatchRequest: self.watch,
            RescanRequest: self.rescan,
            AddPeerRequest: self.add_peer,
            DoctorRequest: self.doctor,
            ShutdownRequest: self.shutdown,
        }

    async def answer(self, request: Request) -> ResultMessage | ErrorMessage:
        result = await self._handlers[type(request)](request)
        return ResultMessage(result=result)

    # ------------------------------------------------------------------ read-only documents

    async def status(self, _request: StatusRequest) -> StatusResult:
        parts, config = self._parts, self._parts.config
        library, node = parts.library, parts.node
        return StatusResult(
            peer_id=str(parts.identity.peer_id),
            name=config.name,
            listen=views.format_address(node.listen),
            roots=[str(root) for root in config.games],
            library_rev=int(library.library_rev),
            operations=self.operations(),
            games=len(library.local_games()),
            peers=len(node.peers()),
            subscribers=parts.events.subscriber_count,
            parts=dict.fromkeys(PART_NAMES, True),
        )

    async def peers(self, _request: PeersRequest) -> PeersResult:
        return PeersResult(peers=[views.peer_entry(peer) for peer in self._parts.node.peers()])

    async def games(self, _request: GamesRequest) -> GamesResult:
        busy = {op.game_id for op in self.operations()}
        local, peers = self._parts.library.local_games(), self._parts.node.peers()
        return GamesResult(games=views.merge_games(local, peers, busy))

    async def ops(self, _request: OpsRequest) -> OpsResult:
        return OpsResult(ops=self.operations())

    def operations(self) -> list[OperationInfo]:
        return [views.operation_info(status) for status in self._parts.downloads.operations()]

    async def watch(self, _request: WatchRequest) -> AcceptedResult:
        return AcceptedResult(message="watching daemon events")

    async def doctor(self, _request: DoctorRequest) -> DoctorResult:
        parts = self._parts
        inputs = doctor.DoctorInputs(
            config=parts.config,
            port=parts.node.listen[1],
            mdns=parts.node.mdns_status() if parts.config.mdns else None,
            peers=parts.node.peers(),
            finished=list(parts.events.recent_finished),
        )
        return DoctorResult(checks=await doctor.run_checks(inputs))

    # ------------------------------------------------------------------ commands that act

    async def download(self, request: DownloadRequest) -> AcceptedResult:
        node, downloads = self._parts.node, self._parts.downloads
        running = downloads.current(request.game_id)
        if running is not None and running.kind is OpKind.DOWNLOAD and request.version is None:
            # Typically a download the daemon resumed at startup: the person asking for it
            # again wants to follow it, not to be told it conflicts with itself.
            log.info("download of %s asked again; following the one in progress", request.game_id)
            return AcceptedResult(
                message=f"download of {request.game_id} is already {running.state}; following it",
                game_id=request.game_id,
                operation=_info(running),
            )
        self._refuse_if_busy(request.game_id)
        peer_id, summary = await wait_offer(node, request.game_id, request.version)
        manifest = await node.fetch_manifest(peer_id, request.game_id)
        operation = downloads.submit_download(
            request.game_id, manifest, request.install, summary=summary
        )
        log.info("download of %s %s queued", request.game_id, summary.version)
        return AcceptedResult(
            message=f"download of {request.game_id} {summary.version} queued",
            game_id=request.game_id,
            operation=_info(operation),
        )

    async def transaction(
        self, request: InstallRequest | UpdateRequest | UninstallRequest | RemoveRequest
    ) -> AcceptedResult:
        kind = OpKind(request.cmd)
        game = self._local_game(request.game_id)
        _check_transaction(kind, game)
        operation = self._parts.installs.submit(kind, request.game_id)
        return AcceptedResult(
            message=f"{request.cmd} of {request.game_id} queued",
            game_id=request.game_id,
            operation=_info(operation),
        )

    async def cancel(self, request: CancelRequest) -> AcceptedResult:
        if not await self._parts.downloads.cancel(request.game_id):
            raise UnknownGameError(
                f"{request.game_id} has no queued or running operation to cancel"
            )
        return AcceptedResult(
            message=f"cancelled the operation of {request.game_id}", game_id=request.game_id
        )

    async def rescan(self, request: RescanRequest) -> AcceptedResult:
        if request.game_id is not None:
            self._local_game(request.game_id)
        await self._parts.library.rescan(request.game_id)
        what = request.game_id or "the library"
        return AcceptedResult(message=f"rescanned {what}", game_id=request.game_id)

    async def add_peer(self, request: AddPeerRequest) -> AcceptedResult:
        self._parts.node.add_static_peer(request.host, request.port)
        return AcceptedResult(
            message=f"dialling {views.format_address((request.host, request.port))}"
        )

    async def shutdown(self, _request: ShutdownRequest) -> AcceptedResult:
        self._request_stop()
        return AcceptedResult(message="lanpeerd is shutting down")

    # ------------------------------------------------------------------ checks

    def _local_game(self, game_id: str) -> LocalGame:
        for game in self._parts.library.local_games():
            if game.id == game_id:
                return game
        raise UnknownGameError(f"{game_id} is not in this host's game roots (see `peer-cli games`)")

    def _refuse_if_busy(self, game_id: str) -> None:
        if any(op.game_id == game_id for op in self.operations()):
            raise ConflictError(
                f"{game_id} already has an operation queued or running (see `peer-cli ops`)"
            )


class StillHashing(LanpeerError):
    """Peers offer the game but have no manifest hash for it yet."""


# Peers hash a new game in the background; a download asked for right after they start waits
# this long for the first hash instead of failing (a 150 GB game may take longer: then retry).
HASH_WAIT = 30.0


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


_NEEDS: dict[OpKind, tuple[bool | None, bool | None]] = {
    # command: (must be downloaded, must be installed) — None means "don't care"
    OpKind.INSTALL: (True, False),
    OpKind.UPDATE: (True, True),
    OpKind.UNINSTALL: (None, True),
    OpKind.REMOVE: (True, False),
}


def _check_transaction(command: OpKind, game: LocalGame) -> None:
    downloaded, installed = _NEEDS[command]
    if downloaded and not game.downloaded:
        raise LanpeerError(f"{game.id} is not downloaded; run `peer-cli download {game.id}` first")
    if installed is True and not game.installed:
        raise ConflictError(f"{game.id} is not installed; there is nothing to {command}")
    if installed is False and game.installed:
        hint = "`peer-cli update`" if command is OpKind.INSTALL else "`peer-cli uninstall` first"
        raise ConflictError(f"{game.id} is installed; use {hint}")


def _info(operation: Operation) -> OperationInfo:
    return views.operation_info(operation.status(None))
