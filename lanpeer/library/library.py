"""``GameLibrary``: the games of this host, as the daemon and peers see them (SPEC §3, §6).

Owns the lifecycle (index, watcher, worker tasks), the advertised library and its rev, busy marks,
the catalog and what is served; ``LibraryRescans`` (``rescans``) owns the rescans and the event
worker that turns watcher events into them. All state changes happen on the event loop; disk
work runs in one ordered scan thread, hashing in ``GameHasher``'s threads. Never drops a game
because its root could not be read.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary, HashStatus, LibraryDelta, Manifest
from lanpeer_proto.paths import is_game_id, path_problem

from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError
from lanpeer.library.catalog import CatalogEntry, add_entry, catalog_stamp, load_catalog
from lanpeer.library.disk import FileStat
from lanpeer.library.errors import CatalogError, ServeRefused
from lanpeer.library.events import EVENT_QUEUE_SIZE, GameChanged, LibraryEvent
from lanpeer.library.hashing import GameHasher
from lanpeer.library.index import LibraryIndex
from lanpeer.library.manifest import CHUNK_SIZE
from lanpeer.library.manifest_store import LibraryManifests
from lanpeer.library.rescans import LibraryRescans, Running
from lanpeer.library.revisions import DEFAULT_HISTORY, RevisionLog
from lanpeer.library.serving import ServedFiles
from lanpeer.library.state import LibraryState, LocalGame
from lanpeer.library.watcher import LibraryWatcher

log = logging.getLogger(__name__)
T = TypeVar("T")

#: SPEC §6: a full fallback scan every 300 s catches what the watcher missed.
FULL_SCAN_INTERVAL = 300.0
#: Lets a burst of writes to one game settle into one rescan.
DEBOUNCE_SECONDS = 0.2
#: Coalesces the rev bumps of a burst of hashed games into one (and one push to peers).
PUBLISH_DELAY = 0.05


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
        event_queue_size: int = EVENT_QUEUE_SIZE,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if not roots:
            raise LanpeerError("no game root configured; pass at least one --games DIR")
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self.catalog_path = Path(os.path.abspath(catalog_path or self.roots[0] / "catalog.toml"))
        self._state_dir = state_dir
        self._history = history
        self._watch = watch
        self._background_hashing = background_hashing
        # Manifest chunk size; tests pass small ones so small games still span many chunks.
        self._chunk_size = chunk_size
        self._state = LibraryState()
        self._listeners: list[Callable[[int], None]] = []
        self._group: asyncio.TaskGroup | None = None  # every task of the library runs in it
        self._tasks: set[asyncio.Task[None]] = set()  # the group's tasks, to cancel at close
        self._write_lock = asyncio.Lock()
        self._scan_pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-scan")
        self._index: LibraryIndex | None = None
        self._hasher: GameHasher | None = None
        self._served: ServedFiles | None = None
        self._revlog = RevisionLog(history=history)
        self._watcher: LibraryWatcher | None = None
        self._watching = asyncio.Event()  # set once the watcher is up (or will never be)
        self._publish_timer: asyncio.TimerHandle | None = None
        self._catalog_stamp: tuple[int, int, int] | None = None  # of the catalog last read
        self._rescans = LibraryRescans(
            self.roots, self._state, started=self._started, in_scan_thread=self._in_scan_thread,
            write_lock=self._write_lock, reload_catalog=self._reload_catalog,
            watch_new_roots=self._watch_new_roots, settled=self._settled, debounce=debounce,
            full_scan_interval=full_scan_interval, event_queue_size=event_queue_size,
        )  # fmt: skip

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
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> None:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        index = self._index = await self._in_scan_thread(LibraryIndex, self._state_dir)
        store = LibraryManifests(
            self._state, index, self._in_scan_thread, self._write_lock, self._publish_soon
        )
        self._hasher = GameHasher(store, self._chunk_size)
        await self._hasher.start()
        self._served = ServedFiles(index, lambda game_id: self._post(GameChanged(game_id)))
        self._state.records = await self._in_scan_thread(index.load_games)
        self._revlog = await self._in_scan_thread(index.load_revisions, self._history)
        await self.rescan()
        if self._watch:
            self._watcher = LibraryWatcher(
                self.roots, self.catalog_path, self._post, asyncio.get_running_loop()
            )
            self._spawn(self._start_watcher, self._watcher)
        else:
            self._watching.set()
        self._spawn(self._rescans.consume_events)
        self._spawn(self._rescans.request_full_scans)
        if self._background_hashing:
            self._spawn(self._hasher.run_in_background)

    async def aclose(self) -> None:
        if self._publish_timer is not None:
            self._publish_timer.cancel()
        group, self._group = self._group, None
        for task in list(self._tasks):
            task.cancel()
        if group is not None:
            await group.__aexit__(None, None, None)
        if self._hasher is not None:
            await self._hasher.aclose()
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
            self._watcher = None
        await asyncio.to_thread(self._scan_pool.shutdown, wait=True, cancel_futures=True)
        if self._index is not None:
            self._index.close()
            self._index = None

    async def _start_watcher(self, watcher: LibraryWatcher) -> None:
        """Set up inotify watches off the startup path, then scan once for what they missed."""
        try:
            await asyncio.to_thread(watcher.start)
            await self.rescan()
        except OSError as exc:  # e.g. the inotify watch limit (fs.inotify.max_user_watches)
            log.warning("cannot watch the game roots (%s); relying on the periodic scan", exc)
        finally:
            self._watching.set()

    async def wait_watching(self) -> None:
        """Until filesystem events are being delivered (at once if watching is off)."""
        await self._watching.wait()

    def _spawn(self, fn: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        """Run ``fn(*args)`` in the library's task group; its failure is logged, never silent."""
        if self._group is None:  # closed (or never started): nothing may run any more
            log.debug("library closed; %s not started", fn)
            return
        task = self._group.create_task(_logged(fn, *args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _in_scan_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._scan_pool, fn, *args)

    def _started(self) -> Running:
        if self._index is None or self._hasher is None or self._served is None:
            raise LanpeerError("the game library is not started")
        return Running(self._index, self._hasher, self._served)

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
        return dict(self._state.unavailable)

    def _publish_soon(self) -> None:
        if self._publish_timer is None:
            loop = asyncio.get_running_loop()
            self._publish_timer = loop.call_later(PUBLISH_DELAY, self._publish)

    def _publish(self) -> None:
        """Recompute the advertised library; persist and announce a new rev if it changed."""
        if self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None
        if not self._revlog.apply(self._state.advertised()):
            return
        self._started().games_index.save_revisions(self._revlog)  # a few small rows, on the loop
        for callback in list(self._listeners):
            try:
                callback(self._revlog.rev)
            except Exception:
                log.exception("library listener %r failed", callback)

    # -- local view --------------------------------------------------------------------------

    @property
    def files_hashed(self) -> int:
        """Files read and hashed since start (cached chunk hashes not counted)."""
        return self._hasher.files_hashed if self._hasher else 0

    def hash_status(self, game_id: str) -> HashStatus:
        """How far hashing the served game ``game_id`` has got (a waiting peer asks).

        Raises ServeRefused (NOT_FOUND, BUSY) when it is not served here."""
        record = self._state.served(game_id)
        hasher = self._started().hasher
        progress = hasher.progress(game_id)
        hashed = record.manifest_hash is not None
        if hashed or progress is None:  # done, or waiting for its turn in the hasher
            done, total = (record.size if hashed else 0), record.size
        else:
            done = progress.done  # the thread sets the total as it starts
            total = max(progress.total or record.size, done)
        return HashStatus(
            game_id=game_id,
            hashed=hashed,
            hashed_bytes=done,
            total_bytes=total,
            host_hashed_bytes=hasher.bytes_hashed,
        )

    def local_games(self) -> list[LocalGame]:
        records = self._state.records
        progress = self._hasher.progress if self._hasher else lambda _g: None
        return [self._state.local_game(records[g], progress(g)) for g in sorted(records)]

    def game_dir(self, game_id: str) -> Path:
        record = self._state.records.get(game_id)
        if record is None:
            raise UnknownGameError(f"no game {game_id!r} in any game root")
        return record.root / game_id

    def game_dir_for_new(self, game_id: str) -> Path:
        """Where a download of ``game_id`` goes: its current dir, else the first available root."""
        if not is_game_id(game_id):
            raise UnknownGameError(f"{game_id!r} is not a valid game id")
        if game_id in self._state.records:
            return self.game_dir(game_id)
        for root in self.roots:
            if root not in self._state.unavailable and root.is_dir():
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
        """Add or replace an entry and rewrite the catalog file atomically (a small write on the
        loop; entries added to the file by hand meanwhile are kept)."""
        if not is_game_id(id):
            raise CatalogError(f"{id!r} is not a valid game id")
        entry = CatalogEntry(id, name, description, genre, max_players)
        if self._state.catalog.get(id) == entry:
            return
        self._state.catalog = add_entry(self.catalog_path, entry, self._state.catalog)
        self._catalog_stamp = catalog_stamp(self.catalog_path)
        self._publish()
        self._started().hasher.want()

    async def _reload_catalog(self) -> None:
        stamp = await self._in_scan_thread(catalog_stamp, self.catalog_path)
        if stamp is not None and stamp == self._catalog_stamp:
            return
        try:
            self._state.catalog = await self._in_scan_thread(load_catalog, self.catalog_path)
        except CatalogError as exc:
            log.warning("%s; keeping the previous catalog", exc)
        else:
            self._catalog_stamp = stamp

    # -- rescans (``LibraryRescans``) ---------------------------------------------------------

    async def rescan(self, game_id: str | None = None) -> None:
        """Look at the disk again: one game (full walk) or the catalog and every root."""
        await self._rescans.rescan(game_id)

    @property
    def game_scans(self) -> int:
        """Games inspected since start (tests and benchmarks read it)."""
        return self._rescans.game_scans

    @property
    def full_scans(self) -> int:
        return self._rescans.full_scans

    async def _watch_new_roots(self) -> None:
        """After a full scan: watch roots that have appeared (once the watcher is up)."""
        if self._watching.is_set() and self._watcher is not None:
            try:
                await self._in_scan_thread(self._watcher.watch_new_roots)
            except OSError as exc:
                log.warning("cannot watch a game root (%s); the periodic scan covers it", exc)

    def _post(self, event: LibraryEvent) -> None:
        """A watcher or serving event: queued for the event worker (unless gated)."""
        self._rescans.post(event)

    def _settled(self) -> None:
        """After a rescan: publish what changed and let the hasher pick up new work."""
        self._publish()
        self._started().hasher.want()

    # -- busy gating -------------------------------------------------------------------------

    def operation(self, game_id: str) -> GameOperation:
        """Mark ``game_id`` busy for the duration of ``with`` / ``async with``.

        Busy games are not served or advertised and their watcher events are dropped. On exit
        the game is rescanned: awaited with ``async with``, started (not awaited) with ``with``.
        """
        return GameOperation(self, game_id)

    def _begin(self, game_id: str) -> None:
        if game_id in self._state.busy:
            raise ConflictError(f"game {game_id!r} already has an operation running")
        self._state.busy.add(game_id)
        self._publish()

    def _end(self, game_id: str) -> None:
        self._state.busy.discard(game_id)

    # -- manifests and serving ---------------------------------------------------------------

    async def wait_manifest(self, game_id: str, *, for_peer: bool = True) -> Manifest:
        """The current manifest, hashing first if needed (off the loop).

        Raises ServeRefused. ``for_peer=False`` (local use, e.g. delta downloads) skips the
        catalog and busy checks; the game must still be downloaded.
        """
        manifest = await self._started().hasher.wait_manifest(game_id, for_peer=for_peer)
        advertised = self._revlog.games.get(game_id)
        if advertised is not None and advertised.manifest_hash != manifest.manifest_hash:
            self._publish()  # whoever asked sees the summary and the manifest agree
        return manifest

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        """An O_RDONLY fd of a served file, opened fd-relative without following symlinks.

        Raises ServeRefused with BAD_PATH, NOT_FOUND, BUSY or STALE_MANIFEST. Caller closes.
        """
        problem = path_problem(path)
        if problem is not None:
            raise ServeRefused(ErrorCode.BAD_PATH, problem)
        record = self._state.served(game_id)
        if record.manifest_hash is None or record.manifest_hash != manifest_hash:
            raise ServeRefused(ErrorCode.STALE_MANIFEST, f"{game_id}: that version is not served")
        return self._started().served.open(record, path)

    def cached_crc32s(self, game_id: str) -> dict[str, int | None]:
        """The CRC-32 cached per file of the game's current manifest (None: not yet computed).

        A blocking index read: call it in a worker thread, like ``store_crc32``.
        """
        return self._started().games_index.file_crc32s(game_id)

    def store_crc32(self, game_id: str, fd: int, path: str, crc32: int) -> bool:
        """Cache the CRC-32 of the served file open as ``fd``: kept for that version only."""
        st = os.fstat(fd)
        stat = FileStat(path, st.st_size, st.st_mtime_ns, st.st_ino)
        return self._started().games_index.put_crc32(game_id, stat, crc32)


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
        self._library._spawn(self._library.rescan, self.game_id)  # now, not after the debounce

    async def __aenter__(self) -> GameOperation:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self._library._end(self.game_id)
        await self._library.rescan(self.game_id)


async def _logged(fn: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    """A library task whose exception would otherwise end the whole task group: log it.
    (The coroutine is made here: a task cancelled before it starts leaves none un-awaited.)"""
    try:
        await fn(*args)
    except Exception:
        log.exception("library task %s%r failed", getattr(fn, "__qualname__", fn), args)
