"""What each control command does, in terms of the daemon parts (SPEC §9).

Owns the mapping request -> part calls -> result document, and the checks a person expects
before anything starts (unknown game -> exit 4, busy game -> exit 5). Never touches the socket
(``server`` does) and never holds state of its own beyond references to the parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from lanpeer_proto.control import (
    AcceptedResult,
    AddPeerRequest,
    CancelRequest,
    DoctorRequest,
    DoctorResult,
    DownloadAllRequest,
    DownloadRequest,
    ErrorMessage,
    FollowRequest,
    GameRequest,
    GameResult,
    GamesRequest,
    GamesResult,
    InstallRequest,
    OperationInfo,
    OpsRequest,
    OpsResult,
    PeersRequest,
    PeersResult,
    PinRequest,
    RemovePeerRequest,
    RemoveRequest,
    Request,
    RescanRequest,
    ResultMessage,
    ShareRequest,
    ShareResult,
    ShutdownRequest,
    StatusRequest,
    StatusResult,
    UiRequest,
    UiResult,
    UnfollowRequest,
    UninstallRequest,
    UnpinRequest,
    UpdateRequest,
    UploadsRequest,
    UploadsResult,
    WatchRequest,
)
from lanpeer_proto.messages import GameSummary

from lanpeer import doctor
from lanpeer.control import peer_commands, views
from lanpeer.control.offers import StillHashing, wait_hashed_offer, wait_offer
from lanpeer.control.update_plan import plan_update
from lanpeer.download.operations import Operation, OpKind
from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError
from lanpeer.library.disk import read_installed_version
from lanpeer.library.state import LocalGame
from lanpeer.net.peers import PeerInfo
from lanpeer.parts import Parts

log = logging.getLogger(__name__)

#: The parts ``status`` reports (all of them always run; the field stays for old clients).
PART_NAMES = ("library", "node", "downloads", "install")
# The one Any of this module: a handler's request type is the key it is registered under, so
# the table is checked by hand (``answer`` looks a request up by its own type).
Handler = Callable[[Any], Awaitable[Any]]


class WebAddress(Protocol):
    """What ``ui`` tells of the web UI (``lanpeer.web.WebUI``; the web UI sits above us)."""

    problem: str | None  # why it is not listening; None when it is

    @property
    def url(self) -> str | None: ...

    @property
    def url_with_token(self) -> str | None: ...


class ControlCommands:
    """Answers every control request; each ``LanpeerError`` becomes an error line upstream."""

    def __init__(
        self, parts: Parts, request_stop: Callable[[], None], *, web: WebAddress | None = None
    ) -> None:
        self._parts = parts
        self._request_stop = request_stop
        self._web = web
        # (name, size) of every game a peer offered: a stalled download's row keeps them.
        self._known: dict[str, tuple[str, int]] = {}
        self._handlers: dict[type[Request], Handler] = {
            StatusRequest: self.status,
            PeersRequest: self.peers,
            GamesRequest: self.games,
            DownloadRequest: self.download,
            InstallRequest: self.transaction,
            UpdateRequest: self.update,
            UninstallRequest: self.transaction,
            RemoveRequest: self.transaction,
            CancelRequest: self.cancel,
            OpsRequest: self.ops,
            WatchRequest: self.watch,
            RescanRequest: self.rescan,
            AddPeerRequest: self.add_peer,
            RemovePeerRequest: self.remove_peer,
            UploadsRequest: self.uploads,
            GameRequest: self.game,
            DoctorRequest: self.doctor,
            ShutdownRequest: self.shutdown,
            UiRequest: self.ui,
            PinRequest: self._keep_command,
            UnpinRequest: self._keep_command,
            FollowRequest: self._keep_command,
            UnfollowRequest: self._keep_command,
            DownloadAllRequest: self._keep_command,
            ShareRequest: self.share,
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
            uploads=len(node.uploads.sessions()),
            upload_rate=sum(node.uploads.rate(s) for s in node.uploads.sessions()),
            parts=dict.fromkeys(PART_NAMES, True),
        )

    async def peers(self, _request: PeersRequest) -> PeersResult:
        node, active = self._parts.node, self._parts.downloads.operations()
        return PeersResult(
            peers=[
                views.peer_entry(
                    peer,
                    rate_up=node.uploads.peer_rate(peer.peer_id),
                    rate_down=sum(op.peer_rates.get(peer.peer_id, 0.0) for op in active),
                )
                for peer in node.peers()
            ]
        )

    async def uploads(self, _request: UploadsRequest) -> UploadsResult:
        ledger = self._parts.node.uploads
        uploads = [
            views.upload_entry(s, ledger.names(s.peer_id), ledger.rate(s))
            for s in ledger.sessions()
        ]
        share = self._parts.share
        if share is not None:  # browsers on the HTTP share are uploads too (SPEC §9c)
            uploads += [views.share_upload_entry(d) for d in share.downloads()]
        return UploadsResult(uploads=uploads, total_bytes=ledger.total_bytes)

    async def games(self, _request: GamesRequest) -> GamesResult:
        ops = self.operations()
        busy = {op.game_id for op in ops}
        partial = {op.game_id: list(op.partial_sources) for op in ops}
        local, peers = self._parts.library.local_games(), self._parts.node.peers()
        installed = await asyncio.to_thread(installed_versions, local)
        self._remember(peers)
        holders = self._parts.node.swarm.partial_holders()
        games = views.merge_games(local, peers, busy, installed, self._known, partial, holders)
        return GamesResult(games=views.with_pins(games, self._parts.keep.keep.pins))

    def _remember(self, peers: Sequence[PeerInfo]) -> None:
        for peer in peers:
            for game_id, summary in peer.games.items():
                if game_id in self._known or len(self._known) < MAX_KNOWN_GAMES:
                    self._known[game_id] = (summary.name, summary.size)

    async def game(self, request: GameRequest) -> GameResult:
        games = (await self.games(GamesRequest())).games
        entry = next((g for g in games if g.id == request.game_id), None)
        if entry is None:
            raise UnknownGameError(
                f"{request.game_id} is neither here nor offered by a connected peer "
                "(see `peer-cli games`)"
            )
        local = next((g for g in self._parts.library.local_games() if g.id == entry.id), None)
        history = self._parts.events.history.entries()
        return GameResult(
            game=entry,
            path=str(local.path) if local is not None else None,
            operation=next((op for op in self.operations() if op.game_id == entry.id), None),
            history=[op for op in history if op.game_id == entry.id],
            pin=entry.pinned,
        )

    async def ops(self, request: OpsRequest) -> OpsResult:
        """Active operations, then finished ones: all (``--all``) or the standing failures."""
        active = self.operations()
        history = self._parts.events.history
        if request.all:
            return OpsResult(ops=history.entries() + active)
        running = {op.game_id for op in active}
        failed = [f.info() for f in history.standing_failures() if f.event.game_id not in running]
        return OpsResult(ops=failed + active)

    def operations(self) -> list[OperationInfo]:
        active = [views.operation_info(status) for status in self._parts.downloads.operations()]
        return active + self._parts.keep.ops_rows()  # auto-update waits and retries

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
            static_peers=[(s.address, s.error) for s in parts.node.static_peers()],
            catalog_path=parts.library.catalog_path,
            failures=parts.events.history.standing_failures(),
            auto_update=parts.keep.doctor_check(),
        )
        return DoctorResult(checks=await doctor.run_checks(inputs))

    async def ui(self, _request: UiRequest) -> UiResult:
        web = self._web
        if web is None:
            return UiResult(url=None, message="the web UI is off (lanpeerd runs with --no-web)")
        if web.url_with_token is None:
            return UiResult(url=None, message=f"the web UI is not running: {web.problem}")
        return UiResult(url=web.url_with_token, message=f"web UI at {web.url}")

    async def share(self, _request: ShareRequest) -> ShareResult:
        share = self._parts.share
        if share is None:
            return ShareResult(enabled=False)
        downloads = [views.share_download_entry(d) for d in share.downloads()]
        return ShareResult(enabled=True, url=share.url, link=share.link_url(), downloads=downloads)

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
        pinned = None if request.version else self._pinned(request.game_id)
        version = request.version or pinned  # `peer-cli pin` keeps a game at its version
        try:
            peer_id, summary = await wait_offer(node, request.game_id, version)
        except StillHashing:
            # A big game takes minutes to hash on a cold disk: wait as an operation (stalled,
            # with the reason in `ops`), never fail on a clock.
            waiting = downloads.submit_when_offered(
                request.game_id,
                partial(wait_hashed_offer, node, request.game_id, version),
                request.install,
                pin=version,
            )
            return AcceptedResult(
                message=f"download of {request.game_id} queued: waiting for the peers offering "
                "it to finish hashing it (`peer-cli ops` shows it)",
                game_id=request.game_id,
                operation=_info(waiting),
            )
        except UnknownGameError as exc:
            if pinned is None:
                raise
            raise UnknownGameError(
                f"{request.game_id} is pinned at {pinned} and {exc}; "
                f"`peer-cli unpin {request.game_id}` to take the newest"
            ) from exc
        peer_id, summary, which = self._variant(request, peer_id, summary)
        here = self._already_here(request.game_id, summary, request.install)
        if here is not None:
            return here
        manifest = await node.fetch_manifest(peer_id, request.game_id)
        operation = downloads.submit_download(
            request.game_id, manifest, request.install, summary=summary, pin=version,
            chosen=bool(request.variant or request.from_peer),
        )  # fmt: skip
        log.info("download of %s %s%s queued", request.game_id, summary.version, which)
        return AcceptedResult(
            message=f"download of {request.game_id} {summary.version}{which} queued",
            game_id=request.game_id,
            operation=_info(operation),
        )

    async def update(self, request: UpdateRequest) -> AcceptedResult:
        """Fetch a newer version a peer offers (its install step updates local/), else install
        a downloaded version newer than local/, else say it is up to date (no operation)."""
        game = self._local_game(request.game_id)
        if not game.installed:
            raise ConflictError(f"{game.id} is not installed; use `peer-cli install {game.id}`")
        installed = await asyncio.to_thread(read_installed_version, Path(game.path))
        offered = [
            str(peer.games[game.id].version)
            for peer in self._parts.node.peers()
            if peer.connected and game.id in peer.games
        ]
        downloaded = game.version if game.downloaded else None
        plan = plan_update(game.id, installed, downloaded, offered, request.version)
        if plan.kind == "up_to_date":
            return AcceptedResult(message=plan.message, game_id=game.id)
        if plan.kind == "reinstall":
            return await self.transaction(request)
        self._refuse_if_busy(game.id)
        fetch = DownloadRequest(game_id=game.id, version=plan.version, install=True)
        queued = await self.download(fetch)
        return AcceptedResult(message=plan.message, game_id=game.id, operation=queued.operation)

    async def transaction(
        self, request: InstallRequest | UpdateRequest | UninstallRequest | RemoveRequest
    ) -> AcceptedResult:
        kind = OpKind(request.cmd)
        running = self._parts.downloads.current(request.game_id)
        if running is not None:  # once: "not downloaded" while it was downloading
            raise ConflictError(
                f"{request.game_id} has a {running.kind} running ({running.state}); wait for it "
                f"(`peer-cli ops`) or `peer-cli cancel {request.game_id}`, then {request.cmd}"
            )
        game = self._local_game(request.game_id)
        _check_transaction(kind, game)
        if isinstance(request, RemoveRequest) and not request.yes:
            self._refuse_last_copy(game.id)
        operation = self._parts.installs.submit(kind, request.game_id)
        return AcceptedResult(
            message=f"{request.cmd} of {request.game_id} queued",
            game_id=request.game_id,
            operation=_info(operation),
        )

    async def cancel(self, request: CancelRequest) -> AcceptedResult:
        game_id = request.game_id
        if await self._parts.downloads.cancel(game_id):
            return AcceptedResult(message=f"cancelled the operation of {game_id}", game_id=game_id)
        # No operation: an auto-update may still wait for the game to exit, or retry.
        if await self._parts.keep.cancel(game_id):
            return AcceptedResult(
                message=f"cancelled the auto-update of {game_id}: not retried until a newer "
                "version is offered",
                game_id=game_id,
            )
        raise UnknownGameError(f"{game_id} has no queued or running operation to cancel")

    async def rescan(self, request: RescanRequest) -> AcceptedResult:
        if request.game_id is not None:
            self._local_game(request.game_id)
        await self._parts.library.rescan(request.game_id)
        what = request.game_id or "the library"
        return AcceptedResult(message=f"rescanned {what}", game_id=request.game_id)

    async def add_peer(self, request: AddPeerRequest) -> AcceptedResult:
        return await peer_commands.add_peer(self._parts.node, request)

    async def remove_peer(self, request: RemovePeerRequest) -> AcceptedResult:
        return peer_commands.remove_peer(self._parts.node, request)

    async def shutdown(self, _request: ShutdownRequest) -> AcceptedResult:
        self._request_stop()
        return AcceptedResult(message="lanpeerd is shutting down")

    async def _keep_command(
        self,
        request: PinRequest | UnpinRequest | FollowRequest | UnfollowRequest | DownloadAllRequest,
    ) -> Any:
        keep = self._parts.keep
        if isinstance(request, FollowRequest | DownloadAllRequest):
            return await getattr(keep, request.cmd)(request)
        return getattr(keep, request.cmd)(request)

    def _pinned(self, game_id: str) -> str | None:
        return self._parts.keep.keep.pins.get(game_id)

    def _variant(
        self, request: DownloadRequest, peer_id: str, summary: Any
    ) -> tuple[str, Any, str]:
        """The content to fetch when peers hold different bytes under one version: the one
        ``--from``/``--variant`` names, else the most sources (``newest_offer``'s choice)."""
        from lanpeer.download.mirror import choose_variant, find_peer, variants

        node = self._parts.node
        offered = variants(node.peers(), request.game_id)
        found = [v for v in offered if v.version == summary.version]
        if len(found) < 2 and request.from_peer is None and request.variant is None:
            return peer_id, summary, ""
        names = {p.peer_id: p.name for p in node.peers()}
        from_peer = find_peer(node.peers(), request.from_peer, names) if request.from_peer else None
        pool = offered if request.version is None and from_peer is not None else found
        chosen = choose_variant(pool, from_peer=from_peer, variant=request.variant)
        peer_id = from_peer or chosen.peers[0]
        summary = next(p.games[request.game_id] for p in node.peers() if p.peer_id == peer_id)
        which = f" (variant {chosen.manifest_hash.hex()[:12]}, {len(chosen.peers)} source(s))"
        return peer_id, summary, which if len(found) > 1 or request.variant else ""

    # ------------------------------------------------------------------ checks

    def _local_game(self, game_id: str) -> LocalGame:
        for game in self._parts.library.local_games():
            if game.id == game_id:
                return game
        raise UnknownGameError(f"{game_id} is not in this host's game roots (see `peer-cli games`)")

    def _already_here(
        self, game_id: str, offer: GameSummary, install: bool
    ) -> AcceptedResult | None:
        """That exact version is downloaded: install it if asked and needed, else say so.

        Once ``download`` of a game already here said "queued" and did nothing."""
        game = next((g for g in self._parts.library.local_games() if g.id == game_id), None)
        if game is None or not game.downloaded or game.manifest_hash != offer.manifest_hash:
            return None
        if install and not game.installed:
            operation = self._parts.installs.submit(OpKind.INSTALL, game_id)
            return AcceptedResult(
                message=f"{game_id} {offer.version} is already downloaded; installing it",
                game_id=game_id,
                operation=_info(operation),
            )
        state = "downloaded and installed" if game.installed else "downloaded"
        return AcceptedResult(
            message=f"{game_id} {offer.version} is already {state}: nothing to do",
            game_id=game_id,
        )

    def _refuse_last_copy(self, game_id: str) -> None:
        if not any(peer.connected and game_id in peer.games for peer in self._parts.node.peers()):
            raise ConflictError(
                f"no connected peer has {game_id}: this is the last copy on the LAN; "
                f"`peer-cli remove {game_id} --yes` deletes it anyway"
            )

    def _refuse_if_busy(self, game_id: str) -> None:
        if any(op.game_id == game_id for op in self.operations()):
            raise ConflictError(
                f"{game_id} already has an operation queued or running (see `peer-cli ops`)"
            )


def installed_versions(local_games: Sequence[LocalGame]) -> dict[str, str | None]:
    """What each installed game's local/ holds (one small file read per installed game)."""
    return {g.id: read_installed_version(Path(g.path)) for g in local_games if g.installed}


#: Games whose name and size are remembered: ten times a big party's library.
MAX_KNOWN_GAMES = 10_000


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
