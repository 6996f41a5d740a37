"""Where a stalled download may move (issue 14 follow-up: no silent downgrade): only to a newer
version, or to another variant of its version when none of its own sources is left and the
user did not choose that variant; otherwise it stays stalled and says what is offered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lanpeer_proto.messages import Manifest

from lanpeer.download import DownloadManager, SourceSet
from lanpeer.download.planner import SchedulerSettings
from lanpeer.download.resolve import stall_hold
from tests.download.helpers import (
    CHUNK,
    DirSource,
    GatedSource,
    manifest_of,
    open_library,
    random_bytes,
    tree_bytes,
    wait_for,
    write_game,
)

GAME = "castle"
SIZE = 24 * CHUNK
SETTINGS = SchedulerSettings(version_check_every=0.05)
pytestmark = pytest.mark.timeout(60)


def seed(tmp_path: Path, name: str, version: str, salt: int) -> Path:
    files = {"data.eti": random_bytes(SIZE, 10 + salt), "art/cover.png": random_bytes(CHUNK, 11)}
    return write_game(tmp_path / name / GAME, files, version)


def fake(version: str, tag: int) -> Manifest:
    return Manifest(game_id=GAME, version=version, manifest_hash=bytes([tag]) * 32, files=[])


@pytest.mark.parametrize(
    ("offered", "own_left", "chosen", "held"),
    [
        ("2.10", False, False, None),  # newer (natural order): moves
        ("2.10", True, True, None),  # newer: moves even from a chosen variant
        ("1.9", False, False, "older 1.9"),  # a downgrade: never
        ("2.0", False, False, None),  # another variant, none of ours left: moves
        ("2.0", True, False, "do not answer"),  # ours may answer again: stays
        ("2.0", False, True, "chosen variant"),  # the user chose ours: stays
    ],
)
def test_the_stall_rule(offered: str, own_left: bool, chosen: bool, held: str | None) -> None:
    reason = stall_hold(fake("2.0", 1), fake(offered, 2), own_sources_left=own_left, chosen=chosen)
    if held is None:
        assert reason is None
    else:
        assert reason is not None
        assert held in reason


async def stall_then_offer(
    tmp_path: Path, other: Path, *, chosen: bool, reason_says: str
) -> tuple[GatedSource, DirSource, Path]:
    """Download 2.0 from A; A goes away mid-way while ``other`` (another version or variant,
    served by B) is what the peers offer: the download stays stalled saying ``reason_says``,
    then completes from A when it returns."""
    wanted_dir = seed(tmp_path, "a", "2.0", salt=0)
    wanted = manifest_of(wanted_dir, GAME)
    offered = manifest_of(other, GAME)
    a = GatedSource("A", wanted_dir, wanted.manifest_hash, serve=6)
    b = DirSource("B", other, offered.manifest_hash)
    srcs = SourceSet()
    srcs.add(GAME, wanted.manifest_hash, a)
    srcs.add(GAME, offered.manifest_hash, b)

    async def resolver(_game_id: str) -> Manifest:
        return offered  # the newest the peers offer, as peer_manifest_resolver would say

    async with (
        open_library(tmp_path / "games") as lib,
        DownloadManager(lib, srcs, manifest_resolver=resolver, settings=SETTINGS) as mgr,
    ):
        op = mgr.submit_download(GAME, wanted, chosen=chosen)
        await asyncio.wait_for(a.holding.wait(), 10)
        srcs.remove("A")  # A leaves: no source of 2.0 is left
        a.alive = False
        a.gate.set()  # its requests in flight fail
        await wait_for(lambda: reason_says in (op.reason or ""))
        assert op.state == "stalled"
        a.alive = True
        srcs.add(GAME, wanted.manifest_hash, a)  # A comes back
        async with asyncio.timeout(20):
            await op.wait_finished()
        assert op.state == "done", op.error
    return a, b, wanted_dir


@pytest.mark.asyncio
async def test_a_stalled_download_never_moves_to_an_older_version(tmp_path: Path) -> None:
    older = seed(tmp_path, "b", "1.0", salt=1)
    _, b, wanted = await stall_then_offer(tmp_path, older, chosen=False, reason_says="older 1.0")
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(wanted)
    assert b.bytes_served == 0


@pytest.mark.asyncio
async def test_a_stalled_download_keeps_the_variant_the_user_chose(tmp_path: Path) -> None:
    variant = seed(tmp_path, "b", "2.0", salt=2)  # same version string, other bytes
    _, b, wanted = await stall_then_offer(
        tmp_path, variant, chosen=True, reason_says="chosen variant"
    )
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(wanted)
    assert b.bytes_served == 0


@pytest.mark.asyncio
async def test_a_stalled_download_moves_to_another_variant_when_none_of_its_own_is_left(
    tmp_path: Path,
) -> None:
    """The seeder's game changed under the same version string (no variant chosen): once no
    source of the old content is left, the download restarts on the new content."""
    wanted_dir = seed(tmp_path, "a", "2.0", salt=0)
    wanted = manifest_of(wanted_dir, GAME)
    variant = seed(tmp_path, "b", "2.0", salt=2)
    offered = manifest_of(variant, GAME)
    a = GatedSource("A", wanted_dir, wanted.manifest_hash, serve=6)
    b = DirSource("B", variant, offered.manifest_hash)
    srcs = SourceSet()
    srcs.add(GAME, wanted.manifest_hash, a)
    srcs.add(GAME, offered.manifest_hash, b)

    async def resolver(_game_id: str) -> Manifest:
        return offered

    async with (
        open_library(tmp_path / "games") as lib,
        DownloadManager(lib, srcs, manifest_resolver=resolver, settings=SETTINGS) as mgr,
    ):
        op = mgr.submit_download(GAME, wanted)
        await asyncio.wait_for(a.holding.wait(), 10)
        srcs.remove("A")
        a.alive = False
        a.gate.set()
        async with asyncio.timeout(20):
            await op.wait_finished()
        assert op.state == "done", op.error
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(variant)
