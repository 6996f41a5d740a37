"""GameLibrary on real dirs: states, catalog gating, manifests, busy gating, rescan-pending."""

from __future__ import annotations

import asyncio
import errno
import threading
from pathlib import Path
from typing import Any

import pytest
from lanpeer_proto.errors import ErrorCode

from lanpeer.errors import ConflictError, UnknownGameError
from lanpeer.library import GameLibrary, ServeRefused, scanner, verify_manifest
from lanpeer.library.catalog import load_catalog
from lanpeer.library.revisions import apply_delta

from .helpers import RevWatch, catalog, make_game

OpenLibrary = Any


@pytest.mark.asyncio
async def test_every_state_combination(root: Path, open_library: OpenLibrary) -> None:
    make_game(root, "both", installed=True)
    make_game(root, "downloaded")
    make_game(root, "local-only", downloaded=False, installed=True)
    make_game(root, "neither", downloaded=False, files={"partial.eti": b"x"})
    make_game(root, "uncatalogued")
    catalog(root, "both", "downloaded", "local-only", "neither")
    library = await open_library([root])
    games = {g.id: g for g in library.local_games()}
    assert {g: (x.downloaded, x.installed, x.local_only) for g, x in games.items()} == {
        "both": (True, True, False),
        "downloaded": (True, False, False),
        "local-only": (False, True, True),
        "neither": (False, False, False),
        "uncatalogued": (True, False, False),
    }
    assert games["both"].version == "1.0"
    assert games["local-only"].version is None
    assert games["uncatalogued"].in_catalog is False
    assert games["both"].name == "Both"
    assert [s.id for s in library.snapshot()] == ["both", "downloaded"]


@pytest.mark.asyncio
async def test_catalog_gates_serving_and_entries_can_be_added(
    root: Path, open_library: OpenLibrary
) -> None:
    make_game(root, "quake", files={"a.eti": b"abc"})
    library = await open_library([root])
    assert library.snapshot() == []
    with pytest.raises(ServeRefused) as refused:
        await library.wait_manifest("quake")
    assert refused.value.wire_code is ErrorCode.NOT_FOUND
    with pytest.raises(ServeRefused) as refused:
        library.open_served_file("quake", bytes(32), "a.eti")
    assert refused.value.wire_code is ErrorCode.NOT_FOUND
    watch = RevWatch(library)
    rev = library.library_rev
    library.add_catalog_entry("quake", "Quake", genre="FPS", max_players=16)
    assert [s.id for s in library.snapshot()] == ["quake"]
    assert library.library_rev == rev + 1
    assert watch.revs == [rev + 1]
    assert load_catalog(root / "catalog.toml")["quake"].max_players == 16
    manifest = await library.wait_manifest("quake")
    assert [f.path for f in manifest.files] == ["a.eti", "version.ini"]
    assert verify_manifest(manifest)
    assert library.snapshot()[0].manifest_hash == manifest.manifest_hash


@pytest.mark.asyncio
async def test_manifest_excludes_local_reserved_and_symlinks(
    root: Path, tmp_path: Path, open_library: OpenLibrary
) -> None:
    game = make_game(root, "g", installed=True, files={"a.eti": b"1", "art/c.png": b"2"})
    (game / ".lanpeer.part").mkdir()
    (game / ".lanpeer.part" / "a.eti").write_bytes(b"partial")
    (game / ".lanpeer.json").write_text("{}")
    (tmp_path / "secret").write_bytes(b"secret")
    (game / "link").symlink_to(tmp_path / "secret")
    catalog(root, "g")
    library = await open_library([root])
    manifest = await library.wait_manifest("g")
    assert [f.path for f in manifest.files] == ["a.eti", "art/c.png", "version.ini"]
    assert library.local_games()[0].size == sum(f.size for f in manifest.files)


@pytest.mark.asyncio
async def test_background_hashing_fills_in_manifest_hashes(
    root: Path, open_library: OpenLibrary
) -> None:
    for name in ("a", "b", "c"):
        make_game(root, name, files={"x.eti": name.encode() * 1000})
    catalog(root, "a", "b", "c")
    library = await open_library([root])
    await RevWatch(library).wait_until(
        lambda: all(s.manifest_hash is not None for s in library.snapshot())
    )
    assert library.files_hashed == 6


@pytest.mark.asyncio
async def test_two_roots_first_root_wins(tmp_path: Path, open_library: OpenLibrary) -> None:
    first, second = tmp_path / "r1", tmp_path / "r2"
    make_game(first, "dup", version="1")
    make_game(second, "dup", version="2")
    make_game(second, "only2")
    catalog(first, "dup", "only2")
    library = await open_library([first, second])
    assert library.game_dir("dup") == first / "dup"
    assert library.game_dir("only2") == second / "only2"
    assert library.game_dir_for_new("newgame") == first / "newgame"
    assert library.game_dir_for_new("only2") == second / "only2"
    with pytest.raises(UnknownGameError):
        library.game_dir("nothing")
    assert {s.id: s.version for s in library.snapshot()} == {"dup": "1", "only2": "1.0"}


