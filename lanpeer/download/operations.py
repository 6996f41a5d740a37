"""OperationQueue: lanes of operations (downloads, installs...) and one operation per game.

Owns scheduling only: a download lane (default 2 at once, the rest ``queued #n``) and a general
lane for install/uninstall/update/remove jobs supplied by the daemon. Every operation runs as a
task of the queue's TaskGroup; an operation's failure never stops the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lanpeer.download.progress import OperationStatus, eta_seconds
from lanpeer.errors import ConflictError, LanpeerError

log = logging.getLogger(__name__)

DOWNLOAD_LANE = "download"
GENERAL_LANE = "general"
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


@dataclass(eq=False)
class Operation:
    game_id: str
    kind: str
    lane: str
    body: Callable[[Operation], Awaitable[None]]
    on_cancel_queued: Callable[[], Awaitable[None]] | None = None
    state: str = "queued"
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0
    sources: list[str] = field(default_factory=list)
    peer_rates: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    started: float | None = None
    finished: float | None = None
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False  # by the user (clean up) rather than by shutdown (keep, resume)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ok(self) -> bool:
        return self.state == "done"

    async def wait_finished(self) -> None:
        await self._done.wait()

    def status(self, queue_position: int | None) -> OperationStatus:
        return OperationStatus(
            game_id=self.game_id,
            kind=self.kind,
            state=self.state,
            lane=self.lane,
            queue_position=queue_position,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            rate=self.rate,
            eta=eta_seconds(self.bytes_total - self.bytes_done, self.rate),
            sources=list(self.sources),
            peer_rates=dict(self.peer_rates),
            error=self.error,
        )


class OperationQueue:
    def __init__(
        self,
        lanes: dict[str, int],
        on_finished: Callable[[Operation], None] | None = None,
    ) -> None:
        self.lanes = dict(lanes)
        self._queued: dict[str, list[Operation]] = {lane: [] for lane in lanes}
        self._running: dict[str, Operation] = {}
        self._by_game: dict[str, Operation] = {}
        self._wake = asyncio.Event()
        self._on_finished = on_finished
        self._open = True

    def submit(self, op: Operation) -> Operation:
        if not self._open:
            raise LanpeerError("the daemon is shutting down; no new operations")
        current = self._by_game.get(op.game_id)
        if current is not None:
            raise ConflictError(
                f"{op.game_id!r} already has a {current.kind} operation ({current.state}); "
                "wait for it or cancel it first"
            )
        self._by_game[op.game_id] = op
        self._queued[op.lane].append(op)
        self._wake.set()
        return op

    def get(self, game_id: str) -> Operation | None:
        return self._by_game.get(game_id)

    def statuses(self) -> list[OperationStatus]:
        rows = [op.status(None) for op in self._running.values()]
        for queue in self._queued.values():
            rows += [op.status(i + 1) for i, op in enumerate(queue)]
        return rows

    async def cancel(self, game_id: str) -> Operation | None:
        """Cancel the game's operation and wait until its cleanup is done."""
        op = self._by_game.get(game_id)
        if op is None:
            return None
        op.cancel_requested = True
        if op in self._queued[op.lane]:
            self._queued[op.lane].remove(op)
            if op.on_cancel_queued is not None:
                await op.on_cancel_queued()
            self._finish(op, "cancelled", None)
        elif op.task is not None:
            op.task.cancel()
            await op.wait_finished()
        return op

    async def run(self) -> None:
        """Start operations as lanes free up, until cancelled (then cancel them all)."""
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    self._start_ready(tg)
                    self._wake.clear()
                    await self._wake.wait()
        finally:
            self._open = False

    def _start_ready(self, tg: asyncio.TaskGroup) -> None:
        for lane, limit in self.lanes.items():
            queue = self._queued[lane]
            while queue and sum(op.lane == lane for op in self._running.values()) < limit:
                op = queue.pop(0)
                self._running[op.game_id] = op
                op.task = tg.create_task(self._execute(op))

    async def _execute(self, op: Operation) -> None:
        op.started = time.monotonic()
        op.state = "starting"
        try:
            await op.body(op)
        except asyncio.CancelledError:
            self._finish(op, "cancelled", None)
            raise
        except (LanpeerError, OSError) as exc:  # expected: said in one line by the history
            self._finish(op, "failed", exc)
        except Exception as exc:
            log.exception("%s %s failed", op.kind, op.game_id)
            self._finish(op, "failed", exc)
        else:
            self._finish(op, "done", None)

    def _finish(self, op: Operation, state: str, exc: BaseException | None) -> None:
        op.state, op.finished = state, time.monotonic()
        if exc is not None:
            op.error = str(exc) or type(exc).__name__
            op.error_code = getattr(exc, "code", "failed")
        self._running.pop(op.game_id, None)
        if self._by_game.get(op.game_id) is op:
            del self._by_game[op.game_id]
        op._done.set()
        self._wake.set()
        if self._on_finished is not None:
            self._on_finished(op)
