"""The operation model: one transition table, one writer, events and views that read it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lanpeer.download.operations import (
    FINAL_STATES,
    JOB_STATE,
    TRANSITIONS,
    IllegalTransition,
    Lane,
    Operation,
    OperationQueue,
    OpKind,
    OpState,
)
from lanpeer.download.progress import ProgressEvent, TransferCounters, TransferSnapshot
from lanpeer.installs import InstallRunner
from tests.download.helpers import open_library
from tests.install.gamekit import make_game


def test_every_state_is_in_the_table_and_every_running_state_can_end() -> None:
    assert set(TRANSITIONS) == set(OpState)
    for state, moves in TRANSITIONS.items():
        if state in FINAL_STATES:
            assert moves == frozenset(), state
        elif state is OpState.QUEUED:
            assert moves == {OpState.STARTING, OpState.CANCELLED}  # queued: cancel only
        else:
            assert moves >= FINAL_STATES, state


def test_each_transaction_kind_runs_in_its_own_state() -> None:
    # Not "kind + ing": remove -> removing, update -> updating.
    assert {k.value: s.value for k, s in JOB_STATE.items()} == {
        "install": "installing",
        "update": "updating",
        "uninstall": "uninstalling",
        "remove": "removing",
    }
    assert {kind.lane for kind in OpKind} == {Lane.DOWNLOAD, Lane.GENERAL}
    assert [k for k in OpKind if k.lane is Lane.DOWNLOAD] == [OpKind.DOWNLOAD]


async def _idle(_op: Operation) -> None:
    return None


@pytest.mark.asyncio
async def test_move_is_the_one_writer_and_refuses_what_the_table_forbids() -> None:
    events: list[ProgressEvent] = []
    queue = OperationQueue({Lane.DOWNLOAD: 1, Lane.GENERAL: 1})
    queue.add_listener(events.append)
    op = queue.submit("doom", OpKind.DOWNLOAD, _idle)
    with pytest.raises(AttributeError):
        op.state = OpState.DONE  # type: ignore[misc]
    with pytest.raises(IllegalTransition, match="queued -> downloading"):
        op.move(OpState.DOWNLOADING)
    op.move(OpState.STARTING)
    op.move(OpState.STARTING)  # no change: no event
    op.move(OpState.DOWNLOADING)
    op.move(OpState.STALLED)
    op.move(OpState.DOWNLOADING)
    op.move(OpState.COMMITTING)
    with pytest.raises(IllegalTransition):
        op.move(OpState.DOWNLOADING)  # files are moving: there is no way back
    op.move(OpState.DONE)
    with pytest.raises(IllegalTransition):
        op.move(OpState.FAILED)
    assert [(e.event, e.state) for e in events] == [
        ("state", "starting"),
        ("state", "downloading"),
        ("state", "stalled"),
        ("state", "downloading"),
        ("state", "committing"),
        ("finished", "done"),
    ]
    assert events[-1].ok is True


class _Transfer:
    def __init__(self) -> None:
        self.counters = TransferCounters(bytes_total=100, bytes_fetched=40)
        self.counters.chunks_by_peer.update({"A": 2, "B": 0})

    def snapshot(self, now: float) -> TransferSnapshot:
        done = self.counters.bytes_done
        return TransferSnapshot(done, self.counters.bytes_total, 10.0, ("A",), {"A": 10.0})


@pytest.mark.asyncio
async def test_status_and_events_pull_from_the_tracked_transfer() -> None:
    events: list[ProgressEvent] = []
    queue = OperationQueue({Lane.DOWNLOAD: 1, Lane.GENERAL: 1}, progress_every=3600.0)
    queue.add_listener(events.append)
    op = queue.submit("doom", OpKind.DOWNLOAD, _idle)
    assert op.status(1).bytes_total == 0  # nothing tracked yet
    transfer = _Transfer()
    op.track(transfer)
    row = op.status(None)
    assert (row.bytes_done, row.bytes_total, row.rate, row.eta) == (40, 100, 10.0, 6.0)
    assert (row.kind, row.state, row.lane, row.sources) == ("download", "queued", "download", ["A"])
    transfer.counters.bytes_fetched = 70  # the view reads it again, no copy to go stale
    assert op.status(None).bytes_done == 70
    queue.progressed(op)
    queue.progressed(op)  # inside the progress window: held back
    assert [(e.event, e.bytes_done) for e in events] == [("progress", 70)]
    op.move(OpState.STARTING)
    op.move(OpState.FAILED, RuntimeError("boom"))
    assert (op.error, op.error_code, events[-1].peers_used) == ("boom", "failed", ["A"])


@pytest.mark.asyncio
async def test_install_runner_runs_transactions_in_the_general_lane(tmp_path: Path) -> None:
    root = tmp_path / "games"
    make_game(root / "quake", "1.0")
    events: list[ProgressEvent] = []
    async with open_library(root) as lib:
        await lib.rescan()
        queue = OperationQueue({Lane.DOWNLOAD: 1, Lane.GENERAL: 1})
        queue.add_listener(events.append)
        runner = InstallRunner(lib, queue)
        async with asyncio.TaskGroup() as group:
            running = group.create_task(queue.run())
            op = runner.submit(OpKind.INSTALL, "quake")
            assert op.lane is Lane.GENERAL
            async with asyncio.timeout(30):
                await op.wait_finished()
            running.cancel()
        assert op.state is OpState.DONE, op.error
        assert (root / "quake" / "local" / "bin" / "game.exe").is_file()
        with pytest.raises(ValueError, match="not a transaction"):
            runner.submit(OpKind.DOWNLOAD, "quake")
    assert [(e.event, e.state) for e in events if e.event != "progress"] == [
        ("state", "starting"),
        ("state", "installing"),
        ("finished", "done"),
    ]
    progress = [e for e in events if e.event == "progress"]  # archive bytes of the total
    archives = sum(p.stat().st_size for p in (root / "quake").glob("*.eti"))
    assert {(e.state, e.bytes_total) for e in progress} == {("installing", archives)}
    assert progress[-1].bytes_done <= archives
    assert (events[-1].bytes_done, events[-1].bytes_total) == (archives, archives)  # the finish


@pytest.mark.asyncio
async def test_a_failing_step_raises_its_own_error_out_of_the_thread() -> None:
    from lanpeer.errors import TransactionAborted
    from lanpeer.installs import run_in_thread

    def step() -> None:
        raise TransactionAborted("install of doom aborted: EIO")

    with pytest.raises(TransactionAborted, match="EIO"):  # not wrapped in an ExceptionGroup
        await run_in_thread(step, "doom", cancellable=False)


@pytest.mark.asyncio
async def test_a_cancel_after_the_point_of_no_return_lets_the_step_finish() -> None:
    import threading

    from lanpeer.installs import run_in_thread

    started, release, finished = threading.Event(), threading.Event(), []

    def step() -> None:  # uninstall-like: no cancel event, always rolls forward
        started.set()
        release.wait(10)
        finished.append("done")

    task = asyncio.ensure_future(run_in_thread(step, "doom", cancellable=False))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    release.set()
    await task  # completes: the cancel came too late
    assert (finished, task.cancelled()) == (["done"], False)
