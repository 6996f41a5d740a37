"""Owned tasks: a task group that lives exactly as long as its owner, and a race of waits.

Owns the two shapes of concurrency lanpeer needs beyond a plain ``async with TaskGroup``:
tasks an object starts during its life (``OwnedTasks``: each failure logged, never silent and
never cancelling its siblings; all cancelled and awaited when the owner ends) and waiting for
the first of several conditions (``wait_first``). Never lets a task outlive its owner and never
swallows an exception without a log or a re-raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TasksClosed(RuntimeError):
    """A task was started after its owner closed (or before it started)."""


class OwnedTasks:
    """A task group whose lifetime is its owner's (``start``/``aclose`` or ``async with``).

    Unlike ``async with TaskGroup()`` around the owner's body, the owner's own exception
    reaches its caller unwrapped (no ``ExceptionGroup``), and a failing task is logged and
    ends alone instead of cancelling the others.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # running now, to cancel at close

    async def __aenter__(self) -> OwnedTasks:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group

    @property
    def running(self) -> bool:
        """Started and not closed: ``spawn`` works."""
        return self._group is not None

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """Run ``coro`` until it ends or the owner closes; a failure is logged as ``what``."""
        if self._group is None:
            coro.close()
            raise TasksClosed(f"{what}: its owner is closed")
        task = self._group.create_task(self._logged(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _task: coro.close())  # cancelled before it ever ran
        return task

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended (idempotent)."""
        group, self._group = self._group, None
        for task in list(self._tasks):
            task.cancel()
        if group is not None:
            await group.__aexit__(None, None, None)

    async def _logged(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await coro
        except Exception:
            self._log.exception("%s failed", what)


async def wait_first(
    *waits: Awaitable[object],
    timeout: float | None = None,  # noqa: ASYNC109 - a bound on the race, not on one wait
) -> frozenset[int]:
    """Race ``waits`` until the first ends; the others are cancelled and awaited before this
    returns. Returns the positions of the waits that ended (empty when ``timeout`` passed
    first); a wait that fails re-raises its error here, unwrapped."""
    ended: set[int] = set()
    first = asyncio.Event()

    async def until_done(position: int, wait: Awaitable[object]) -> None:
        await wait
        ended.add(position)
        first.set()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(until_done(i, wait)) for i, wait in enumerate(waits)]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await first.wait()
            for task in tasks:
                task.cancel()
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return frozenset(ended)
