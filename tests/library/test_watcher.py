"""The watcher on real inotify: add / change / remove of a game, gating, fallback scans.

Every wait is on a library rev change (RevWatch) with a timeout, never a sleep.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from lanpeer.library import GameLibrary

from .helpers import RevWatch, catalog, make_game

OpenLibrary = Any


def _ids(library: GameLibrary) -> list[str]:
    return [s.id for s in library.snapshot()]


def _hash_of(library: GameLibrary, game_id: str) -> bytes | None:
    return {s.id: s.manifest_hash for s in library.snapshot()}.get(game_id)


@pytest.mark.asyncio
async def test_watcher_sees_add_change_and_remove(root: Path, open_library: OpenLibrary) -> None:
    catalog(root, "a", "b")
    make_game(root, "a")
    library = await open_library([root], watch=True)
    watch = RevWatch(library)
    await watch.wait_until(lambda: _hash_of(library, "a") is not None)

    make_game(root, "b", files={"x.eti": b"x"})
    await watch.wait_until(
        lambda: _ids(library) == ["a", "b"] and _hash_of(library, "b") is not None
    )

    old = _hash_of(library, "b")
    (root / "b" / "x.eti").write_bytes(b"changed")
    await watch.wait_until(lambda: _hash_of(library, "b") not in (None, old))

    old = _hash_of(library, "b")
    (root / "b" / "deep").mkdir()
    (root / "b" / "deep" / "f").write_bytes(b"deep change")
    await watch.wait_until(lambda: _hash_of(library, "b") not in (None, old))

    shutil.rmtree(root / "b")
    await watch.wait_until(lambda: _ids(library) == ["a"])
    assert [g.id for g in library.local_games()] == ["a"]


@pytest.mark.asyncio
async def test_watcher_sees_catalog_edits(root: Path, open_library: OpenLibrary) -> None:
    make_game(root, "a")
    library = await open_library([root], watch=True)
    watch = RevWatch(library)
    catalog(root, "a")
    await watch.wait_until(lambda: _ids(library) == ["a"])


def move_in_game(root: Path, game_id: str) -> None:
    """The game appears in one rename (one watcher event), so it is scanned exactly once
    whichever debounce window its events fall in (a written-in-place game may take two)."""
    outside = root.parent / "outside"
    make_game(outside, game_id)
    os.rename(outside / game_id, root / game_id)


@pytest.mark.asyncio
async def test_events_inside_local_and_reserved_dirs_are_ignored(
    root: Path, open_library: OpenLibrary
) -> None:
    catalog(root, "a", "b")
    game = make_game(root, "a", installed=True)
    library = await open_library([root], watch=True, background_hashing=False)
    watch = RevWatch(library)
    scans = library.game_scans
    (game / "local" / "savegame").write_bytes(b"progress")
    (game / ".lanpeer.part").mkdir()
    (game / ".lanpeer.part" / "chunk").write_bytes(b"partial")
    move_in_game(root, "b")  # a marker: once b shows up, a's events have been seen too
    await watch.wait_until(lambda: "b" in _ids(library))
    assert library.game_scans - scans == 1  # b, whatever the debounce windows


@pytest.mark.asyncio
async def test_busy_game_events_are_dropped(root: Path, open_library: OpenLibrary) -> None:
    catalog(root, "a", "marker")
    make_game(root, "a")
    library = await open_library([root], watch=True, background_hashing=False)
    watch = RevWatch(library)
    scans = library.game_scans
    with library.operation("a"):
        (root / "a" / "new.eti").write_bytes(b"being written")
        move_in_game(root, "marker")
        await watch.wait_until(lambda: "marker" in _ids(library))
        assert library.game_scans - scans == 1  # only the marker
    await watch.wait_until(lambda: _ids(library) == ["a", "marker"])
    assert library.game_scans - scans == 2  # a, once, when the operation ended


@pytest.mark.asyncio
async def test_fallback_scan_runs_periodically(root: Path, open_library: OpenLibrary) -> None:
    catalog(root, "late")
    library = await open_library([root], watch=False, full_scan_interval=0.05)
    watch = RevWatch(library)
    make_game(root, "late")
    await watch.wait_until(lambda: _ids(library) == ["late"])
    assert library.full_scans >= 2


@pytest.mark.asyncio
async def test_queue_overflow_becomes_one_full_scan(root: Path, open_library: OpenLibrary) -> None:
    names = [f"g{n}" for n in range(10)]
    catalog(root, *names)
    library = await open_library(
        [root], watch=True, event_queue_size=2, debounce=0.3, background_hashing=False
    )
    watch = RevWatch(library)
    scans = library.full_scans
    for name in names:
        make_game(root, name)
    await watch.wait_until(lambda: _ids(library) == names)
    assert library.full_scans > scans


@pytest.mark.asyncio
async def test_a_root_that_appears_later_is_watched(
    tmp_path: Path, open_library: OpenLibrary
) -> None:
    first, late = tmp_path / "r1", tmp_path / "late"
    first.mkdir()
    catalog(first, "a", "b")
    library = await open_library([first, late], watch=True, background_hashing=False)
    assert late in library.unavailable_roots()
    watch = RevWatch(library)
    make_game(late, "a")
    await library.rescan()
    assert _ids(library) == ["a"]
    make_game(late, "b")  # seen by the watcher, no rescan asked
    await watch.wait_until(lambda: _ids(library) == ["a", "b"])


@pytest.mark.asyncio
async def test_watcher_sees_games_moved_in_and_out(
    root: Path, tmp_path: Path, open_library: OpenLibrary
) -> None:
    catalog(root, "moved")
    outside = make_game(tmp_path / "staging", "moved")
    library = await open_library([root], watch=True, background_hashing=False)
    watch = RevWatch(library)
    outside.rename(root / "moved")
    await watch.wait_until(lambda: _ids(library) == ["moved"])
    (root / "moved").rename(tmp_path / "moved-away")
    await watch.wait_until(lambda: _ids(library) == [])
