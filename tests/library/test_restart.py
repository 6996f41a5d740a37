"""Persistence: rev monotonic across restarts, fingerprints reused, unavailable roots kept."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lanpeer.errors import LanpeerError
from lanpeer.library import GameLibrary, ServeRefused
from lanpeer.library.revisions import apply_delta

from .helpers import RevWatch, catalog, make_game

OpenLibrary = Any


async def _hashed(library: GameLibrary) -> None:
    await RevWatch(library).wait_until(
        lambda: all(s.manifest_hash is not None for s in library.snapshot())
    )


@pytest.mark.asyncio
async def test_rev_is_monotonic_across_restarts(root: Path, state_dir: Path) -> None:
    make_game(root, "a")
    catalog(root, "a")
    async with GameLibrary([root], state_dir, watch=False) as library:
        await _hashed(library)
        first_rev, digest = library.library_rev, library.library_digest
    async with GameLibrary([root], state_dir, watch=False) as library:
        await _hashed(library)
        assert (library.library_rev, library.library_digest) == (first_rev, digest)
        assert library.files_hashed == 0
        make_game(root, "b")
        library.add_catalog_entry("b", "B")
        await library.rescan()
        await _hashed(library)
        second_rev = library.library_rev
        assert second_rev > first_rev
    os.unlink(root / "b" / "version.ini")
    async with GameLibrary([root], state_dir, watch=False) as library:
        assert library.library_rev == second_rev + 1
        assert [s.id for s in library.snapshot()] == ["a"]


@pytest.mark.asyncio
async def test_only_changed_games_are_rehashed_after_restart(root: Path, state_dir: Path) -> None:
    for name in ("a", "b", "c"):
        make_game(root, name, files={"x.eti": name.encode() * 100, "y.eti": b"y"})
    catalog(root, "a", "b", "c")
    async with GameLibrary([root], state_dir, watch=False) as library:
        await _hashed(library)
        before = {s.id: s.manifest_hash for s in library.snapshot()}
    (root / "b" / "x.eti").write_bytes(b"new content")
    async with GameLibrary([root], state_dir, watch=False) as library:
        assert library.snapshot()[1].manifest_hash is None  # b changed: rehash pending
        await _hashed(library)
        after = {s.id: s.manifest_hash for s in library.snapshot()}
        assert library.files_hashed == 1  # only b/x.eti; b/y.eti reused its chunk hashes
    assert after["a"] == before["a"]
    assert after["c"] == before["c"]
    assert after["b"] != before["b"]


@pytest.mark.asyncio
async def test_missing_root_is_unavailable_not_empty(tmp_path: Path, state_dir: Path) -> None:
    first, second = tmp_path / "r1", tmp_path / "r2"
    make_game(first, "a")
    make_game(second, "b")
    catalog(first, "a", "b")
    async with GameLibrary([first, second], state_dir, watch=False) as library:
        await _hashed(library)
        rev, snapshot = library.library_rev, library.snapshot()
    second.rename(tmp_path / "r2-unplugged")
    async with GameLibrary([first, second], state_dir, watch=False) as library:
        assert library.unavailable_roots().keys() == {second}
        assert library.snapshot() == snapshot
        assert library.library_rev == rev
        (game_b,) = [g for g in library.local_games() if g.id == "b"]
        assert not game_b.root_available
        assert library.game_dir_for_new("new") == first / "new"
        await library.rescan("b")
        await library.rescan()
        assert library.snapshot() == snapshot
        (tmp_path / "r2-unplugged").rename(second)
        await library.rescan()
        assert library.unavailable_roots() == {}
        assert (library.snapshot(), library.library_rev) == (snapshot, rev)
        assert library.files_hashed == 0


@pytest.mark.asyncio
async def test_corrupt_catalog_keeps_the_previous_one(root: Path, state_dir: Path) -> None:
    make_game(root, "a")
    catalog(root, "a")
    async with GameLibrary([root], state_dir, watch=False) as library:
        (root / "catalog.toml").write_text("[[game]\nbroken")
        await library.rescan()
        assert [s.id for s in library.snapshot()] == ["a"]
        assert (root / "catalog.toml").read_text() == "[[game]\nbroken"


def _mount_tmpfs(path: Path) -> bool:
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(["mount", "-t", "tmpfs", "lanpeer-test", str(path)], check=False).returncode
        == 0
    )


@pytest.mark.process
@pytest.mark.asyncio
async def test_unmounted_root_is_unavailable_not_empty(tmp_path: Path, state_dir: Path) -> None:
    mounted = tmp_path / "disk"
    mounted.mkdir()
    if not _mount_tmpfs(mounted):
        pytest.skip("needs root and mount(8) to mount a tmpfs")
    try:
        make_game(mounted, "a")
        catalog(mounted, "a")
        catalog_path = tmp_path / "catalog.toml"
        catalog_path.write_bytes((mounted / "catalog.toml").read_bytes())
        async with GameLibrary([mounted], state_dir, catalog_path, watch=False) as library:
            await _hashed(library)
            snapshot = library.snapshot()
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(mounted)], check=True)
    assert list(mounted.iterdir()) == []  # the bare mount point
    async with GameLibrary([mounted], state_dir, catalog_path, watch=False) as library:
        assert "no longer mounted" in library.unavailable_roots()[mounted]
        assert library.snapshot() == snapshot


@pytest.mark.asyncio
async def test_corrupt_index_is_a_clear_error_and_kept(root: Path, state_dir: Path) -> None:
    _write(state_dir / "library.sqlite3", b"not a database" * 100)
    with pytest.raises(LanpeerError, match="move it away"):
        await GameLibrary([root], state_dir, watch=False).start()
    assert (state_dir / "library.sqlite3").read_bytes() == b"not a database" * 100


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.asyncio
async def test_unreadable_persisted_library_keeps_the_rev(root: Path, state_dir: Path) -> None:
    make_game(root, "a")
    catalog(root, "a")
    async with GameLibrary([root], state_dir, watch=False) as library:
        await _hashed(library)
        rev = library.library_rev
    _corrupt_meta(state_dir, "advertised")
    async with GameLibrary([root], state_dir, watch=False) as library:
        assert library.library_rev == rev + 1
        assert [s.id for s in library.snapshot()] == ["a"]


def _corrupt_meta(state_dir: Path, key: str) -> None:
    with sqlite3.connect(state_dir / "library.sqlite3") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (b"\xc1garbage", key))
    db.close()


@pytest.mark.asyncio
async def test_a_root_lost_between_scans_drops_nothing(tmp_path: Path, state_dir: Path) -> None:
    first, second = tmp_path / "r1", tmp_path / "r2"
    make_game(first, "a")
    make_game(second, "b")
    catalog(first, "a", "b")
    async with GameLibrary([first, second], state_dir, watch=False) as library:
        await _hashed(library)
        snapshot = library.snapshot()
        manifest = await library.wait_manifest("b")
        second.rename(tmp_path / "r2-unplugged")
        with pytest.raises(ServeRefused):
            library.open_served_file("b", manifest.manifest_hash, "data.eti")
        await library.rescan("b")
        assert second in library.unavailable_roots()
        assert library.snapshot() == snapshot


@pytest.mark.asyncio
async def test_deltas_survive_a_restart(root: Path, state_dir: Path) -> None:
    make_game(root, "a")
    catalog(root, "a", "b")
    async with GameLibrary([root], state_dir, watch=False) as library:
        await _hashed(library)
        rev, held = library.library_rev, {s.id: s for s in library.snapshot()}
        make_game(root, "b")
        await library.rescan()
        await _hashed(library)
    async with GameLibrary([root], state_dir, watch=False) as library:
        delta = library.delta_since(rev)
        assert delta is not None
        assert [s.id for s in delta.added] == ["b"]
        assert apply_delta(held, delta) == {s.id: s for s in library.snapshot()}
