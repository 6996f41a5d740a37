"""``InstallRunner``: install, update, uninstall and remove run as operations of the queue.

Owns turning a transaction of ``lanpeer.install`` into an operation of the general lane: the
game is busy (``library.operation``) while it runs, the blocking step runs in a worker thread,
and a cancel rolls back during extraction or comes too late after it. Never checks whether the
transaction makes sense for the game (the control commands do) and never touches files itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from lanpeer.download.operations import JOB_STATE, Operation, OperationQueue, OpKind
from lanpeer.errors import InstallCancelled
from lanpeer.install import install_game, remove_game, uninstall_game, update_game
from lanpeer.install.transactions import Progress
from lanpeer.install_progress import ExtractionProgress
from lanpeer.library import GameLibrary

log = logging.getLogger(__name__)

#: Install and update take a ``cancel`` event (extraction can take minutes); uninstall and
#: remove are short renames and deletes that always roll forward.
CANCELLABLE = frozenset({OpKind.INSTALL, OpKind.UPDATE})
#: Report bytes of a total: extracted (install, update) or deleted (uninstall).
SHOWS_PROGRESS = CANCELLABLE | {OpKind.UNINSTALL}


class InstallRunner:
    """Queues transactions of ``library``'s games in ``queue``'s general lane."""

    def __init__(self, library: GameLibrary, queue: OperationQueue) -> None:
        self.library, self.queue = library, queue

    def submit(self, kind: OpKind, game_id: str) -> Operation:
        """Queue ``kind`` (not a download) of ``game_id``; ConflictError when it is busy."""
        if kind not in JOB_STATE:
            raise ValueError(f"{kind} is not a transaction")
        game_dir = self.library.game_dir(game_id)
        step = self._step(kind, game_dir)

        async def body(op: Operation) -> None:
            op.move(JOB_STATE[kind])
            progress = None
            if kind in SHOWS_PROGRESS:  # bytes extracted (or deleted) of the total
                tracker = ExtractionProgress(lambda: self.queue.progressed(op))
                op.track(tracker)
                progress = tracker.report
            async with self.library.operation(game_id):
                await run_in_thread(
                    step, game_id, cancellable=kind in CANCELLABLE, progress=progress
                )

        return self.queue.submit(game_id, kind, body)

    async def after_download(self, game_id: str, game_dir: Path) -> None:
        """The download manager's installer: install, or update when local/ is already there.

        The download's operation shows the extraction's progress meanwhile, then its own
        transfer again (its finish reports the download's bytes and peers)."""
        op = self.queue.get(game_id)
        if op is None:
            await install_downloaded(self.library, game_id, game_dir)
            return
        previous = op.transfer
        tracker = ExtractionProgress(lambda: self.queue.progressed(op), op.counters)
        op.track(tracker)
        try:
            await install_downloaded(self.library, game_id, game_dir, tracker.report)
        finally:
            if previous is not None:
                op.track(previous)

    def _step(self, kind: OpKind, game_dir: Path) -> Callable[..., None]:
        if kind is OpKind.INSTALL:
            return partial(install_game, game_dir)
        if kind is OpKind.UPDATE:
            return partial(update_game, game_dir)
        if kind is OpKind.UNINSTALL:
            return partial(uninstall_game, game_dir)
        return partial(remove_game, list(self.library.roots), game_dir)


async def install_downloaded(
    library: GameLibrary, game_id: str, game_dir: Path, progress: Progress | None = None
) -> None:
    """Install (or update, when ``local/`` exists) a game just downloaded, the game busy."""
    run = update_game if (game_dir / "local").is_dir() else install_game
    async with library.operation(game_id):
        await run_in_thread(partial(run, game_dir), game_id, cancellable=True, progress=progress)


async def run_in_thread(
    run: Callable[..., None],
    what: str,
    *,
    cancellable: bool,
    progress: Progress | None = None,
) -> None:
    """Run a blocking install step in a worker thread; a cancel never abandons the thread.

    ``cancellable`` steps (install, update) take a ``cancel`` event: a cancel during extraction
    rolls back and the operation ends cancelled. Once past extraction, or for a step without
    one (uninstall, remove, both short), the transaction rolls forward: the thread is awaited
    (the game stays busy meanwhile) and the operation ends done, the cancel having come too late.
    """
    cancel = threading.Event()
    extra: dict[str, object] = {"cancel": cancel} if cancellable else {}
    if progress is not None:
        extra["progress"] = progress
    step = partial(run, **extra)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cancelled = False
    async with asyncio.TaskGroup() as group:  # the thread's waiter, never abandoned
        group.create_task(_deliver(step, done))
        try:
            await asyncio.wait([done])
        except asyncio.CancelledError:
            cancelled = True
            cancel.set()
            await asyncio.wait([done])  # the thread finishes either way
    # Outside the group: an error is raised as itself, not wrapped in an ExceptionGroup.
    if not cancelled:
        return done.result()
    if isinstance(done.exception(), InstallCancelled):
        raise asyncio.CancelledError
    done.result()  # another failure after the cancel: it is the outcome
    log.info("%s: the cancel came after the point of no return; the step completed", what)
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()


async def _deliver(step: Callable[[], None], done: asyncio.Future[None]) -> None:
    """Run ``step`` in a worker thread into ``done``: the task itself never fails, so a
    failing step reaches the caller as itself, not wrapped in the task group's error group."""
    try:
        await asyncio.to_thread(step)
    except Exception as exc:
        done.set_exception(exc)
    else:
        done.set_result(None)
