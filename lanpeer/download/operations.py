"""The operation model: ``OpKind``, ``OpState``, the one transition table, and ``OperationQueue``.

Owns an operation's life (queued -> running states -> done/failed/cancelled, checked against
``TRANSITIONS``; ``Operation.move`` is the only writer of state) and scheduling: a download lane
(default 2 at once, the rest ``queued #n``) and a general lane for install/update/uninstall/remove
jobs. Every operation runs as a task of the queue's TaskGroup; a failure never stops the queue.
Never knows what a body does: downloads and installs supply their bodies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol

from lanpeer.download.hash_wait import PeerHashing
from lanpeer.download.progress import (
    OperationStatus,
    ProgressEvent,
    TransferCounters,
    TransferSnapshot,
    eta_seconds,
)
from lanpeer.errors import ConflictError, LanpeerError

log = logging.getLogger(__name__)


class Lane(StrEnum):
    DOWNLOAD = "download"
    GENERAL = "general"


class OpKind(StrEnum):
    DOWNLOAD = "download"
    INSTALL = "install"
    UPDATE = "update"
    UNINSTALL = "uninstall"
    REMOVE = "remove"

    @property
    def lane(self) -> Lane:
        return Lane.DOWNLOAD if self is OpKind.DOWNLOAD else Lane.GENERAL


class OpState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    STALLED = "stalled"  # a download with no usable source (SPEC §7)
    COPYING = "copying"  # delta: chunks copied from the old version on local disk
    DOWNLOADING = "downloading"
    COMMITTING = "committing"  # staged files move into place: a cancel now comes too late
    INSTALLING = "installing"
    UPDATING = "updating"
    UNINSTALLING = "uninstalling"
    REMOVING = "removing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({OpState.DONE, OpState.FAILED, OpState.CANCELLED})

#: The state a transaction job of each kind runs in.
JOB_STATE = {
    OpKind.INSTALL: OpState.INSTALLING,
    OpKind.UPDATE: OpState.UPDATING,
    OpKind.UNINSTALL: OpState.UNINSTALLING,
    OpKind.REMOVE: OpState.REMOVING,
}

_F = FINAL_STATES
#: Every legal move of an operation (ARCHITECTURE.md draws it). Any state may end; a queued one
#: only by a cancel. A download restarted on a newer version goes back to copying/downloading.
TRANSITIONS: dict[OpState, frozenset[OpState]] = {
    OpState.QUEUED: frozenset({OpState.STARTING, OpState.CANCELLED}),
    OpState.STARTING: frozenset(
        {OpState.STALLED, OpState.COPYING, OpState.DOWNLOADING, *JOB_STATE.values(), *_F}
    ),
    OpState.STALLED: frozenset({OpState.COPYING, OpState.DOWNLOADING, *_F}),
    OpState.COPYING: frozenset({OpState.DOWNLOADING, *_F}),
    OpState.DOWNLOADING: frozenset({OpState.STALLED, OpState.COPYING, OpState.COMMITTING, *_F}),
    OpState.COMMITTING: frozenset({OpState.INSTALLING, *_F}),
    OpState.INSTALLING: _F,
    OpState.UPDATING: _F,
    OpState.UNINSTALLING: _F,
    OpState.REMOVING: _F,
    OpState.DONE: frozenset(),
    OpState.FAILED: frozenset(),
    OpState.CANCELLED: frozenset(),
}


class IllegalTransition(LanpeerError):
    """A move the table does not allow: a bug in the code that drives the operation."""

    code = "illegal_transition"


class Transfer(Protocol):
    """What an operation reads its progress from (a ``GameDownload``)."""

    @property
    def counters(self) -> TransferCounters: ...

    def snapshot(self, now: float) -> TransferSnapshot: ...


Body = Callable[["Operation"], Awaitable[None]]
Listener = Callable[[ProgressEvent], None]
_IDLE = TransferSnapshot(0, 0, 0.0, (), {})


class Operation:
    """One queued or running operation of one game; built by ``OperationQueue.submit``."""

    def __init__(
        self,
        game_id: str,
        kind: OpKind,
        body: Body,
        on_cancel_queued: Callable[[], Awaitable[None]] | None,
        publish: Callable[[Operation, str], None],
    ) -> None:
        self.game_id, self.kind = game_id, kind
        self.body, self.on_cancel_queued = body, on_cancel_queued
        self._publish = publish
        self._state = OpState.QUEUED
        self._transfer: Transfer | None = None
        self.error: str | None = None
        self.error_code: str | None = None
        self.reason: str | None = None  # why a stalled operation waits, for people
        self.hashing: PeerHashing | None = None  # stalled for a seeder's hash: how far it got
        self.started: float | None = None
        self.finished: float | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False  # by the user (clean up) rather than by shutdown (resume)
        self._done = asyncio.Event()

    @property
    def state(self) -> OpState:
        return self._state

    @property
    def lane(self) -> Lane:
        return self.kind.lane

    @property
    def ok(self) -> bool:
        return self._state is OpState.DONE

    def move(self, state: OpState, error: BaseException | None = None) -> None:
        """The one writer of an operation's state; publishes a state or finished event."""
        if state is self._state:
            return
        if state not in TRANSITIONS[self._state]:
            raise IllegalTransition(f"{self.kind} {self.game_id}: {self._state} -> {state}")
        self._state = state
        if state not in FINAL_STATES:
            self._publish(self, "state")
            return
        self.finished = time.monotonic()
        if error is not None:
            self.error = str(error) or type(error).__name__
            self.error_code = error.code if isinstance(error, LanpeerError) else "failed"
        self._done.set()
        self._publish(self, "finished")

    def track(self, transfer: Transfer) -> None:
        """Read progress from ``transfer`` from now on (a restarted download has a new one)."""
        self._transfer = transfer

    @property
    def transfer(self) -> Transfer | None:
        """What progress is read from now (an install after a download swaps it for a while)."""
        return self._transfer

    @property
    def counters(self) -> TransferCounters:
        return self._transfer.counters if self._transfer else TransferCounters()

    def snapshot(self, now: float) -> TransferSnapshot:
        return self._transfer.snapshot(now) if self._transfer else _IDLE

    @property
    def bytes_done(self) -> int:
        return self.counters.bytes_done

    async def wait_finished(self) -> None:
        await self._done.wait()

    def status(self, queue_position: int | None) -> OperationStatus:
        now = time.monotonic()
        snap = self.snapshot(now)
        return OperationStatus(
            game_id=self.game_id,
            kind=self.kind,
            state=self._state,
            lane=self.lane,
            queue_position=queue_position,
            bytes_done=snap.bytes_done,
            bytes_total=snap.bytes_total,
            rate=snap.rate,
            eta=eta_seconds(snap.bytes_total - snap.bytes_done, snap.rate),
            sources=list(snap.sources),
            peer_rates=dict(snap.peer_rates),
            partial_sources=list(snap.partial_sources),
            error=self.error,
            reason=self.reason if self._state is OpState.STALLED else None,
            hashing=self.hashing if self._state is OpState.STALLED else None,
        )

    def waiting(self, reason: str | None, hashing: PeerHashing | None = None) -> None:
        """Say why the (stalled) operation waits; a change is a progress event."""
        if (reason, hashing) == (self.reason, self.hashing):
            return
        self.reason, self.hashing = reason, hashing
        if self._state is OpState.STALLED:
            self._publish(self, "progress")

    def event(self, event: str) -> ProgressEvent:
        now = time.monotonic()
        snap = self.snapshot(now)
        return ProgressEvent(
            event=event,
            game_id=self.game_id,
            kind=self.kind,
            state=self._state,
            bytes_done=snap.bytes_done,
            bytes_total=snap.bytes_total,
            rate=snap.rate,
            eta=eta_seconds(snap.bytes_total - snap.bytes_done, snap.rate),
            peers=dict(snap.peer_rates),
            error=self.error,
            ok=self.ok if event == "finished" else None,
            seconds=(self.finished or now) - (self.started or now),
            peers_used=sorted(p for p, n in self.counters.chunks_by_peer.items() if n),
            bytes_from_partial=self.counters.bytes_from_partial,
            bytes_by_peer=dict(self.counters.bytes_by_peer),
            bytes_fetched=self.counters.bytes_fetched,
            reason=self.reason if self._state is OpState.STALLED else None,
            hashing=self.hashing if self._state is OpState.STALLED else None,
        )


