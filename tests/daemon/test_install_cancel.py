"""A cancelled install rolls back in its thread; a cancel past the point of no return completes.

The daemon runs every install step through ``run_in_thread``; these drive it with the real
transactions on real generated games (zip and tar archives).
"""

from __future__ import annotations

import asyncio
import os
from functools import partial
from pathlib import Path

import pytest

from lanpeer.install import install_game, uninstall_game
from lanpeer.installs import run_in_thread
from lanpeer.library.samples import generate_game
from tests.net.conftest import poll_until

MIB = 1 << 20


def _entries(game_dir: Path) -> set[str]:
    return set(os.listdir(game_dir))


@pytest.mark.asyncio
async def test_cancel_during_extraction_rolls_back(tmp_path: Path) -> None:
    game_dir = generate_game(tmp_path, "big-game", 256 * MIB, seed=3, archives=4)
    before = _entries(game_dir)
    task = asyncio.create_task(
        run_in_thread(partial(install_game, game_dir), "big-game", cancellable=True)
    )
    installing = game_dir / ".local.installing"
    await poll_until(installing.exists, within=30.0)  # a worker thread makes it: no event
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The thread has finished (run_in_thread waited for it): nothing of the install is left.
    assert _entries(game_dir) == before
    install_game(game_dir)  # and the game still installs afterwards
    assert (game_dir / "local").is_dir()


@pytest.mark.asyncio
async def test_cancel_of_a_step_without_a_cancel_point_completes(tmp_path: Path) -> None:
    game_dir = generate_game(tmp_path, "small-game", 4 * MIB, seed=4)
    before = _entries(game_dir)
    install_game(game_dir)
    task = asyncio.create_task(
        run_in_thread(partial(uninstall_game, game_dir), "small-game", cancellable=False)
    )
    await asyncio.sleep(0)  # let it start, then cancel at once
    task.cancel()
    await task  # rolled forward: no CancelledError, the uninstall is complete
    assert not task.cancelled()
    assert _entries(game_dir) == before
