"""Helpers for library tests: tiny real game dirs and a rev watcher (no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lanpeer.library import GameLibrary
from lanpeer.library.samples import generate_game, write_catalog


def make_game(
    root: Path,
    game_id: str,
    *,
    downloaded: bool = True,
    installed: bool = False,
    files: dict[str, bytes] | None = None,
    version: str = "1.0",
) -> Path:
    """A small hand-made game dir; ``version.ini`` is written last when ``downloaded``."""
    game_dir = root / game_id
    game_dir.mkdir(parents=True, exist_ok=True)
    for rel, data in (files if files is not None else {"data.eti": b"payload"}).items():
        (game_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (game_dir / rel).write_bytes(data)
    if installed:
        (game_dir / "local").mkdir(exist_ok=True)
        (game_dir / "local" / "game.exe").write_bytes(b"installed")
    if downloaded:
        (game_dir / "version.ini").write_text(f"[game]\nversion={version}\n")
    return game_dir


class RevWatch:
    """Awaits library rev changes instead of sleeping."""

    def __init__(self, library: GameLibrary) -> None:
        self.library = library
        self.revs: list[int] = []
        self._changed = asyncio.Event()
        library.add_listener(self._on_rev)

    def _on_rev(self, rev: int) -> None:
        self.revs.append(rev)
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], limit: float = 10.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def catalog(root: Path, *game_ids: str) -> None:
    write_catalog(root / "catalog.toml", list(game_ids))


@asynccontextmanager
async def sample_library(
    tmp: Path, name: str, games: dict[str, int], *, archives: int = 2, **settings: Any
) -> AsyncIterator[GameLibrary]:
    """A running ``GameLibrary`` of generated games (game id -> size) under ``tmp / name``;
    ``settings`` go to ``GameLibrary`` (e.g. ``chunk_size``)."""
    root = tmp / name / "games"
    root.mkdir(parents=True)
    for seed, (game_id, size) in enumerate(games.items()):
        generate_game(root, game_id, size, seed=seed, archives=archives)
    write_catalog(root / "catalog.toml", list(games))
    async with GameLibrary([root], tmp / name / "libstate", debounce=0.02, **settings) as library:
        yield library
