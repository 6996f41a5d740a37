"""``GameLibrary``: the games of this host, as the daemon and peers see them (SPEC §3, §6).

Owns the in-memory view (records, catalog, busy games, unavailable roots), its rev, the event
worker that turns watcher events into rescans, background hashing and the serving checks of
SPEC §4. All state changes happen on the event loop; disk and hash work runs in two small
executors (scans in one ordered thread, hashing in another). Never serves a game outside the
catalog, not downloaded, busy or on an unavailable root; never drops a game because its root
could not be read.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary, LibraryDelta, Manifest
from lanpeer_proto.paths import is_game_id, path_problem

from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError
from lanpeer.library import scanner
from lanpeer.library.catalog import CatalogEntry, load_catalog, write_catalog
from lanpeer.library.disk import FileStat, open_relative
from lanpeer.library.errors import CatalogError, ServeRefused
from lanpeer.library.index import GameRecord, LibraryIndex
from lanpeer.library.revisions import DEFAULT_HISTORY, RevisionLog
from lanpeer.library.watcher import (
    CatalogChanged,
    GameChanged,
    LibraryEvent,
    LibraryWatcher,
    ScanAll,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: SPEC §6: a full fallback scan every 300 s catches what the watcher missed.
FULL_SCAN_INTERVAL = 300.0
#: Enough for a burst of changes in many games; on overflow one full scan replaces them all.
EVENT_QUEUE_SIZE = 1024
#: Lets a burst of writes to one game settle into one rescan.
DEBOUNCE_SECONDS = 0.2
#: Manifests kept decoded in memory; the rest are rebuilt from the index on demand.
MANIFEST_CACHE = 32
_REV_KEY = "advertised"


@dataclass(frozen=True)
class LocalGame:
    """One game dir on this host, whatever its state."""

    id: str
    name: str
    version: str | None
    downloaded: bool
    installed: bool
    local_only: bool
    size: int
    root: Path
    path: Path
    manifest_hash: bytes | None
    hashed_bytes: int  # hashing progress: bytes done of ``hash_total`` (0/0 when idle)
    hash_total: int
    in_catalog: bool
    busy: bool
    root_available: bool


class GameLibrary:
    def __init__(
        self,
        roots: list[Path],
        state_dir: Path,
        catalog_path: Path | None = None,
        *,
        full_scan_interval: float = FULL_SCAN_INTERVAL,
        debounce: float = DEBOUNCE_SECONDS,
        history: int = DEFAULT_HISTORY,
        watch: bool = True,
        background_hashing: bool = True,
    ) -> None:
        if not roots:
            raise LanpeerError("no game root configured; pass at least one --games DIR")
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self.catalog_path = Path(os.path.abspath(catalog_path or self.roots[0] / "catalog.toml"))
        self._state_dir = state_dir
        self._full_scan_interval = full_scan_interval
        self._debounce = debounce
        self._history = history
        self._watch = watch
        self._background_hashing = background_hashing
        self._records: dict[str, GameRecord] = {}
        self._catalog: dict[str, CatalogEntry] = {}
        self._unavailable: dict[Path, str] = {}
        self._busy: set[str] = set()
        self._generation: Counter[str] = Counter()
        self._rescans: dict[str, asyncio.Future[None]] = {}
        self._rescan_pending: set[str] = set()
        self._hash_tasks: dict[str, asyncio.Task[Manifest]] = {}
        self._progress: dict[str, scanner.HashProgress] = {}
        self._manifests: dict[str, Manifest] = {}
        self._served: dict[str, tuple[bytes, dict[str, FileStat]]] = {}
        self._listeners: list[Callable[[int], None]] = []
        self._events: asyncio.Queue[LibraryEvent] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self._queued: set[LibraryEvent] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hash_wanted = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._scan_pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-scan")
        self._hash_pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-hash")
        self._index: LibraryIndex | None = None
        self._revlog = RevisionLog(history=history)
        self._watcher: LibraryWatcher | None = None
        self.game_scans = 0  # games inspected since start (tests and benchmarks read it)
        self.full_scans = 0
        self.files_hashed = 0  # files read and hashed (not reused from the index)

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> GameLibrary:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the index, scan (reusing unchanged fingerprints), then watch and hash."""
        self._index = await self._in_scan_thread(LibraryIndex, self._state_dir)
        self._records = await self._in_scan_thread(self._index.load_games)
        persisted = await self._in_scan_thread(self._index.get_meta, _REV_KEY)
        if persisted is not None:
            self._revlog = RevisionLog.from_bytes(persisted, self._history)
        await self._reload_catalog()
        await self._scan_all()
        self._publish()
        loop = asyncio.get_running_loop()
        if self._watch:
            self._watcher = LibraryWatcher(self.roots, self.catalog_path, self._post, loop)
            await self._in_scan_thread(self._watcher.start)
        self._spawn(self._consume_events())
        self._spawn(self._request_full_scans())
        if self._background_hashing:
            self._spawn(self._hash_in_background())
            self._hash_wanted.set()

    async def aclose(self) -> None:
        for progress in self._progress.values():
            progress.cancelled = True
        for task in [*self._tasks, *self._hash_tasks.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._hash_tasks.values(), return_exceptions=True)
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
        await asyncio.to_thread(self._hash_pool.shutdown, True)
        await asyncio.to_thread(self._scan_pool.shutdown, True)
        if self._index is not None:
            self._index.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _in_scan_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._scan_pool, fn, *args)

    @property
    def index(self) -> LibraryIndex:
        if self._index is None:
            raise LanpeerError("the game library is not started")
        return self._index

    # -- advertised library ----------------------------------------------------------------

    @property
    def library_rev(self) -> int:
        return self._revlog.rev

    @property
    def library_digest(self) -> bytes:
        return self._revlog.digest

    def snapshot(self) -> list[GameSummary]:
        """The advertised games: in the catalog, downloaded, not busy."""
        return self._revlog.snapshot()

    def delta_since(self, rev: int) -> LibraryDelta | None:
        """Changes since ``rev``; None when ``rev`` is too old or unknown (send a snapshot)."""
        return self._revlog.delta_since(rev)

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """``callback(library_rev)`` runs on the loop after every rev change."""
        self._listeners.append(callback)

    def unavailable_roots(self) -> dict[Path, str]:
        return dict(self._unavailable)

    def _advertised(self) -> dict[str, GameSummary]:
        games = {}
        for game_id, record in self._records.items():
            entry = self._catalog.get(game_id)
            if entry is None or not record.downloaded or game_id in self._busy:
                continue
            games[game_id] = GameSummary(
                id=game_id,
                name=entry.name,
                version=record.version or "",
                manifest_hash=record.manifest_hash,
                size=record.size,
                description=entry.description,
                genre=entry.genre,
                max_players=entry.max_players,
            )
        return games

    def _publish(self) -> None:
        """Recompute the advertised library; persist and announce a new rev if it changed."""
        if not self._revlog.apply(self._advertised()):
            return
        self.index.set_meta(_REV_KEY, self._revlog.to_bytes())  # one small row
        for callback in list(self._listeners):
            try:
                callback(self._revlog.rev)
            except Exception:
                log.exception("library listener %r failed", callback)

    # -- local view --------------------------------------------------------------------------

    def local_games(self) -> list[LocalGame]:
        return [self._local_game(self._records[g]) for g in sorted(self._records)]

    def _local_game(self, record: GameRecord) -> LocalGame:
        entry = self._catalog.get(record.game_id)
        progress = self._progress.get(record.game_id) or scanner.HashProgress()
        return LocalGame(
            id=record.game_id,
            name=entry.name if entry else record.game_id,
            version=record.version,
            downloaded=record.downloaded,
            installed=record.installed,
            local_only=record.installed and not record.downloaded,
            size=record.size,
            root=record.root,
            path=record.root / record.game_id,
            manifest_hash=record.manifest_hash,
            hashed_bytes=progress.done,
            hash_total=progress.total,
            in_catalog=entry is not None,
            busy=record.game_id in self._busy,
            root_available=record.root not in self._unavailable,
        )

    def game_dir(self, game_id: str) -> Path:
        record = self._records.get(game_id)
        if record is None:
            raise UnknownGameError(f"no game {game_id!r} in any game root")
        return record.root / game_id

    def game_dir_for_new(self, game_id: str) -> Path:
        """Where a download of ``game_id`` goes: its current dir, else the first available root."""
        if not is_game_id(game_id):
            raise UnknownGameError(f"{game_id!r} is not a valid game id")
        if game_id in self._records:
            return self.game_dir(game_id)
        for root in self.roots:
            if root not in self._unavailable and root.is_dir():
                return root / game_id
        raise LanpeerError("no game root is available; check that the game dirs are mounted")

    # -- catalog ---------------------------------------------------------------------------

    def add_catalog_entry(
        self,
        id: str,
        name: str,
        description: str | None = None,
        genre: str | None = None,
        max_players: int | None = None,
    ) -> None:
        """Add or replace an entry and rewrite the catalog file atomically."""
        if not is_game_id(id):
            raise CatalogError(f"{id!r} is not a valid game id")
        entry = CatalogEntry(id, name, description, genre, max_players)
        if self._catalog.get(id) == entry:
            return
        catalog = {**self._catalog, id: entry}
        write_catalog(self.catalog_path, catalog.values())
        self._catalog = catalog
        self._publish()
        self._hash_wanted.set()

    async def _reload_catalog(self) -> None:
        try:
            self._catalog = await self._in_scan_thread(load_catalog, self.catalog_path)
        except CatalogError as exc:
            log.warning("%s; keeping the previous catalog", exc)

    # -- scanning ----------------------------------------------------------------------------

    async def rescan(self, game_id: str | None = None) -> None:
        """Look at the disk again: one game (full walk) or the catalog and every root."""
        if game_id is None:
            await self._reload_catalog()
            await self._scan_all()
        else:
            await self._rescan_game(game_id)
        self._publish()
        self._hash_wanted.set()

    async def _scan_all(self) -> None:
        self.full_scans += 1
        scans = await self._in_scan_thread(
            lambda: [scanner.scan_root(root, self.index) for root in self.roots]
        )
        self._unavailable = {s.root: s.problem for s in scans if s.problem is not None}
        for problem in self._unavailable.values():
            log.warning("%s; its games are kept as they were", problem)
        found: dict[str, Path] = {}
        for scan in scans:
            for game_id in scan.game_ids:
                found.setdefault(game_id, scan.root)
        gone = [
            g
            for g, r in self._records.items()
            if g not in found and r.root not in self._unavailable
        ]
        await self._refresh(found, force=False, gone=gone)

    async def _rescan_game(self, game_id: str) -> None:
        """Rescan one game; a request during a rescan sets rescan-pending and loops once more."""
        running = self._rescans.get(game_id)
        if running is not None:
            self._rescan_pending.add(game_id)
            await asyncio.shield(running)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rescans[game_id] = done
        try:
            while True:
                self._rescan_pending.discard(game_id)
                await self._rescan_once(game_id)
                if game_id not in self._rescan_pending:
                    break
        finally:
            del self._rescans[game_id]
            done.set_result(None)

    async def _rescan_once(self, game_id: str) -> None:
        if not is_game_id(game_id):
            return
        available = [r for r in self.roots if r not in self._unavailable]
        root = await self._in_scan_thread(scanner.locate_game, available, game_id)
        record = self._records.get(game_id)
        if root is None and record is not None and record.root in self._unavailable:
            return  # its root is unavailable: keep it as it was
        found = {} if root is None else {game_id: root}
        await self._refresh(found, force=True, gone=[] if root else [game_id])

    async def _refresh(self, found: dict[str, Path], *, force: bool, gone: list[str]) -> None:
        async with self._write_lock:
            before = dict(self._records)
            changed = await self._in_scan_thread(
                lambda: scanner.refresh_games(found, before, self.index, force=force)
            )
            gone = [g for g in gone if g in self._records]
            if gone:
                await self._in_scan_thread(self.index.delete_games, gone)
            self.game_scans += len(found)
            for game_id, record in [*changed.items(), *((g, None) for g in gone)]:
                self._apply(game_id, record)

    def _apply(self, game_id: str, record: GameRecord | None) -> None:
        self._generation[game_id] += 1
        previous = self._records.pop(game_id, None)
        if record is not None:
            self._records[game_id] = record
        if previous is None or record is None or previous.manifest_hash != record.manifest_hash:
            self._manifests.pop(game_id, None)
            self._served.pop(game_id, None)
        progress = self._progress.get(game_id)
        if progress is not None:
            progress.cancelled = True  # its result would be discarded anyway

    # -- events ------------------------------------------------------------------------------

    def _post(self, event: LibraryEvent) -> None:
        """Queue an event (on the loop); duplicates coalesce, overflow becomes one full scan."""
        if isinstance(event, GameChanged):
            if event.game_id in self._busy:
                return  # gated: the operation's owner rescans when it ends
            if event.game_id in self._rescans:
                self._rescan_pending.add(event.game_id)
                return
        if event in self._queued:
            return
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("library event queue full; scanning all roots instead")
            self._queued.clear()
            while not self._events.empty():
                self._events.get_nowait()
            event = ScanAll("event queue overflow")
            self._events.put_nowait(event)
        self._queued.add(event)

    async def _consume_events(self) -> None:
        while True:
            batch = [await self._events.get()]
            await asyncio.sleep(self._debounce)
            while not self._events.empty():
                batch.append(self._events.get_nowait())
            self._queued.difference_update(batch)
            try:
                await self._handle(batch)
            except (OSError, LanpeerError):
                log.exception("library rescan failed; the next event or full scan retries")

    async def _handle(self, batch: list[LibraryEvent]) -> None:
        if any(isinstance(e, CatalogChanged | ScanAll) for e in batch):
            await self._reload_catalog()
        if any(isinstance(e, ScanAll) for e in batch):
            await self._scan_all()
        else:
            for event in batch:
                if isinstance(event, GameChanged) and event.game_id not in self._busy:
                    await self._rescan_game(event.game_id)
        self._publish()
        self._hash_wanted.set()

    async def _request_full_scans(self) -> None:
        while True:
            await asyncio.sleep(self._full_scan_interval)
            self._post(ScanAll("periodic fallback scan"))

    # -- busy gating -------------------------------------------------------------------------

    def operation(self, game_id: str) -> GameOperation:
        """Mark ``game_id`` busy for the duration of ``with`` / ``async with``.

        Busy games are not served or advertised and their watcher events are dropped. On exit
        the game is rescanned: awaited with ``async with``, queued with plain ``with``.
        """
        return GameOperation(self, game_id)

    def _begin(self, game_id: str) -> None:
        if game_id in self._busy:
            raise ConflictError(f"game {game_id!r} already has an operation running")
        self._busy.add(game_id)
        self._generation[game_id] += 1
        progress = self._progress.get(game_id)
        if progress is not None:
            progress.cancelled = True
        self._publish()

    def _end(self, game_id: str) -> None:
        self._busy.discard(game_id)
        self._generation[game_id] += 1

    # -- manifests and serving ---------------------------------------------------------------

    def _check_served(self, game_id: str) -> GameRecord:
        record = self._records.get(game_id)
        if record is None or game_id not in self._catalog:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"game {game_id!r} is not served here")
        if not record.downloaded or game_id in self._busy:
            raise ServeRefused(ErrorCode.BUSY, f"game {game_id!r} is busy or not downloaded")
        if record.root in self._unavailable:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"game {game_id!r} is not reachable now")
        return record

    async def wait_manifest(self, game_id: str, *, for_peer: bool = True) -> Manifest:
        """The current manifest, hashing first if needed (off the loop).

        ``for_peer=False`` (local use, e.g. delta downloads) skips the catalog and busy checks.
        """
        for _attempt in range(3):
            record = self._check_served(game_id) if for_peer else self._downloaded(game_id)
            cached = self._manifests.get(game_id)
            if cached is not None and cached.manifest_hash == record.manifest_hash:
                return cached
            try:
                return await asyncio.shield(self._ensure_hashed(game_id))
            except scanner.HashCancelled:
                continue
        raise ServeRefused(ErrorCode.BUSY, f"game {game_id!r} keeps changing; try again later")

    def _downloaded(self, game_id: str) -> GameRecord:
        record = self._records.get(game_id)
        if record is None or not record.downloaded:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"game {game_id!r} is not downloaded here")
        return record

    def _ensure_hashed(self, game_id: str) -> asyncio.Task[Manifest]:
        task = self._hash_tasks.get(game_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._hash(game_id))
            self._hash_tasks[game_id] = task
            task.add_done_callback(self._hash_done)
        return task

    def _hash_done(self, task: asyncio.Task[Manifest]) -> None:
        for game_id, running in list(self._hash_tasks.items()):
            if running is task:
                del self._hash_tasks[game_id]
        if not task.cancelled() and task.exception() is not None:
            log.debug("hashing ended without a manifest: %s", task.exception())

    async def _hash(self, game_id: str) -> Manifest:
        record, generation = self._records.get(game_id), self._generation[game_id]
        if record is None:
            raise scanner.HashCancelled(f"{game_id} is gone")
        if record.manifest_hash is not None:
            manifest = await self._in_scan_thread(scanner.load_manifest, record, self.index)
            if manifest is not None:
                return self._remember(game_id, manifest)
        progress = scanner.HashProgress()
        self._progress[game_id] = progress
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._hash_pool, scanner.hash_game, record, self.index, progress
            )
        except OSError as exc:
            raise scanner.HashCancelled(f"{game_id}: {exc}") from exc
        finally:
            self._progress.pop(game_id, None)
        self.files_hashed += result.files_hashed
        async with self._write_lock:
            if self._generation[game_id] != generation:
                raise scanner.HashCancelled(f"{game_id} changed while it was hashed")
            record = replace(record, manifest_hash=result.manifest.manifest_hash, size=result.size)
            await self._in_scan_thread(self.index.put_manifest, record, result.files)
            self._records[game_id] = record
        self._publish()
        return self._remember(game_id, result.manifest)

    def _remember(self, game_id: str, manifest: Manifest) -> Manifest:
        self._manifests[game_id] = manifest
        while len(self._manifests) > MANIFEST_CACHE:
            del self._manifests[next(iter(self._manifests))]
        return manifest

    async def _hash_in_background(self) -> None:
        while True:
            await self._hash_wanted.wait()
            self._hash_wanted.clear()
            for game_id in self._needs_hash():
                try:
                    await asyncio.shield(self._ensure_hashed(game_id))
                except (scanner.HashCancelled, LanpeerError):
                    pass  # the change that cancelled it queues the game again
                except Exception:
                    log.exception("hashing %s failed", game_id)

    def _needs_hash(self) -> list[str]:
        return [
            g
            for g, r in sorted(self._records.items())
            if r.manifest_hash is None
            and r.downloaded
            and g in self._catalog
            and g not in self._busy
            and r.root not in self._unavailable
        ]

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        """An O_RDONLY fd of a served file, opened fd-relative without following symlinks.

        Raises ServeRefused with BAD_PATH, NOT_FOUND, BUSY or STALE_MANIFEST. Caller closes.
        """
        problem = path_problem(path)
        if problem is not None:
            raise ServeRefused(ErrorCode.BAD_PATH, problem)
        record = self._check_served(game_id)
        if record.manifest_hash is None or record.manifest_hash != manifest_hash:
            raise ServeRefused(ErrorCode.STALE_MANIFEST, f"{game_id}: that version is not served")
        expected = self._served_files(record).get(path)
        if expected is None:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"{game_id}: no file {path!r}")
        try:
            fd = open_relative(record.root / game_id, path)
        except FileNotFoundError:
            self._post(GameChanged(game_id))
            raise ServeRefused(ErrorCode.NOT_FOUND, f"{game_id}: {path!r} is gone") from None
        st = os.fstat(fd)
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (
            expected.size,
            expected.mtime_ns,
            expected.inode,
        ):
            os.close(fd)
            self._post(GameChanged(game_id))
            raise ServeRefused(ErrorCode.STALE_MANIFEST, f"{game_id}: {path!r} changed on disk")
        return fd

    def _served_files(self, record: GameRecord) -> dict[str, FileStat]:
        """Stats of the files the current manifest was made of (one indexed query, cached)."""
        assert record.manifest_hash is not None
        cached = self._served.get(record.game_id)
        if cached is None or cached[0] != record.manifest_hash:
            rows = self.index.file_hashes(record.game_id)
            cached = (record.manifest_hash, {p: f.stat for p, f in rows.items()})
            self._served[record.game_id] = cached
        return cached[1]


class GameOperation:
    """The busy mark of one game; see ``GameLibrary.operation``."""

    def __init__(self, library: GameLibrary, game_id: str) -> None:
        self._library = library
        self.game_id = game_id

    def __enter__(self) -> GameOperation:
        self._library._begin(self.game_id)
        return self

    def __exit__(self, *exc: object) -> None:
        self._library._end(self.game_id)
        self._library._post(GameChanged(self.game_id))

    async def __aenter__(self) -> GameOperation:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self._library._end(self.game_id)
        await self._library.rescan(self.game_id)
