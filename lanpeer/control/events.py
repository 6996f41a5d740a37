"""Fan-out of daemon events to control-socket subscribers (``watch``, ``--wait``).

Owns bounded per-subscriber queues. Never blocks a publisher: a full queue drops its oldest
line, and a subscriber that lost anything but progress is marked ``lagged``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from lanpeer_proto.control import Event, FinishedEvent, ProgressEvent

from lanpeer.control.history import OperationHistory

# 1024 lines is about 10 s of progress for 10 parallel operations at 10 updates/s: a client that
# falls further behind than that is not reading and only gets the newest lines.
SUBSCRIBER_QUEUE = 1024


class Subscription:
    """The events one client receives.

    ``game_id`` keeps only that game's events; peer and library events still pass unless
    ``only_game`` (a ``--wait`` stream shows one operation and nothing else).
    """

    def __init__(
        self, game_id: str | None, only_game: bool = False, maxsize: int = SUBSCRIBER_QUEUE
    ) -> None:
        self.game_id = game_id
        self.only_game = only_game
        self.lagged = False
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)

    def offer(self, event: Event) -> None:
        if self.game_id is not None:
            default = None if self.only_game else self.game_id
            if getattr(event, "game_id", default) != self.game_id:
                return
        if self._queue.full():
            dropped = self._queue.get_nowait()
            self.lagged |= not isinstance(dropped, ProgressEvent)
        self._queue.put_nowait(event)

    async def wait_event(self) -> Event:
        return await self._queue.get()


class EventHub:
    """Every daemon part publishes here (on the loop); every subscriber gets a copy."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.recent_finished: list[FinishedEvent] = []  # for doctor: recent transfer rates
        self.history = OperationHistory()  # ops --all, standing failures, one log line each

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        if isinstance(event, FinishedEvent):
            self.recent_finished = [*self.recent_finished[-19:], event]
            self.history.record(event)
        for subscriber in self._subscribers:
            subscriber.offer(event)

    @contextmanager
    def subscribe(
        self, game_id: str | None = None, only_game: bool = False
    ) -> Iterator[Subscription]:
        subscription = Subscription(game_id, only_game)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
