"""``LibraryRescans``: how ``GameLibrary`` looks at the disk again, and when.

Owns the rescans (one game, or the catalog and every root), their per-game gating (one rescan of
a game at a time; a request meanwhile sets rescan-pending and the rescan loops once more), the
event worker that turns watcher events into debounced rescans, the periodic fallback scan and
the scan counters. Runs on the event loop; disk work goes to the library's one scan thread.
Never drops a game because its root could not be read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

from lanpeer_proto.paths import is_game_id

from lanpeer.library import scanner
from lanpeer.library.events import CatalogChanged, EventQueue, GameChanged, LibraryEvent, ScanAll
from lanpeer.library.hashing import GameHasher
from lanpeer.library.index import GameRecord, LibraryIndex
from lanpeer.library.serving import ServedFiles
from lanpeer.library.state import LibraryState

log = logging.getLogger(__name__)


class Running(NamedTuple):
    """The parts a started library has (``GameLibrary._started``)."""

    games_index: LibraryIndex
    hasher: GameHasher
    served: ServedFiles


class LibraryRescans:
    def __init__(
        self,
        roots: list[Path],
        state: LibraryState,
        *,
        started: Callable[[], Running],
        in_scan_thread: Callable[..., Awaitable[Any]],
        write_lock: asyncio.Lock,
        reload_catalog: Callable[[], Awaitable[None]],
        watch_new_roots: Callable[[], Awaitable[None]],
        settled: Callable[[], None],
        debounce: float,
        full_scan_interval: float,
        event_queue_size: int,
    ) -> None:
        self._roots = roots
        self._state = state
        self._started = started
        self._in_scan_thread = in_scan_thread
        self._write_lock = write_lock
        self._reload_catalog = reload_catalog
        self._watch_new_roots = watch_new_roots
        self._settled = settled  # publish the library, let the hasher look: after every rescan
        self._debounce = debounce
        self._full_scan_interval = full_scan_interval
        self._events = EventQueue(event_queue_size)
        self._rescans: dict[str, asyncio.Future[None]] = {}
        self._rescan_pending: set[str] = set()
        self.game_scans = 0  # games inspected since start (tests and benchmarks read it)
        self.full_scans = 0

    # -- scanning ----------------------------------------------------------------------------

    async def rescan(self, game_id: str | None = None) -> None:
        """Look at the disk again: one game (full walk) or the catalog and every root."""
        if game_id is None:
            await self._reload_catalog()
            await self._scan_all()
        else:
            await self._rescan_game(game_id)
        self._settled()

    async def _scan_all(self) -> None:
        self.full_scans += 1
        index = self._started().games_index
        scans = await self._in_scan_thread(
            lambda: [scanner.scan_root(root, index) for root in self._roots]
        )
        unavailable = self._state.unavailable = {s.root: s.problem for s in scans if s.problem}
        for problem in unavailable.values():
            log.warning("%s; its games are kept as they were", problem)
        await self._watch_new_roots()
        found: dict[str, Path] = {}
        for scan in scans:
            for game_id in scan.game_ids:
                found.setdefault(game_id, scan.root)
        gone = [
            g
            for g, r in self._state.records.items()
            if g not in found and r.root not in unavailable
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
        unavailable = self._state.unavailable
        available = [r for r in self._roots if r not in unavailable]
        root = await self._in_scan_thread(scanner.locate_game, available, game_id)
        record = self._state.records.get(game_id)
        if root is None and record is not None and not await self._root_available(record.root):
            return  # its root is unavailable: keep the game as it was
        found = {} if root is None else {game_id: root}
        await self._refresh(found, force=True, gone=[] if root else [game_id])

    async def _root_available(self, root: Path) -> bool:
        """Asked afresh before dropping a game: a root may have gone since the last full scan."""
        if root in self._state.unavailable:
            return False
        index = self._started().games_index
        problem = await self._in_scan_thread(scanner.root_problem, root, index)
        if problem is not None:
            log.warning("%s; its games are kept as they were", problem)
            self._state.unavailable[root] = problem
        return problem is None

    async def _refresh(self, found: dict[str, Path], *, force: bool, gone: list[str]) -> None:
        index = self._started().games_index
        async with self._write_lock:
            before = dict(self._state.records)
            changed = await self._in_scan_thread(
                lambda: scanner.refresh_games(found, before, index, force=force)
            )
            gone = [g for g in gone if g in self._state.records]
            if gone:
                await self._in_scan_thread(index.delete_games, gone)
            self.game_scans += len(found)
            for game_id, record in [*changed.items(), *((g, None) for g in gone)]:
                self._apply(game_id, record)

    def _apply(self, game_id: str, record: GameRecord | None) -> None:
        _, hasher, served = self._started()
        self._state.records.pop(game_id, None)
        if record is not None:
            self._state.records[game_id] = record
        else:
            hasher.cancel(game_id)
        hasher.forget(game_id)
        served.forget(game_id)

    # -- events ------------------------------------------------------------------------------

    def post(self, event: LibraryEvent) -> None:
        """Queue an event (on the loop) unless its game is busy or already being rescanned."""
        if isinstance(event, GameChanged):
            if event.game_id in self._state.busy:
                return  # gated: the operation's owner rescans when it ends
            if event.game_id in self._rescans:
                self._rescan_pending.add(event.game_id)
                return
        self._events.put(event)

    async def consume_events(self) -> None:
        """The event worker: debounced batches of events become rescans, until cancelled."""
        while True:
            batch = await self._events.wait_batch(self._debounce)
            try:
                await self._handle(batch)
            except Exception:  # the worker must outlive any one bad game dir
                log.exception("library rescan failed; the next event or full scan retries")

    async def _handle(self, batch: list[LibraryEvent]) -> None:
        if any(isinstance(e, ScanAll) for e in batch):
            await self.rescan()
            return
        if any(isinstance(e, CatalogChanged) for e in batch):
            await self._reload_catalog()
        for event in batch:
            if isinstance(event, GameChanged) and event.game_id not in self._state.busy:
                await self._rescan_game(event.game_id)
        self._settled()

    async def request_full_scans(self) -> None:
        """Post a full scan every ``full_scan_interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._full_scan_interval)
            self.post(ScanAll("periodic fallback scan"))
