"""GameDownload: one download from plan to fully staged, verified files (commit is the caller's).

Owns the order of steps: plan, resume state, free-space check, local (delta) copies, the chunk
scheduler, checkpoints, final flush. Every byte is BLAKE3-verified before it counts. It never
touches the game's live files except to read old-version chunks for the delta copy (and names
the unchanged ones to the swarm, which serves them through the library).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import blake3
from lanpeer_proto import units
from lanpeer_proto.messages import Manifest

from lanpeer.download.operations import OpState
from lanpeer.download.plan import VERSION_INI, ChunkRef, DownloadPlan, LocalCopy, make_plan
from lanpeer.download.progress import RateWindow, TransferCounters, TransferSnapshot
from lanpeer.download.scheduler import ChunkMismatch, ChunkScheduler, SchedulerSettings
from lanpeer.download.sources import SourceDirectory
from lanpeer.download.staging import PartDir, VerifiedChunks
from lanpeer.download.swarm import LiveFiles, Swarm, SwarmMember
from lanpeer.errors import DiskFullError
from lanpeer.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.5  # seconds between resume-state saves: at most this much work is redone
SPACE_MARGIN = 64 << 20  # headroom for the intent log, version.ini and filesystem metadata
COPY_BATCH = 16  # local chunk copies per worker-thread call: cancel stays prompt


@dataclass(slots=True)
class StagedDownload:
    """What commit needs: staged files (relative paths, without version.ini) and version.ini."""

    part: PartDir
    manifest_hash: bytes
    files: list[str]
    removed: list[str]  # files of the old version the new one no longer has
    version_ini: bytes
    counters: TransferCounters


def verify(chunk: ChunkRef, data: bytes) -> None:
    if len(data) != chunk.length or blake3.blake3(data).digest() != chunk.digest:
        raise ChunkMismatch(f"chunk {chunk.index} of {chunk.path!r} failed BLAKE3 verification")


def free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class GameDownload:
    def __init__(
        self,
        manifest: Manifest,
        game_dir: Path,
        directory: SourceDirectory,
        *,
        old_manifest: Manifest | None = None,
        limiter: TokenBucket | None = None,
        settings: SchedulerSettings | None = None,
        still_current: Callable[[], Awaitable[bool]] | None = None,
        on_state: Callable[[OpState], None] | None = None,
        on_progress: Callable[[], None] | None = None,
        space_margin: int = SPACE_MARGIN,
        swarm: Swarm | None = None,
    ) -> None:
        self.manifest, self.game_dir = manifest, game_dir
        self.plan: DownloadPlan = make_plan(manifest, old_manifest)
        self._old_hash = old_manifest.manifest_hash if old_manifest is not None else None
        self.part = PartDir(game_dir)
        self.counters = TransferCounters(bytes_total=self.plan.staged_bytes)
        self.rate = RateWindow()
        self.scheduler: ChunkScheduler | None = None
        self._directory, self._limiter, self._settings = directory, limiter, settings
        self._still_current = still_current
        self._on_state, self._on_progress = on_state, on_progress
        self._space_margin = space_margin
        self._swarm = swarm
        self._member: SwarmMember | None = None  # while we take part in the swarm
        self._verified: VerifiedChunks | None = None
        self._dirty = False

    async def run(self) -> StagedDownload:
        """Stage and verify every new or changed file; the part dir is left for commit."""
        self._verified = await asyncio.to_thread(self.part.load, self.manifest, self.plan.staged)
        missing = [c for c in self.plan.chunks() if not self._verified.has(c)]
        self.counters.bytes_resumed = self.plan.staged_bytes - sum(c.length for c in missing)
        await asyncio.to_thread(self._check_space)
        if self._swarm is None:
            await self._transfer(missing, self._directory)
        else:
            verified = self._verified
            held = [c for c in self.plan.chunks() if verified.has(c)]  # resume: advertise them
            joined = self._swarm.join(
                self.manifest, self.part.dir, held, self._directory, self._live_files()
            )
            async with joined as member:
                self._member = member
                try:
                    await self._transfer(missing, member.directory)
                finally:
                    self._member = None  # left: no longer serving any of it
        await asyncio.to_thread(self._finish)
        version_ini = await asyncio.to_thread(self._version_ini)
        files = [f.path for f in self.plan.staged if f.path != VERSION_INI]
        return StagedDownload(
            self.part,
            self.manifest.manifest_hash,
            files,
            self.plan.removed,
            version_ini,
            self.counters,
        )

    def _live_files(self) -> LiveFiles | None:
        """The unchanged files of a delta update: never in the part dir, served from the game
        dir as the installed version (the library's checks) while this download runs."""
        if self._old_hash is None or not self.plan.kept:
            return None
        return LiveFiles(self._old_hash, frozenset(self.plan.kept))

    def snapshot(self, now: float) -> TransferSnapshot:
        scheduler = self.scheduler
        return TransferSnapshot(
            bytes_done=self.counters.bytes_done,
            bytes_total=self.counters.bytes_total,
            rate=self.rate.rate(now),
            sources=tuple(scheduler.sources()) if scheduler else (),
            peer_rates=scheduler.peer_rates() if scheduler else {},
            partial_sources=tuple(scheduler.partial_sources()) if scheduler else (),
        )

    def _set_state(self, state: OpState) -> None:
        if self._on_state is not None:
            self._on_state(state)

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress()

    # -- steps ---------------------------------------------------------------------------------

    def _check_space(self) -> None:
        need = self.plan.staged_bytes - self.part.allocated_bytes() + self._space_margin
        free = free_bytes(self.game_dir)
        if free < need:
            raise DiskFullError(
                f"not enough free space for {self.manifest.game_id!r} in {self.game_dir.parent}: "
                f"{units.size(need)} needed (incl. {units.size(self._space_margin)} margin), "
                f"{units.size(free)} free; "
                "free some space and download again"
            )

    async def _transfer(self, missing: list[ChunkRef], directory: SourceDirectory) -> None:
        missing = await self._copy_local(missing)
        await self._fetch(missing, directory)
        await self._save()

    async def _copy_local(self, missing: list[ChunkRef]) -> list[ChunkRef]:
        """Delta update: take chunks the old version already has from local disk."""
        local = [c for c in missing if c.digest in self.plan.reusable]
        if not local:
            return missing
        self._set_state(OpState.COPYING)
        copied: set[ChunkRef] = set()
        for i in range(0, len(local), COPY_BATCH):
            batch = local[i : i + COPY_BATCH]
            done = await asyncio.to_thread(self._copy_batch, batch)
            copied.update(done)
            if self._member is not None:
                for chunk in done:
                    self._member.holds(chunk)  # delta-copied chunks are served too
            self._report()
        return [c for c in missing if c not in copied]

    def _copy_batch(self, batch: list[ChunkRef]) -> list[ChunkRef]:
        done = []
        for chunk in batch:
            src = self.plan.reusable[chunk.digest]
            data = self._read_local(src, chunk.length)
            if data is None or blake3.blake3(data).digest() != chunk.digest:
                continue  # the old file changed since it was hashed: fetch instead
            if self.part.write(chunk, data):
                self._mark(chunk)
                self.counters.bytes_copied += chunk.length
                self.counters.chunks_copied += 1
                done.append(chunk)
        return done

    def _read_local(self, src: LocalCopy, length: int) -> bytes | None:
        try:
            fd = os.open(self.game_dir / src.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return os.pread(fd, length, src.offset)
        finally:
            os.close(fd)

    async def _fetch(self, missing: list[ChunkRef], directory: SourceDirectory) -> None:
        for f in self.plan.staged:
            if f.size == 0:
                await asyncio.to_thread(self.part.ensure_file, f.path)
        self.scheduler = ChunkScheduler(
            self.manifest.game_id,
            self.manifest.manifest_hash,
            missing,
            directory,
            self._store,
            on_chunk=self._on_chunk,
            on_state=self._set_state,
            limiter=self._limiter,
            settings=self._settings,
            still_current=self._still_current,
            counters=self.counters,
            on_fetching=self._member.fetching if self._member is not None else None,
        )
        self._set_state(OpState.DOWNLOADING)
        failure: Exception | None = None
        async with asyncio.TaskGroup() as group:
            checkpoints = group.create_task(self._checkpoints())
            try:
                await self.scheduler.run()
            except Exception as exc:  # raised as itself below, not wrapped in a group
                failure = exc
            finally:
                checkpoints.cancel()
        if failure is not None:
            raise failure

    async def _store(self, chunk: ChunkRef, data: bytes) -> None:
        await asyncio.to_thread(self._verify_and_write, chunk, data)

    def _verify_and_write(self, chunk: ChunkRef, data: bytes) -> None:
        verify(chunk, data)
        self.part.write(chunk, data)

    def _on_chunk(self, chunk: ChunkRef, peer_id: str) -> None:
        self._mark(chunk)  # the scheduler has counted it in our counters
        if self._member is not None:
            self._member.holds(chunk)
        self.rate.add(time.monotonic(), chunk.length)
        self._report()

    def _mark(self, chunk: ChunkRef) -> None:
        assert self._verified is not None
        self._verified.mark(chunk)
        self._dirty = True

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY)
            try:
                await self._save()
            except OSError as exc:  # the final save after the last chunk raises it for real
                log.warning("%s: resume state not saved (%s); retried", self.game_dir, exc)
                self._dirty = True
            self._report()

    async def _save(self) -> None:
        if not self._dirty or self._verified is None:
            return
        self._dirty = False
        bits = self._verified.encode()
        await asyncio.to_thread(self.part.save, self.manifest.manifest_hash, bits)

    def _finish(self) -> None:
        try:
            self.part.finish()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"disk full while flushing {self.part.dir}") from exc
            raise

    def _version_ini(self) -> bytes:
        staged = self.part.dir / VERSION_INI
        source = staged if staged.exists() else self.game_dir / VERSION_INI
        return source.read_bytes()