# Progress events of one operation at most this often: ~4 lines/s is smooth for a person and
# cheap for ``watch`` subscribers (state and finished events are never held back).
PROGRESS_EVERY = 0.25


class OperationQueue:
    """Lanes of operations and one operation per game; the listeners get every op event."""

    def __init__(self, lanes: dict[Lane, int], progress_every: float = PROGRESS_EVERY) -> None:
        self.lanes = dict(lanes)
        self._queued: dict[Lane, list[Operation]] = {lane: [] for lane in lanes}
        self._running: dict[str, Operation] = {}
        self._by_game: dict[str, Operation] = {}
        self._wake = asyncio.Event()
        self._listeners: list[Listener] = []
        self._progress_every = progress_every
        self._last_progress: dict[str, float] = {}
        self._open = True

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(
        self,
        game_id: str,
        kind: OpKind,
        body: Body,
        on_cancel_queued: Callable[[], Awaitable[None]] | None = None,
    ) -> Operation:
        if not self._open:
            raise LanpeerError("the daemon is shutting down; no new operations")
        current = self._by_game.get(game_id)
        if current is not None:
            raise ConflictError(
                f"{game_id!r} already has a {current.kind} operation ({current.state}); "
                "wait for it or cancel it first"
            )
        op = Operation(game_id, kind, body, on_cancel_queued, self._publish)
        self._by_game[game_id] = op
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

    def progressed(self, op: Operation) -> None:
        """The operation's transfer moved: a progress event, at most every ``progress_every``."""
        now = time.monotonic()
        last = self._last_progress.get(op.game_id)
        if last is None or now - last >= self._progress_every:
            self._last_progress[op.game_id] = now
            self._send(op.event("progress"))

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
            self._finish(op, OpState.CANCELLED, None)
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
        op.move(OpState.STARTING)
        try:
            await op.body(op)
        except asyncio.CancelledError:
            self._finish(op, OpState.CANCELLED, None)
            raise
        except (LanpeerError, OSError) as exc:  # expected: said in one line by the history
            self._finish(op, OpState.FAILED, exc)
        except Exception as exc:
            log.exception("%s %s failed", op.kind, op.game_id)
            self._finish(op, OpState.FAILED, exc)
        else:
            self._finish(op, OpState.DONE, None)

    def _finish(self, op: Operation, state: OpState, exc: BaseException | None) -> None:
        self._running.pop(op.game_id, None)
        if self._by_game.get(op.game_id) is op:
            del self._by_game[op.game_id]
        self._last_progress.pop(op.game_id, None)
        self._wake.set()
        op.move(state, exc)

    def _publish(self, op: Operation, event: str) -> None:
        self._send(op.event(event))

    def _send(self, event: ProgressEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("operation listener failed")
