"""No exception without a log or a re-raise: library tasks, background hashing, the download
manager's look-up of an existing game dir. Real library, real files."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from lanpeer.download import DownloadManager, SourceSet
from lanpeer.errors import ConflictError
from lanpeer.library import GameLibrary
from lanpeer.library.hashing import GameHasher
from tests.download.helpers import manifest_of, open_library, random_bytes, write_game
from tests.library.helpers import catalog, make_game


@pytest.mark.asyncio
async def test_a_failing_library_task_is_logged_and_the_others_keep_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_library(tmp_path / "games") as lib:
        ran = asyncio.Event()

        async def broken() -> None:
            raise RuntimeError("a bug in a library task")

        async def fine() -> None:
            ran.set()

        with caplog.at_level(logging.ERROR, logger="lanpeer.library.library"):
            lib._spawn(broken)
            lib._spawn(fine)
            async with asyncio.timeout(5):
                await ran.wait()  # tasks start in order: broken has failed (and logged) by now
        await lib.rescan()  # the library still works
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert "a bug in a library task" in str(failed[0].exc_info[1])


class LogSeen(logging.Handler):
    """Sets ``seen`` on the first error record (emitted on the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()


@pytest.mark.asyncio
async def test_a_background_hashing_error_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "games"
    make_game(root, "doom")
    catalog(root, "doom")
    attempted = asyncio.Event()

    async def refuse(self: GameHasher, game_id: str, pool: object) -> None:
        attempted.set()
        raise ConflictError(f"{game_id} is held by something else")

    monkeypatch.setattr(GameHasher, "_hash", refuse)
    logged = LogSeen()
    hashing_log = logging.getLogger("lanpeer.library.hashing")
    hashing_log.addHandler(logged)
    try:
        with caplog.at_level(logging.ERROR, logger="lanpeer.library.hashing"):
            async with GameLibrary([root], tmp_path / "state", watch=False) as library:
                async with asyncio.timeout(10):
                    await attempted.wait()
                    await logged.seen.wait()
                assert library.local_games()[0].manifest_hash is None
    finally:
        hashing_log.removeHandler(logged)
    assert [r.getMessage() for r in caplog.records] == ["hashing doom failed"]
    assert "held by something else" in str(caplog.records[0].exc_info[1])  # type: ignore[index]


@pytest.mark.asyncio
async def test_an_unexpected_error_looking_up_the_game_dir_fails_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = write_game(tmp_path / "seed" / "doom", {"a.eti": random_bytes(1000, 1)})
    m = manifest_of(seed, "doom")
    async with open_library(tmp_path / "games") as lib:

        def unreadable(game_id: str) -> Path:
            raise PermissionError(13, "Permission denied", str(tmp_path / "games"))

        monkeypatch.setattr(lib, "game_dir", unreadable)
        async with DownloadManager(lib, SourceSet()) as mgr:
            op = mgr.submit_download("doom", m)
            async with asyncio.timeout(10):
                await op.wait_finished()
    # Before: swallowed, and the download went on to create a second copy of the game.
    assert (op.state, op.error) == ("failed", f"[Errno 13] Permission denied: '{tmp_path}/games'")
    assert not (tmp_path / "games" / "doom").exists()
