"""Manifests taken from the network between real peers on loopback (GameLibrary + PeerNode,
real QUIC): every one is checked against its content, and the version asked for is the one
answered (issue 14 follow-ups)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest

from lanpeer.download.resolve import version_manifest
from lanpeer.download.sources import SourceSet
from lanpeer.library.samples import write_catalog
from lanpeer.net.errors import ChunkRefused, ForgedManifest
from lanpeer.net.node import PeerNode
from tests.download.helpers import (
    CHUNK,
    GatedSource,
    manifest_of,
    random_bytes,
    wait_for,
    write_game,
)
from tests.download.peers import leecher, seeder

GAME = "manifest-fest"
pytestmark = pytest.mark.timeout(60)


def put_game(home: Path, version: str = "1.0", seed: int = 3) -> Path:
    files = {"data.eti": random_bytes(6 * CHUNK, seed), "cover.png": random_bytes(CHUNK // 2, 5)}
    return write_game(home / "games" / GAME, files, version)


def tampered(manifest: Manifest) -> Manifest:
    """The same ``manifest_hash`` over other content (one chunk hash changed)."""
    first = manifest.files[0]
    bad = first.model_copy(update={"chunk_hashes": [bytes(32), *first.chunk_hashes[1:]]})
    return manifest.model_copy(update={"files": [bad, *manifest.files[1:]]})


def forge(node: PeerNode, manifest: Manifest, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``node`` (a full source) answers GetManifest with ``manifest`` tampered; counts asks."""
    asked: list[int] = []

    async def forged(_game_id: str, **_kw: object) -> Manifest:
        asked.append(1)
        return tampered(manifest)

    monkeypatch.setattr(node.library, "wait_manifest", forged)
    return asked


@pytest.mark.asyncio
async def test_a_full_source_with_a_forged_manifest_is_refused_and_another_source_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """f and h both advertise the same version; f answers with other content under the right
    ``manifest_hash`` field. Asking f gives h's (verified) manifest, f is never asked again,
    and the download of it completes."""
    for home in ("f", "h"):
        put_game(tmp_path / home)
    manifest = manifest_of(tmp_path / "h" / "games" / GAME, GAME)
    async with AsyncExitStack() as stack:
        f = await stack.enter_async_context(seeder(tmp_path / "f", "f"))
        h = await stack.enter_async_context(seeder(tmp_path / "h", "h"))
        me = await stack.enter_async_context(leecher(tmp_path / "me", [f.listen, h.listen]))
        await me.wait_offers(GAME, 2)
        asked = forge(f, manifest, monkeypatch)
        got = await me.node.fetch_manifest(f.identity.peer_id, GAME)
        assert got == manifest
        assert asked == [1]
        assert await me.node.fetch_manifest(f.identity.peer_id, GAME) == manifest
        assert asked == [1]  # banned: never asked again while it is in the table
        op = me.manager.submit_download(GAME, got)
        await op.wait_finished()
        assert op.state == "done", op.error


@pytest.mark.asyncio
async def test_a_forged_manifest_from_the_only_source_is_a_typed_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_game(tmp_path / "f")
    manifest = manifest_of(tmp_path / "f" / "games" / GAME, GAME)
    async with AsyncExitStack() as stack:
        f = await stack.enter_async_context(seeder(tmp_path / "f", "f"))
        me = await stack.enter_async_context(leecher(tmp_path / "me", [f.listen]))
        await wait_for(lambda: any(GAME in p.games for p in me.node.peers() if p.connected))
        asked = forge(f, manifest, monkeypatch)
        for _ in range(2):
            with pytest.raises(ForgedManifest, match=r"does not hash|forged manifest before"):
                await me.node.fetch_manifest(f.identity.peer_id, GAME)
        assert asked == [1]


@pytest.mark.asyncio
async def test_a_host_updating_gives_the_version_asked_for_by_hash(tmp_path: Path) -> None:
    """u serves 1.0 whole and downloads 1.1 (holding part of it); t asks u by hash: 1.1's
    manifest; without a hash: 1.0's (today's answer); another hash: a typed refusal."""
    old = manifest_of(put_game(tmp_path / "u", "1.0", seed=3), GAME)
    new_dir = put_game(tmp_path / "src", "1.1", seed=4)
    new = manifest_of(new_dir, GAME)
    write_catalog(tmp_path / "u" / "games" / "catalog.toml", [GAME])
    async with AsyncExitStack() as stack:
        u = await stack.enter_async_context(
            leecher(tmp_path / "u", [], name="u", directory=lambda _n: SourceSet())
        )
        await u.library.wait_manifest(GAME)
        t = await stack.enter_async_context(leecher(tmp_path / "t", [u.node.listen], name="t"))
        u_id = u.node.identity.peer_id
        await wait_for(lambda: any(GAME in p.games for p in t.node.peers() if p.connected))
        gated = GatedSource("gated", new_dir, new.manifest_hash, serve=2)
        assert isinstance(u.manager.sources, SourceSet)
        u.manager.sources.add(GAME, new.manifest_hash, gated)
        op = u.manager.submit_download(GAME, new)
        stack.callback(gated.gate.set)
        await asyncio.wait_for(gated.holding.wait(), 10)
        await wait_for(lambda: u.node.swarm.partial_manifest(GAME, new.manifest_hash) is not None)

        assert await t.node.fetch_manifest(u_id, GAME, new.manifest_hash) == new
        assert await t.node.fetch_manifest(u_id, GAME) == old
        assert await version_manifest(t.node, GAME, new.manifest_hash) == new
        with pytest.raises(ChunkRefused) as refused:
            await t.node.fetch_manifest(u_id, GAME, bytes(32))
        assert refused.value.wire_code is ErrorCode.STALE_MANIFEST
        gated.gate.set()
        await op.wait_finished()
        assert op.state == "done", op.error
