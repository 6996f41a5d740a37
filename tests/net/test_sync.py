"""Two and three real peer stacks on loopback: handshake, library sync, deltas, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.net.conftest import running_node, wait_for
from tests.net.dirlibrary import DirLibrary


@pytest.mark.asyncio
async def test_two_peers_handshake_and_sync(tmp_path: Path) -> None:
    lib_a = DirLibrary(tmp_path / "a-games")
    lib_a.add_game("quake", {"quake.bin": b"q" * 3000})
    async with (
        running_node(tmp_path, "alpha", library=lib_a) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        await wait_for(a, lambda: len(a.peers()) == 1 and a.peers()[0].connected)
        (pa,) = b.peers()
        assert pa.peer_id == a.identity.peer_id
        assert pa.name == "alpha"
        assert pa.address == a.listen
        assert pa.connected
        (pb,) = a.peers()
        assert pb.peer_id == b.identity.peer_id
        assert pb.address == b.listen  # Hello.listen_port, not the QUIC source port
