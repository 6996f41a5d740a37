"""A connected peer's round-trip time, read from its real QUIC connection on loopback: what the
download planner uses to prefer the nearest holder of a chunk (SPEC §7a) and what
``peer-cli peers`` shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanpeer.download.sources import source_rtt
from lanpeer.net.fetching import PeerChunkSource
from tests.net.conftest import running_node, wait_for


@pytest.mark.asyncio
async def test_a_connected_peer_reports_a_positive_rtt(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha") as a:
        async with running_node(tmp_path, "beta", static=[a.listen]) as b:
            await wait_for(a, lambda: any(p.connected for p in a.peers()))
            (info,) = a.peers()
            assert info.peer_id == b.identity.peer_id
            assert info.rtt is not None
            assert 0 < info.rtt < 1.0  # loopback: well under a second
            # The download engine's source for that peer reads it live from the connection.
            rtt = source_rtt(PeerChunkSource(a._fetcher, info.peer_id))
            assert rtt is not None
            assert 0 < rtt < 1.0
        await wait_for(a, lambda: not any(p.connected for p in a.peers()))
        (gone,) = a.peers()
        assert gone.rtt is None  # no live session: nothing measured
        assert source_rtt(PeerChunkSource(a._fetcher, gone.peer_id)) is None
