"""What the library reacts to, and the bounded queue that carries it to the event worker.

Owns the event types (a game changed, the catalog changed, scan everything) and the rules of
the queue: duplicates coalesce until taken, a full queue collapses into one ``ScanAll``, a taken
event is handed out in debounced batches. Lives on the event loop; never blocks and never grows.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Enough for a burst of changes in many games; on overflow one full scan replaces them all.
EVENT_QUEUE_SIZE = 1024


@dataclass(frozen=True)
class GameChanged:
    game_id: str


@dataclass(frozen=True)
class CatalogChanged:
    pass


@dataclass(frozen=True)
class ScanAll:
    reason: str


LibraryEvent = GameChanged | CatalogChanged | ScanAll


class EventQueue:
    def __init__(self, maxsize: int = EVENT_QUEUE_SIZE) -> None:
        self._queue: asyncio.Queue[LibraryEvent] = asyncio.Queue(maxsize)
        self._queued: set[LibraryEvent] = set()  # waiting in the queue, not yet taken

    def put(self, event: LibraryEvent) -> None:
        if event in self._queued:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("library event queue full; scanning all roots instead")
            self._queued.clear()
            while not self._queue.empty():
                self._queue.get_nowait()
            event = ScanAll("event queue overflow")
            self._queue.put_nowait(event)
        self._queued.add(event)

    async def wait_batch(self, debounce: float) -> list[LibraryEvent]:
        """The next event plus whatever else arrived within ``debounce`` seconds of it."""
        batch = [await self._queue.get()]
        await asyncio.sleep(debounce)
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        self._queued.difference_update(batch)
        return batch
