"""The general lane: install, update, uninstall and remove run here one at a time (SPEC §7, §8).

Owns the bounded queue of transactions, runs each in a worker thread inside
``library.operation(game_id)`` and publishes ``progress`` / ``finished`` events. Never touches
game files itself: ``lanpeer.install`` does, and its errors are reported, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanpeer_proto.control import EXIT_CODES, ControlErrorCode, FinishedEvent, ProgressEvent

from lanpeer.control.events import EventHub
from lanpeer.errors import ConflictError, LanpeerError

log = logging.getLogger(__name__)

# Each transaction is a person's command; 256 waiting ones is already far beyond a LAN party.
MAX_QUEUED = 256


@dataclass
class Transaction:
    """One install / update / uninstall / remove, queued or running."""

    game_id: str
    kind: str
    run: Callable[[], Any]  # the blocking install call, bound to its game dir
    state: str = "queued"
    lane: str = "general"
    queue_position: int | None = None
    started: float = field(default_factory=time.monotonic)


class TransactionLane:
    """Runs transactions in submission order, one at a time."""

    def __init__(self, events: EventHub, operation: Callable[[str], Any]) -> None:
        self._events = events
        self._operation = operation  # library.operation: marks the game busy while we work
        self._queue: asyncio.Queue[Transaction] = asyncio.Queue(MAX_QUEUED)
        self._pending: list[Transaction] = []
        self._running: Transaction | None = None

    def operations(self) -> list[Transaction]:
        active = [self._running] if self._running else []
        for position, transaction in enumerate(self._pending, start=1):
            transaction.queue_position = position
        return active + self._pending

    def busy(self, game_id: str) -> bool:
        return any(t.game_id == game_id for t in self.operations())

    def submit(self, transaction: Transaction) -> Transaction:
        if self.busy(transaction.game_id):
            raise ConflictError(f"{transaction.game_id} already has an operation queued or running")
        if self._queue.full():
            raise ConflictError("the general lane is full; wait for queued operations to finish")
        self._pending.append(transaction)
        self._queue.put_nowait(transaction)
        return transaction

    def cancel(self, game_id: str) -> bool:
        """Drop a queued transaction; a running one finishes or rolls back on its own."""
        if self._running and self._running.game_id == game_id:
            raise ConflictError(
                f"the {self._running.kind} of {game_id} is running; it completes or rolls back, "
                "it cannot be interrupted halfway"
            )
        for transaction in self._pending:
            if transaction.game_id == game_id:
                transaction.state = "cancelled"
                self._pending.remove(transaction)
                self._finish(transaction, "cancelled", ControlErrorCode.FAILED)
                return True
        return False

    async def run(self) -> None:
        """Work through the queue until cancelled."""
        while True:
            transaction = await self._queue.get()
            if transaction.state == "cancelled":
                continue
            self._pending.remove(transaction)
            self._running = transaction
            try:
                await self._execute(transaction)
            finally:
                self._running = None

    async def _execute(self, transaction: Transaction) -> None:
        transaction.state, transaction.queue_position = "running", None
        transaction.started = time.monotonic()
        self._events.publish(
            ProgressEvent(
                game_id=transaction.game_id,
                kind=transaction.kind,
                state="running",
                bytes_done=0,
                bytes_total=0,
            )
        )
        try:
            with self._operation(transaction.game_id):
                await asyncio.to_thread(transaction.run)
        except LanpeerError as exc:
            log.warning("%s of %s failed: %s", transaction.kind, transaction.game_id, exc)
            self._finish(transaction, str(exc), _code(exc))
        except OSError as exc:
            log.warning("%s of %s failed: %s", transaction.kind, transaction.game_id, exc)
            self._finish(
                transaction, f"{exc.strerror or exc} ({exc.filename})", ControlErrorCode.FAILED
            )
        else:
            log.info("%s of %s done", transaction.kind, transaction.game_id)
            self._finish(transaction, None, None)

    def _finish(
        self, transaction: Transaction, error: str | None, code: ControlErrorCode | None
    ) -> None:
        self._events.publish(
            FinishedEvent(
                game_id=transaction.game_id,
                kind=transaction.kind,
                ok=error is None,
                error=error,
                error_code=code,
                seconds=max(0.0, time.monotonic() - transaction.started),
            )
        )


def _code(exc: LanpeerError) -> ControlErrorCode:
    try:
        code = ControlErrorCode(exc.code)
    except ValueError:
        return ControlErrorCode.FAILED
    return code if code in EXIT_CODES else ControlErrorCode.FAILED


def game_dir_of(library: Any, game_id: str) -> Path:
    return Path(library.game_dir(game_id))
