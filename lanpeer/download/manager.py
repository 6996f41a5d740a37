"""DownloadManager: the download seam the daemon uses (submit, cancel, operations, events).

Owns a download's life around ``GameDownload``: where the game lives, the old version for delta,
a source whose content changed, cancel cleanup, commit inside ``library.operation`` (busy gating),
catalog entry, rescan, install afterwards. Never serves files and never edits ``local/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from lanpeer_proto.messages import GameSummary, Manifest

from lanpeer.download.operations import (
    Lane,
    Listener,
    Operation,
    OperationQueue,
    OpKind,
    OpState,
)
from lanpeer.download.progress import OperationStatus
from lanpeer.download.resolve import (
    ManifestResolver,
    PeerDirectory,
    peer_manifest_resolver,
    stall_hold,
)
from lanpeer.download.scheduler import NoSourcesError, SchedulerSettings, SourceVersionGone
from lanpeer.download.sources import SourceDirectory
from lanpeer.download.staging import PART_DIR, PartDir
from lanpeer.download.swarm import Swarm
from lanpeer.download.transfer import SPACE_MARGIN, GameDownload, StagedDownload
from lanpeer.errors import DiskFullError, LanpeerError, UnknownGameError
from lanpeer.install import commit_download
from lanpeer.library import GameLibrary
from lanpeer.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Installer = Callable[[str, Path], Awaitable[None]]
# Finds what a resumed download continues with: (manifest, the offering peer's summary).
OfferFinder = Callable[[], Awaitable[tuple[Manifest, GameSummary | None]]]


@dataclass(frozen=True)
class UnfinishedDownload:
    """A download a previous run left staged in ``game_dir/.lanpeer.part``."""

    game_id: str
    game_dir: Path
    manifest_hash: bytes
    then_install: bool
    pin: str | None = None  # the version asked for; None: the newest


class DownloadManager:
    """Downloads as operations of ``queue`` (its own, or the daemon's shared with installs).

    ``offers`` is the peer table (``PeerNode``): it picks the catalog entry of what was
    downloaded and, unless ``manifest_resolver`` is given, notices a source's content change.
    ``installer`` runs "install afterwards"; without one, such a download is refused.
    """

    def __init__(
        self,
        library: GameLibrary,
        sources: SourceDirectory,
        *,
        offers: PeerDirectory | None = None,
        queue: OperationQueue | None = None,
        download_lanes: int = 2,
        general_lanes: int = 1,
        max_download: float | None = None,
        installer: Installer | None = None,
        manifest_resolver: ManifestResolver | None = None,
        settings: SchedulerSettings | None = None,
        space_margin: int = SPACE_MARGIN,
        swarm: Swarm | None = None,
    ) -> None:
        self.library, self.sources, self.offers = library, sources, offers
        self.swarm = swarm  # SPEC §7a: serve what we verified, use other downloaders
        self.limiter = TokenBucket(max_download) if max_download else None
        self.queue = queue or OperationQueue(
            {Lane.DOWNLOAD: download_lanes, Lane.GENERAL: general_lanes}
        )
        self.settings = settings
        self.space_margin = space_margin
        if manifest_resolver is None and offers is not None:
            manifest_resolver = peer_manifest_resolver(offers)
        self._installer = installer
        self._resolver = manifest_resolver
        # game_id -> the version a stalled download may move to (``stall_hold``), taken by
        # ``_stage`` when it restarts: at most one per game.
        self._moves: dict[str, Manifest] = {}
        self._group: asyncio.TaskGroup | None = None  # ``async with``: the queue runs in it
        self._runner: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.queue.run()

    async def __aenter__(self) -> DownloadManager:
        """Run the queue in a task group of our own (the daemon runs ``run`` in its group)."""
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._runner = self._group.create_task(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        group, self._group = self._group, None
        if group is not None:
            if self._runner is not None:
                self._runner.cancel()
            await group.__aexit__(None, None, None)

    # -- the seam ------------------------------------------------------------------------------

    def add_listener(self, cb: Listener) -> None:
        self.queue.add_listener(cb)

    def operations(self) -> list[OperationStatus]:
        return self.queue.statuses()

    def current(self, game_id: str) -> Operation | None:
        """The game's queued or running operation, if any."""
        return self.queue.get(game_id)

    def submit_download(
        self,
        game_id: str,
        manifest: Manifest,
        then_install: bool = False,
        *,
        summary: GameSummary | None = None,
        pin: str | None = None,
        chosen: bool = False,
    ) -> Operation:
        """``pin``: the version the user named; kept across restarts, never swapped for a
        newer one mid-download (without it, a source's newer content restarts the download).
        ``chosen``: the user chose this variant (``--variant``/``--from``): a stall never
        swaps it for another variant of the same version (``stall_hold``)."""
        self._require_installer(then_install)

        async def body(op: Operation) -> None:
            await self._download(op, manifest, then_install, summary, pin, chosen)

        async def cancel_queued() -> None:
            await self._discard_leftovers(game_id)

        return self.queue.submit(game_id, OpKind.DOWNLOAD, body, cancel_queued)

    def submit_resume(self, unfinished: UnfinishedDownload, find: OfferFinder) -> Operation:
        """Queue a download a previous run left staged: ``stalled`` until ``find`` gives the
        version to continue with (a different one wipes the staging), then as ``submit_download``.
        """
        game_id = unfinished.game_id
        self._require_installer(unfinished.then_install)

        async def body(op: Operation) -> None:
            op.move(OpState.STALLED)
            try:
                manifest, summary = await find()
            except asyncio.CancelledError:
                if op.cancel_requested:
                    await self._discard_leftovers(game_id, unfinished.game_dir)
                raise
            op.started = time.monotonic()  # the download's time, not the wait for a source
            await self._download(op, manifest, unfinished.then_install, summary, unfinished.pin)

        async def cancel_queued() -> None:
            await self._discard_leftovers(game_id, unfinished.game_dir)

        return self.queue.submit(game_id, OpKind.DOWNLOAD, body, cancel_queued)

    def submit_when_offered(
        self,
        game_id: str,
        find: Callable[[Operation], Awaitable[tuple[Manifest, GameSummary]]],
        then_install: bool = False,
        pin: str | None = None,
    ) -> Operation:
        """Queue a download whose version is not served yet (its peers are still hashing it):
        ``stalled``, with ``find`` saying why in ``op.reason``, until ``find`` has an offer."""
        self._require_installer(then_install)

        async def body(op: Operation) -> None:
            op.move(OpState.STALLED)
            manifest, summary = await find(op)
            op.waiting(None)
            op.started = time.monotonic()  # the download's time, not the wait for a hash
            await self._download(op, manifest, then_install, summary, pin)

        async def cancel_queued() -> None:
            await self._discard_leftovers(game_id)

        return self.queue.submit(game_id, OpKind.DOWNLOAD, body, cancel_queued)

    def _require_installer(self, then_install: bool) -> None:
        if then_install and self._installer is None:
            raise LanpeerError("this download manager has no installer: cannot install afterwards")

    async def cancel(self, game_id: str) -> bool:
        return await self.queue.cancel(game_id) is not None

    def unfinished_downloads(self) -> dict[str, bytes]:
        """game_id -> manifest_hash of downloads a previous run left staged (resume at startup:
        submit them again with that manifest, or the newest one; staging of another version is
        wiped then). Lists the game roots only; call it at startup, before any download runs."""
        return {u.game_id: u.manifest_hash for u in self.unfinished()}

    def unfinished(self) -> list[UnfinishedDownload]:
        """Every staged download with its resume record (the first root holding a game wins)."""
        found: dict[str, UnfinishedDownload] = {}
        for root in self.library.roots:
            for game_dir in sorted(root.iterdir()) if root.is_dir() else []:
                part = PartDir(game_dir)
                manifest_hash = part.saved_manifest_hash()
                if manifest_hash is not None and game_dir.name not in found:
                    found[game_dir.name] = UnfinishedDownload(
                        game_dir.name,
                        game_dir,
                        manifest_hash,
                        part.saved_then_install(),
                        part.saved_pin(),
                    )
        return list(found.values())

    # -- a download ----------------------------------------------------------------------------

    async def _download(
        self,
        op: Operation,
        manifest: Manifest,
        then_install: bool,
        summary: GameSummary | None,
        pin: str | None = None,
        chosen: bool = False,
    ) -> None:
        game_dir, created = self._game_dir(op.game_id)
        old = await self._old_manifest(op.game_id, game_dir)
        if old is not None and old.manifest_hash == manifest.manifest_hash:
            return  # already this exact version
        job = self._job(op, manifest, game_dir, old, pin, chosen)
        job.part.then_install, job.part.pin = then_install, pin  # recorded with the resume state
        staged = await self._stage(op, job, game_dir, created, old, chosen)
        summary = summary or self._offered_summary(op.game_id, staged)
        await self._commit_shielded(op, game_dir, staged, summary)
        if then_install:
            assert self._installer is not None  # checked when the download was queued
            op.move(OpState.INSTALLING)
            await self._installer(op.game_id, game_dir)

    def _job(
        self,
        op: Operation,
        manifest: Manifest,
        game_dir: Path,
        old: Manifest | None,
        pin: str | None = None,
        chosen: bool = False,
    ) -> GameDownload:
        async def still_current() -> bool:
            """Asked while stalled: False moves the download to the version the resolver
            offers, only where ``stall_hold`` allows it; else it says why it stays."""
            if self._resolver is None or pin is not None:  # a pinned version is never swapped
                return True
            newest = await self._resolver(op.game_id)
            if newest is None or newest.manifest_hash == manifest.manifest_hash:
                return True
            # Ours: listed by the scheduler (full and partial, not banned) or offered whole.
            own = op.snapshot(time.monotonic()).sources or self.sources.sources_for(
                op.game_id, manifest.manifest_hash
            )
            hold = stall_hold(manifest, newest, own_sources_left=bool(own), chosen=chosen)
            if hold is not None:
                op.waiting(hold)
                return True
            self._moves[op.game_id] = newest  # what _stage restarts with
            return False

        job = GameDownload(
            manifest,
            game_dir,
            self.sources,
            old_manifest=old,
            limiter=self.limiter,
            settings=self.settings,
            still_current=still_current,
            on_state=lambda state: _move_saying_why(op, state),
            on_progress=lambda: self.queue.progressed(op),
            space_margin=self.space_margin,
            swarm=self.swarm,
        )
        op.track(job)
        return job

    async def _stage(
        self,
        op: Operation,
        job: GameDownload,
        game_dir: Path,
        created: bool,
        old: Manifest | None,
        chosen: bool = False,
    ) -> StagedDownload:
        """Stage the newest version; a failure closes the staging (and cleans up as it should)."""
        while True:
            try:
                return await job.run()
            except SourceVersionGone:
                pass
            except BaseException as exc:
                await self._discard_after(op, job, created, exc)
                raise
            try:
                newer = await self._newer_version(op, job)
            except BaseException as exc:
                await self._discard_after(op, job, created, exc)
                raise
            log.info("%s: source content changed; restarting with the new version (%s, was %s)",
                     op.game_id, newer.version, job.manifest.version)  # fmt: skip
            await asyncio.to_thread(job.part.close)
            then_install, pin = job.part.then_install, job.part.pin
            job = self._job(op, newer, game_dir, old, pin, chosen)  # load() wipes the old staging
            job.part.then_install, job.part.pin = then_install, pin

    async def _newer_version(self, op: Operation, job: GameDownload) -> Manifest:
        newer = self._moves.pop(op.game_id, None)  # the move still_current allowed
        if newer is not None:
            return newer
        chase = self._resolver is not None and job.part.pin is None
        newer = await self._resolver(op.game_id) if chase and self._resolver else None
        if newer is None or newer.manifest_hash == job.manifest.manifest_hash:
            raise NoSourcesError(
                f"no peer serves the version of {op.game_id!r} being downloaded any more"
            )
        return newer

    async def _discard_after(
        self, op: Operation, job: GameDownload, created: bool, exc: BaseException
    ) -> None:
        """A user's cancel or a full disk deletes the staging; anything else keeps it (resume)."""
        if isinstance(exc, asyncio.CancelledError):
            remove = op.cancel_requested
        else:
            remove = isinstance(exc, DiskFullError)  # the space back
        await self._discard(job.part, created, remove)

    async def _commit_shielded(
        self, op: Operation, game_dir: Path, staged: StagedDownload, summary: GameSummary | None
    ) -> None:
        """Once files start moving the commit rolls forward: a cancel now comes too late."""
        op.move(OpState.COMMITTING)
        async with asyncio.TaskGroup() as group:
            commit = group.create_task(self._commit(op.game_id, game_dir, staged, summary))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                await commit
                raise

    async def _commit(
        self, game_id: str, game_dir: Path, staged: StagedDownload, summary: GameSummary | None
    ) -> None:
        async with self.library.operation(game_id):  # not served while files move; rescan on exit
            await asyncio.to_thread(
                commit_download,
                game_dir,
                staged.part.dir,
                staged.files,
                staged.version_ini,
                removed=staged.removed,
            )
            if summary is not None:
                self.library.add_catalog_entry(
                    summary.id,
                    summary.name,
                    description=summary.description,
                    genre=summary.genre,
                    max_players=summary.max_players,
                )

    def _offered_summary(self, game_id: str, staged: StagedDownload) -> GameSummary | None:
        """The catalog entry of a peer offering exactly what was downloaded (SPEC §3)."""
        if self.offers is None:
            return None
        for peer in self.offers.peers():
            game = peer.games.get(game_id)
            if game is not None and game.manifest_hash == staged.manifest_hash:
                return game
        return None

    # -- where the game lives ------------------------------------------------------------------

    def _existing_dir(self, game_id: str) -> Path | None:
        try:
            found = self.library.game_dir(game_id)
        except UnknownGameError:
            return None  # a new game: the caller picks a root for it
        return found if found.is_dir() else None

    def _game_dir(self, game_id: str) -> tuple[Path, bool]:
        """The game dir and whether this download created it (then cancel removes it)."""
        existing = self._existing_dir(game_id)
        if existing is None:
            existing = Path(self.library.game_dir_for_new(game_id))
        if existing.is_dir():
            return existing, {p.name for p in existing.iterdir()} <= {PART_DIR}
        existing.mkdir(parents=True)
        return existing, True

    async def _old_manifest(self, game_id: str, game_dir: Path) -> Manifest | None:
        if not (game_dir / "version.ini").is_file():
            return None
        try:
            manifest: Manifest = await self.library.wait_manifest(game_id, for_peer=False)
        except Exception as exc:
            log.info("%s: no manifest of the local version (%s); no delta copy", game_id, exc)
            return None
        return manifest

    async def _discard(self, part: PartDir, created: bool, remove: bool) -> None:
        """Close the download's files (waiting for writes in flight); on cancel or disk full
        also delete the staging, and the game dir if this download created it."""
        await asyncio.to_thread(part.close)
        if remove:
            await asyncio.to_thread(part.remove)
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(part.dir.parent)  # only if empty: local/, .sync/ etc. keep it

    async def _discard_leftovers(self, game_id: str, game_dir: Path | None = None) -> None:
        game_dir = game_dir or self._existing_dir(game_id)
        if game_dir is not None and (game_dir / PART_DIR).exists():
            created = {p.name for p in game_dir.iterdir()} <= {PART_DIR}
            await self._discard(PartDir(game_dir), created, True)


#: Why a download stalls mid-way (SPEC §7: it continues when a source returns).
STALL_REASON = "no connected peer serves this version now; it continues when one returns"


def _move_saying_why(op: Operation, state: OpState) -> None:
    op.reason = STALL_REASON if state is OpState.STALLED else None
    op.move(state)
