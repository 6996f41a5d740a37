"""Resume after restart, version changes, and cancel cleanup (SPEC §7) over real files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from lanpeer.download import DownloadManager, SourceSet
from lanpeer.download.staging import PART_DIR, STATE_NAME
from tests.download.helpers import (
    CHUNK,
    DirSource,
    GatedSource,
    in_catalog,
    manifest_of,
    open_library,
    random_bytes,
    tree_bytes,
    wait_for,
    write_game,
)

GAME = "castle"
SIZE = 40 * CHUNK


def seed(tmp_path: Path, name: str = "seed", salt: int = 0, version: str = "2.0") -> Path:
    files = {"data.eti": random_bytes(SIZE, 10 + salt), "art/cover.png": random_bytes(CHUNK, 11)}
    return write_game(tmp_path / name / GAME, files, version)


def saved_chunks(game_dir: Path) -> int:
    try:
        state = json.loads((game_dir / PART_DIR / STATE_NAME).read_text())
    except (OSError, ValueError):
        return 0
    import base64

    return sum(
        bin(int.from_bytes(base64.b64decode(v), "big")).count("1") for v in state["files"].values()
    )


@pytest.mark.asyncio
async def test_restart_resumes_from_saved_chunks(tmp_path: Path) -> None:
    src_dir = seed(tmp_path)
    m = manifest_of(src_dir, GAME)
    lib_root = tmp_path / "games"
    dest = tmp_path / "games" / GAME
    first = GatedSource("A", src_dir, m.manifest_hash, serve=20)
    async with open_library(lib_root) as lib, DownloadManager(lib, SourceSet()) as mgr:
        mgr.sources.add(GAME, m.manifest_hash, first)  # type: ignore[attr-defined]
        mgr.submit_download(GAME, m)
        await first.holding.wait()
        await wait_for(lambda: saved_chunks(dest) >= 18)
    # the daemon stopped: staging and resume state stay, and a new run finds them
    assert (dest / PART_DIR / STATE_NAME).exists()
    async with open_library(lib_root) as lib:
        assert DownloadManager(lib, SourceSet()).unfinished_downloads() == {GAME: m.manifest_hash}
    saved = saved_chunks(dest)
    second = DirSource("B", src_dir, m.manifest_hash)
    srcs = SourceSet()
    srcs.add(GAME, m.manifest_hash, second)
    async with open_library(lib_root) as lib, DownloadManager(lib, srcs) as mgr:
        op = mgr.submit_download(GAME, m)
        async with asyncio.timeout(20):
            await op.wait_finished()
    assert op.state == "done", op.error
    assert tree_bytes(dest) == tree_bytes(src_dir)
    total = sum(f.size for f in m.files)
    remaining = total - saved * CHUNK
    assert second.bytes_served < remaining + 2 * CHUNK


@pytest.mark.asyncio
async def test_resume_with_another_manifest_restarts_cleanly(tmp_path: Path) -> None:
    old_src = seed(tmp_path, "old", salt=0)
    new_src = seed(tmp_path, "new", salt=1, version="3.0")
    m_old, m_new = manifest_of(old_src, GAME), manifest_of(new_src, GAME)
    lib_root = tmp_path / "games"
    dest = tmp_path / "games" / GAME
    gated = GatedSource("A", old_src, m_old.manifest_hash, serve=20)
    srcs = SourceSet()
    srcs.add(GAME, m_old.manifest_hash, gated)
    async with open_library(lib_root) as lib, DownloadManager(lib, srcs) as mgr:
        mgr.submit_download(GAME, m_old)
        await wait_for(lambda: saved_chunks(dest) >= 18)
    fresh = DirSource("B", new_src, m_new.manifest_hash)
    srcs2 = SourceSet()
    srcs2.add(GAME, m_new.manifest_hash, fresh)
    async with open_library(lib_root) as lib, DownloadManager(lib, srcs2) as mgr:
        op = mgr.submit_download(GAME, m_new)
        async with asyncio.timeout(20):
            await op.wait_finished()
    assert op.state == "done", op.error
    assert tree_bytes(dest) == tree_bytes(new_src)  # nothing of the old version mixed in
    assert fresh.bytes_served == sum(f.size for f in m_new.files)


@pytest.mark.asyncio
async def test_source_content_changes_mid_download(tmp_path: Path) -> None:
    src_dir = seed(tmp_path)
    m1 = manifest_of(src_dir, GAME)
    src = GatedSource("A", src_dir, m1.manifest_hash, serve=15)
    srcs = SourceSet()
    srcs.add(GAME, m1.manifest_hash, src)
    newest = {"m": m1}

    async def resolver(game_id: str):  # type: ignore[no-untyped-def]
        return newest["m"]

    lib_root = tmp_path / "games"
    async with (
        open_library(lib_root) as lib,
        DownloadManager(lib, srcs, manifest_resolver=resolver) as mgr,
    ):
        op = mgr.submit_download(GAME, m1)
        await src.holding.wait()
        # the seeder's game changes: new bytes, new manifest; the old version is refused
        write_game(src_dir, {"data.eti": random_bytes(SIZE, 99)}, "2.1")
        m2 = manifest_of(src_dir, GAME)
        src.manifest_hash = m2.manifest_hash
        srcs.remove("A")
        srcs.add(GAME, m2.manifest_hash, src)
        newest["m"] = m2
        src.gate.set()
        async with asyncio.timeout(20):
            await op.wait_finished()
    assert op.state == "done", op.error
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(src_dir)


def previous_version(tmp_path: Path) -> Path:
    """A game already downloaded (v1) and installed, with user and external files."""
    old = write_game(
        tmp_path / "games" / GAME,
        {"data.eti": random_bytes(SIZE, 50), "art/cover.png": random_bytes(CHUNK, 51)},
        "1.0",
    )
    (old / "local").mkdir()
    (old / "local" / "save.dat").write_bytes(b"precious")
    (old / ".sync").mkdir()
    (old / ".softlan_game_installed").write_text("x")
    (old / ".lanpeer.json").write_text("{}")
    return old


@pytest.mark.asyncio
@pytest.mark.parametrize("percent", [0, 50, 95])
@pytest.mark.parametrize("has_previous", [False, True])
async def test_cancel_leaves_nothing_behind(
    tmp_path: Path, percent: int, has_previous: bool
) -> None:
    src_dir = seed(tmp_path)
    m = manifest_of(src_dir, GAME)
    dest = tmp_path / "games" / GAME
    before = {}
    if has_previous:
        previous_version(tmp_path)
        before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    n = sum(len(f.chunk_hashes) for f in m.files)
    src = GatedSource("A", src_dir, m.manifest_hash, serve=n * percent // 100)
    srcs = SourceSet()
    srcs.add(GAME, m.manifest_hash, src)
    lib_root = tmp_path / "games"
    async with open_library(lib_root) as lib, DownloadManager(lib, srcs) as mgr:
        op = mgr.submit_download(GAME, m)
        await wait_for(lambda: src.holding.is_set() or op.state in ("done", "failed"))
        assert src.holding.is_set(), (op.state, op.error)
        started = time.monotonic()
        assert await mgr.cancel(GAME)
        assert time.monotonic() - started < 0.25
        assert op.state == "cancelled"
    if has_previous:
        after = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
        assert after == before  # v1, local/, .sync, markers and intent log untouched
    else:
        assert not dest.exists()
    async with open_library(lib_root) as lib:
        assert not in_catalog(lib, GAME)


@pytest.mark.asyncio
async def test_cancel_during_backoff_is_prompt(tmp_path: Path) -> None:
    src_dir = seed(tmp_path)
    m = manifest_of(src_dir, GAME)
    dead = DirSource("A", src_dir, m.manifest_hash)
    dead.alive = False
    srcs = SourceSet()
    srcs.add(GAME, m.manifest_hash, dead)
    async with open_library(tmp_path / "games") as lib, DownloadManager(lib, srcs) as mgr:
        op = mgr.submit_download(GAME, m)
        await wait_for(lambda: op.state == "stalled")  # dead peer in its 1 s backoff
        started = time.monotonic()
        await mgr.cancel(GAME)
        assert time.monotonic() - started < 0.25
    assert not (tmp_path / "games" / GAME).exists()