@pytest.mark.asyncio
async def test_operation_marks_busy_and_rescans_on_exit(
    root: Path, open_library: OpenLibrary
) -> None:
    make_game(root, "g", version="1")
    catalog(root, "g")
    library = await open_library([root])
    manifest = await library.wait_manifest("g")
    async with library.operation("g"):
        assert library.snapshot() == []
        assert library.local_games()[0].busy
        with pytest.raises(ServeRefused) as refused:
            library.open_served_file("g", manifest.manifest_hash, "data.eti")
        assert refused.value.wire_code is ErrorCode.BUSY
        with pytest.raises(ConflictError), library.operation("g"):
            pass
        (root / "g" / "version.ini").write_text("version=2\n")
    assert [(s.id, s.version) for s in library.snapshot()] == [("g", "2")]
    updated = await library.wait_manifest("g")
    assert updated.manifest_hash != manifest.manifest_hash


@pytest.mark.asyncio
async def test_sync_operation_queues_the_rescan(root: Path, open_library: OpenLibrary) -> None:
    catalog(root, "newgame")
    library = await open_library([root])
    watch = RevWatch(library)
    with library.operation("newgame"):
        make_game(library.game_dir_for_new("newgame").parent, "newgame")
    await watch.wait_until(lambda: [s.id for s in library.snapshot()] == ["newgame"])


@pytest.mark.asyncio
async def test_rescan_during_rescan_sets_pending_and_loops_once_more(
    root: Path, open_library: OpenLibrary
) -> None:
    make_game(root, "g", files={"a.eti": b"1"})
    catalog(root, "g")
    library = await open_library([root], background_hashing=False)
    scans = library.game_scans
    first = asyncio.create_task(library.rescan("g"))
    await asyncio.sleep(0)  # let the first rescan start and reach its worker thread
    (root / "g" / "b.eti").write_bytes(b"2")
    await library.rescan("g")  # arrives while the first runs: pending, not a second loop
    await first
    assert library.game_scans - scans == 2
    manifest = await library.wait_manifest("g")
    assert "b.eti" in [f.path for f in manifest.files]


@pytest.mark.asyncio
async def test_removed_game_disappears_and_delta_says_so(
    root: Path, open_library: OpenLibrary
) -> None:
    make_game(root, "a")
    make_game(root, "b")
    catalog(root, "a", "b")
    library: GameLibrary = await open_library([root], background_hashing=False)
    old_rev, old = library.library_rev, {s.id: s for s in library.snapshot()}
    for path in sorted((root / "b").iterdir()):
        path.unlink()
    (root / "b").rmdir()
    make_game(root, "a", files={"new.eti": b"n"})
    await library.rescan()
    delta = library.delta_since(old_rev)
    assert delta is not None
    assert delta.removed == ["b"]
    assert apply_delta(old, delta) == {s.id: s for s in library.snapshot()}
    assert library.delta_since(old_rev + 100) is None


@pytest.mark.asyncio
async def test_a_peer_request_does_not_wait_behind_background_hashing(
    root: Path, open_library: OpenLibrary
) -> None:
    make_game(root, "b")
    catalog(root, "b")
    library = await open_library([root], background_hashing=False)
    gate = threading.Event()
    busy_thread = library._started()[1]._background_pool.submit(gate.wait, 30)  # a huge game
    try:
        async with asyncio.timeout(10):
            manifest = await library.wait_manifest("b")
    finally:
        gate.set()
    assert busy_thread.result() is True
    assert manifest.game_id == "b"


@pytest.mark.asyncio
async def test_a_symlinked_game_dir_is_not_a_game(
    root: Path, tmp_path: Path, open_library: OpenLibrary
) -> None:
    elsewhere = make_game(tmp_path / "elsewhere", "real")
    (root / "linked").symlink_to(elsewhere)
    catalog(root, "linked")
    library = await open_library([root])
    await library.rescan("linked")
    assert library.local_games() == []
    assert library.snapshot() == []


@pytest.mark.asyncio
async def test_a_game_that_cannot_be_read_is_not_rehashed_until_it_changes(
    root: Path, open_library: OpenLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_game(root, "g")
    catalog(root, "g")
    real_hash_game = scanner.hash_game
    calls: list[str] = []

    def failing_disk(record: Any, index: Any, progress: Any, *_: Any) -> Any:  # no EIO on demand
        calls.append(record.game_id)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real_hash_game(record, index, progress)

    monkeypatch.setattr(scanner, "hash_game", failing_disk)
    library = await open_library([root], background_hashing=False)
    for _ in range(2):
        with pytest.raises(ServeRefused) as refused:
            await library.wait_manifest("g")
        assert refused.value.wire_code is ErrorCode.INTERNAL
    assert calls == ["g"]
    (root / "g" / "new.eti").write_bytes(b"new")
    await library.rescan("g")
    manifest = await library.wait_manifest("g")
    assert calls == ["g", "g"]
    assert "new.eti" in [f.path for f in manifest.files]
