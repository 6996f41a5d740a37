"""Keeping this host in step with the party: auto-update, pins, ``download --all``, ``follow``.

Owns the glue between the pure policies (``lanpeer.download.autoupdate``, ``.mirror``), the
persisted ``KeepList`` (``lanpeer.pins``) and the daemon parts: it queues downloads and updates
in the normal lanes, asks ``lanpeer.procuse`` whether a game runs, answers the pin/follow/mirror
commands and shows the updater's waits and failures in ``ops`` and doctor. Never touches the
socket, never extracts or moves game files itself.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lanpeer_proto.control import (
    AcceptedResult,
    DoctorCheck,
    DownloadAllRequest,
    FollowRequest,
    KeepEvent,
    MirrorEntry,
    MirrorResult,
    OperationInfo,
    PinRequest,
    ProgressEvent,
    UnfollowRequest,
    UnpinRequest,
)

from lanpeer import procuse
from lanpeer.control.events import EventHub
from lanpeer.download import DownloadManager
from lanpeer.download.autoupdate import (
    AutoUpdater,
    Candidate,
    Mode,
    UpdateCancelled,
    UpdateRecord,
    update_candidates,
)
from lanpeer.download.mirror import Pick, choose_variant, find_peer, fitting, mirror_picks, variants
from lanpeer.download.operations import Operation
from lanpeer.download.resolve import version_key
from lanpeer.download.transfer import SPACE_MARGIN
from lanpeer.errors import LanpeerError, UnknownGameError
from lanpeer.library import GameLibrary
from lanpeer.library.disk import read_installed_version
from lanpeer.library.state import LocalGame
from lanpeer.net.node import PeerNode
from lanpeer.net.peers import PeerEvent, PeerEventKind
from lanpeer.pins import KeepList

log = logging.getLogger(__name__)

WAITING_STATES = ("waiting: in use",)
# (peer, game) pairs already warned about as too big for the disk: one line each, not one per
# library change; bounded like the library (1,000 games) times a few followed peers.
MAX_TOLD_FULL = 4096


class KeepInStep:
    """One per daemon: ``run()`` in its task group; ``on_peer_event`` from the peer node.

    ``start_update(game_id)`` queues the update transaction of a game (the daemon's general
    lane) and returns its operation.
    """

    def __init__(
        self,
        library: GameLibrary,
        node: PeerNode,
        downloads: DownloadManager,
        events: EventHub,
        keep: KeepList,
        mode: Mode,
        start_update: Callable[[str], Operation],
    ) -> None:
        self._library, self._node, self._downloads = library, node, downloads
        self._events = events
        self._start_update = start_update
        self.keep = keep
        self.updater = AutoUpdater(mode, self._candidates, self)
        self.updater.add_listener(self._publish)
        self._follow_due: set[str] = set()
        self._follow_wake = asyncio.Event()
        self._told_full: set[tuple[str, str]] = set()  # (peer, game) already logged as too big

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._follow_due.update(self.keep.follows)  # catch up with what changed while we were off
        await self._finish_interrupted_updates()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.updater.run())
            group.create_task(self._follow_loop())

    async def _finish_interrupted_updates(self) -> None:
        """At start: an installed game whose local/ is older than its download (an update that
        waited for the game to exit when the daemon stopped) is updated like any other."""
        if self.updater.mode == "off":
            return
        games = [g for g in self._library.local_games() if g.installed and g.downloaded]
        installed = await asyncio.to_thread(
            lambda: {g.id: read_installed_version(Path(g.path)) for g in games}
        )
        for game in games:
            old = installed.get(game.id)
            if old is None or game.version is None or game.id in self.keep.pins:
                continue
            if version_key(old) < version_key(game.version):
                log.info("auto-update: %s has %s downloaded, %s installed", game.id,
                         game.version, old)  # fmt: skip
                self.updater.request(Candidate(game.id, old, game.version))

    def on_peer_event(self, event: PeerEvent) -> None:
        if event.kind not in (PeerEventKind.UP, PeerEventKind.LIBRARY):
            return
        self.updater.poke()
        if event.peer_id in self.keep.follows:
            self._follow_due.add(event.peer_id)
            self._follow_wake.set()

    async def _follow_loop(self) -> None:
        while True:
            if not self._follow_due:
                self._follow_wake.clear()
                await self._follow_wake.wait()
            peer_id = self._follow_due.pop()
            install = self.keep.follows.get(peer_id)
            if install is None or not self._connected(peer_id):
                continue  # unfollowed meanwhile, or gone: its next peer_up brings it back
            try:
                result = await self.mirror(peer_id, None, install, following=True)
            except LanpeerError as exc:
                log.warning("follow %s: %s", peer_id[:12], exc)
                continue
            except Exception:  # a bug here must not stop the daemon's task group
                log.exception("follow %s failed", peer_id[:12])
                continue
            if result.queued:
                log.info("follow %s: %s", peer_id[:12], result.message)

    # -- the policy's view of the daemon --------------------------------------------------------

    def _candidates(self) -> list[Candidate]:
        library, node = self._library, self._node
        return update_candidates(
            self.updater.mode, library.local_games(), node.peers(), self.keep.pins
        )

    def _connected(self, peer_id: str) -> bool:
        return any(p.peer_id == peer_id and p.connected for p in self._node.peers())

    def _local(self, game_id: str) -> LocalGame | None:
        return next((g for g in self._library.local_games() if g.id == game_id), None)

    # -- UpdateActions ---------------------------------------------------------------------------

    def busy(self, game_id: str) -> bool:
        return self._downloads.current(game_id) is not None

    def installed(self, game_id: str) -> bool:
        game = self._local(game_id)
        return game is not None and bool(game.installed)

    async def download(self, game_id: str, version: str) -> None:
        here = self._local(game_id)
        if here is not None and here.downloaded and here.version == version:
            return  # already downloaded (its update failed or was interrupted)
        node, downloads = self._node, self._downloads
        chosen = choose_variant(variants(node.peers(), game_id), version=version)
        manifest = await node.fetch_manifest(chosen.peers[0], game_id)
        summary = next(
            p.games[game_id] for p in node.peers() if p.peer_id == chosen.peers[0]
        )  # the offer we chose: its catalog entry comes along
        op = downloads.submit_download(game_id, manifest, False, summary=summary)
        await _finished(op)

    async def update(self, game_id: str) -> None:
        await _finished(self._start_update(game_id))

    async def in_use(self, game_id: str) -> list[int]:
        local = Path(self._library.game_dir(game_id)) / "local"
        return await asyncio.to_thread(procuse.holders, local)

    async def wait_released(self, pids: list[int], timeout: float) -> None:  # noqa: ASYNC109
        await procuse.wait_released(pids, timeout)

    def _publish(self, record: UpdateRecord) -> None:
        """The updater's own states (its steps' operations publish theirs): waits, failures
        and a cancel (which ends a wait that had no operation to say so)."""
        if record.state in (*WAITING_STATES, "cancelled") or record.error is not None:
            self._events.publish(
                ProgressEvent(
                    game_id=record.game_id,
                    kind="update",
                    state=record.state,
                    bytes_done=0,
                    bytes_total=0,
                )
            )

    # -- commands ----------------------------------------------------------------------------

    async def cancel(self, game_id: str) -> bool:
        """``peer-cli cancel GAME`` found no operation: cancel the auto-update waiting for the
        game to exit, or retrying; False when there is none either."""
        return await self.updater.cancel(game_id)

    def pin(self, request: PinRequest) -> AcceptedResult:
        version = request.version
        if version is None:
            game = self._local(request.game_id)
            if game is None or game.version is None:
                raise UnknownGameError(
                    f"{request.game_id} is not downloaded here; name the version: "
                    f"`peer-cli pin {request.game_id} VERSION`"
                )
            version = str(game.version)
        self.keep.pin(request.game_id, version)
        self.updater.forget(request.game_id)
        log.info("pinned %s at %s", request.game_id, version)
        self._events.publish(KeepEvent(action="pin", game_id=request.game_id, version=version))
        return AcceptedResult(
            message=f"{request.game_id} is pinned at {version}: auto-update leaves it, "
            "`download` fetches that version",
            game_id=request.game_id,
        )

    def unpin(self, request: UnpinRequest) -> AcceptedResult:
        version = self.keep.unpin(request.game_id)
        if version is None:
            raise UnknownGameError(f"{request.game_id} is not pinned")
        self._events.publish(KeepEvent(action="unpin", game_id=request.game_id, version=version))
        self.updater.poke()
        return AcceptedResult(
            message=f"{request.game_id} is no longer pinned (was {version})",
            game_id=request.game_id,
        )

    async def follow(self, request: FollowRequest) -> AcceptedResult:
        peer_id = self._find_peer(request.peer)
        self.keep.follow(peer_id, request.install)
        self._follow_due.add(peer_id)
        self._follow_wake.set()
        self._events.publish(
            KeepEvent(
                action="follow",
                peer_id=peer_id,
                name=self._peer_name(peer_id),
                install=request.install,
            )
        )
        return AcceptedResult(
            message=f"following {self._name(peer_id)}: its games are downloaded as they appear"
        )

    def unfollow(self, request: UnfollowRequest) -> AcceptedResult:
        peer_id = self._find_peer(request.peer, known=list(self.keep.follows))
        if not self.keep.unfollow(peer_id):
            raise UnknownGameError(f"{self._name(peer_id)} is not followed")
        self._events.publish(
            KeepEvent(action="unfollow", peer_id=peer_id, name=self._peer_name(peer_id))
        )
        return AcceptedResult(message=f"no longer following {self._name(peer_id)}")

    async def download_all(self, request: DownloadAllRequest) -> MirrorResult:
        peer_id = self._find_peer(request.from_peer) if request.from_peer else None
        return await self.mirror(peer_id, request.match, request.install)

    async def mirror(
        self, peer_id: str | None, match: str | None, install: bool, *, following: bool = False
    ) -> MirrorResult:
        """Queue what ``peer_id`` (or every peer) offers that this host lacks or has older."""
        node, downloads = self._node, self._downloads
        picks = [
            p
            for p in mirror_picks(
                self._library.local_games(),
                node.peers(),
                from_peer=peer_id,
                match=match,
                pins=self.keep.pins,
            )
            if downloads.current(p.game_id) is None
        ]
        count = fitting(picks, self._free_bytes(), SPACE_MARGIN, install)
        local = {g.id: g for g in self._library.local_games()}
        queued = []
        for pick in picks[:count]:
            here = local.get(pick.game_id)
            if install and here is not None and here.installed and here.version is not None:
                # An update of an installed game: the updater's path, which waits while it runs.
                candidate = Candidate(pick.game_id, here.version, pick.summary.version)
                self.updater.request(candidate, asked=not following)
                queued.append(_entry(pick))
                continue
            manifest = await node.fetch_manifest(pick.peer_id, pick.game_id)
            downloads.submit_download(pick.game_id, manifest, install, summary=pick.summary)
            queued.append(_entry(pick))
        stopped = _entry(picks[count]) if count < len(picks) else None
        message = self._mirror_message(queued, stopped, picks)
        if stopped is not None and following:
            key = (peer_id or "", stopped.game_id)
            if key not in self._told_full:
                if len(self._told_full) >= MAX_TOLD_FULL:
                    self._told_full.clear()  # then some warnings repeat: harmless
                self._told_full.add(key)
                log.warning("follow: %s", message)
        return MirrorResult(message=message, queued=queued, stopped_at=stopped)

    def _mirror_message(
        self, queued: list[MirrorEntry], stopped: MirrorEntry | None, picks: list[Pick]
    ) -> str:
        total = sum(e.size for e in queued)
        if not picks:
            return "nothing to download: this host has every offered game at the newest version"
        text = f"queued {len(queued)} game(s), {_mib(total)}, smallest first"
        if stopped is not None:
            text += (
                f"; stopped at {stopped.game_id} ({_mib(stopped.size)}): it does not fit in the "
                f"{_mib(self._free_bytes())} free on the game root after those "
                f"({len(picks) - len(queued)} game(s) left out; free space and run it again)"
            )
        return text

    def _free_bytes(self) -> int:
        root = Path(self._library.game_dir_for_new("x")).parent
        try:
            return shutil.disk_usage(root).free
        except OSError:
            return 0

    def _find_peer(self, text: str, known: list[str] | None = None) -> str:
        peers = self._node.peers()
        names = {p.peer_id: p.name for p in peers}
        if known is not None and text in known:
            return text
        return find_peer(peers, text, names)

    def _peer_name(self, peer_id: str) -> str:
        return next((p.name for p in self._node.peers() if p.peer_id == peer_id), "")

    def _name(self, peer_id: str) -> str:
        name = self._peer_name(peer_id)
        return f"{name} ({peer_id[:12]})" if name else peer_id[:12]

    # -- what ops and doctor show --------------------------------------------------------------

    def ops_rows(self) -> list[OperationInfo]:
        """The updater's waits and failed attempts (its running steps are real operations)."""
        now = time.monotonic()
        return [
            OperationInfo(
                game_id=r.game_id,
                kind="update",
                state=r.state,
                lane="auto",
                error=r.error,
                retry_in=None if r.retry_at is None else max(0.0, r.retry_at - now),
            )
            for r in self.updater.records.values()
            if r.state in WAITING_STATES or r.error is not None
        ]

    def _cancelled(self) -> list[UpdateRecord]:
        """Cancelled attempts whose version this host still lacks (a later `download` or
        `update` of it by hand makes the record moot)."""
        found = []
        for record in self.updater.records.values():
            here = self._local(record.game_id)
            if record.state == "cancelled" and (here is None or here.version != record.version):
                found.append(record)
        return found

    def doctor_check(self) -> DoctorCheck:
        mode = self.updater.mode
        failed = [r for r in self.updater.records.values() if r.error is not None]
        waiting = [r for r in self.updater.records.values() if r.state in WAITING_STATES]
        pins = ", ".join(f"{g} at {v}" for g, v in sorted(self.keep.pins.items()))
        summary = f"auto-update: {mode}" + (f"; pinned: {pins}" if pins else "")
        if waiting:
            summary += "; waiting (game in use): " + ", ".join(r.game_id for r in waiting)
        if cancelled := self._cancelled():
            summary += "; cancelled, not retried until a newer version: " + ", ".join(
                f"{r.game_id} {r.version}" for r in cancelled
            )
        if not failed:
            return DoctorCheck(
                name="auto-update", status="ok" if mode != "off" else "info", summary=summary
            )
        lines = [
            f"{r.game_id} {r.version}: {r.error} ({r.failures} failed, {r.state})" for r in failed
        ]
        return DoctorCheck(
            name="auto-update",
            status="warn",
            summary=summary + "; failing: " + "; ".join(lines),
            hint="`peer-cli ops` shows each retry; `peer-cli pin GAME` stops updating one",
        )


async def _finished(op: Operation) -> None:
    await op.wait_finished()
    if not op.ok:
        if op.state == "cancelled":
            raise UpdateCancelled(f"the {op.kind} of {op.game_id} was cancelled")
        raise LanpeerError(op.error or f"the {op.kind} of {op.game_id} {op.state}")


def _entry(pick: Pick) -> MirrorEntry:
    return MirrorEntry(
        game_id=pick.game_id,
        version=pick.summary.version,
        size=pick.summary.size,
        peer_id=pick.peer_id,
    )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
