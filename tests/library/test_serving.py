"""open_served_file: the refusals of SPEC §4 as typed errors, and fds that are what they claim."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest

from lanpeer.library import GameLibrary, ServeRefused

from .helpers import catalog, make_game

OpenLibrary = Any


async def _served(root: Path, open_library: OpenLibrary) -> tuple[GameLibrary, Manifest]:
    game = make_game(root, "g", installed=True, files={"a.eti": b"alpha", "sub/b.bin": b"beta"})
    (game / ".lanpeer.json").write_text("{}")
    catalog(root, "g")
    library = await open_library([root])
    return library, await library.wait_manifest("g")


def _refusal(library: GameLibrary, manifest_hash: bytes, path: str, game: str = "g") -> ErrorCode:
    with pytest.raises(ServeRefused) as refused:
        os.close(library.open_served_file(game, manifest_hash, path))
    return refused.value.wire_code


@pytest.mark.asyncio
async def test_serves_the_bytes_of_the_manifest(root: Path, open_library: OpenLibrary) -> None:
    library, manifest = await _served(root, open_library)
    fd = library.open_served_file("g", manifest.manifest_hash, "sub/b.bin")
    try:
        assert os.pread(fd, 100, 0) == b"beta"
        assert os.get_blocking(fd)
    finally:
        os.close(fd)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    ["../g/a.eti", "/etc/passwd", "sub\\b.bin", "a.eti\x00", "sub/../a.eti", "", "./a.eti",
     "local/game.exe", ".lanpeer.json"],
)  # fmt: skip
async def test_hostile_paths_are_bad_path(root: Path, open_library: OpenLibrary, path: str) -> None:
    library, manifest = await _served(root, open_library)
    assert _refusal(library, manifest.manifest_hash, path) is ErrorCode.BAD_PATH


@pytest.mark.asyncio
async def test_unknown_things_are_not_found(root: Path, open_library: OpenLibrary) -> None:
    library, manifest = await _served(root, open_library)
    assert _refusal(library, manifest.manifest_hash, "nope.eti") is ErrorCode.NOT_FOUND
    assert _refusal(library, manifest.manifest_hash, "a.eti", game="other") is ErrorCode.NOT_FOUND


@pytest.mark.asyncio
async def test_wrong_or_outdated_manifest_is_stale(root: Path, open_library: OpenLibrary) -> None:
    library, manifest = await _served(root, open_library)
    assert _refusal(library, b"\x01" * 32, "a.eti") is ErrorCode.STALE_MANIFEST
    (root / "g" / "a.eti").write_bytes(b"changed!")
    assert _refusal(library, manifest.manifest_hash, "a.eti") is ErrorCode.STALE_MANIFEST
    await library.rescan("g")
    assert _refusal(library, manifest.manifest_hash, "sub/b.bin") is ErrorCode.STALE_MANIFEST
    fresh = await library.wait_manifest("g")
    os.close(library.open_served_file("g", fresh.manifest_hash, "a.eti"))


@pytest.mark.asyncio
async def test_a_file_swapped_for_a_symlink_is_never_opened(
    root: Path, tmp_path: Path, open_library: OpenLibrary
) -> None:
    library, manifest = await _served(root, open_library)
    (tmp_path / "secret").write_bytes(b"secret")
    os.unlink(root / "g" / "a.eti")
    (root / "g" / "a.eti").symlink_to(tmp_path / "secret")
    assert _refusal(library, manifest.manifest_hash, "a.eti") is ErrorCode.NOT_FOUND
    os.rename(root / "g" / "sub", root / "g" / "sub-real")
    (root / "g" / "sub").symlink_to(root / "g" / "sub-real")
    assert _refusal(library, manifest.manifest_hash, "sub/b.bin") is ErrorCode.NOT_FOUND


@pytest.mark.asyncio
async def test_not_downloaded_is_busy(root: Path, open_library: OpenLibrary) -> None:
    library, manifest = await _served(root, open_library)
    os.unlink(root / "g" / "version.ini")
    await library.rescan("g")
    assert _refusal(library, manifest.manifest_hash, "a.eti") is ErrorCode.BUSY
    with pytest.raises(ServeRefused):
        await library.wait_manifest("g")
    assert library.snapshot() == []
