"""The peer network's seams: nothing changes the responder once it is built, and the session
state machine stays inside the control channel."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from pathlib import Path

import pytest

from lanpeer.net.fetching import bulk_token
from lanpeer.net.node import PeerNode
from lanpeer.net.session import PeerLink
from tests.net.conftest import running_node, wait_for

LANPEER_ROOT = Path(__file__).resolve().parents[2] / "lanpeer"


def _session(node: PeerNode) -> PeerLink:
    (record,) = node._table.records()
    session = record.live_session()
    assert session is not None
    return session


@pytest.mark.asyncio
async def test_the_responder_is_built_with_the_bound_bulk_port(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, "alpha") as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any(p.connected for p in b.peers()))
        assert isinstance(a.bulk_port, int)
        assert a.bulk_port > 0
        token = await bulk_token(_session(b))
        assert token.port == a.bulk_port  # what the responder answers is what was bound
        responder = a._responder
        assert responder is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            responder.bulk_port = 1  # type: ignore[misc]


@pytest.mark.asyncio
async def test_a_quic_only_node_has_no_bulk_port(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha", bulk="quic") as a:
        assert a.bulk_port is None


def _machine_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{path.relative_to(LANPEER_ROOT.parent)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in {"machine", "_machine"}
    ]


def test_only_the_control_channel_touches_the_session_state_machine() -> None:
    """``channel.machine`` is private: the node and the link use the channel's named methods."""
    reads = [
        read
        for path in sorted(LANPEER_ROOT.rglob("*.py"))
        if path != LANPEER_ROOT / "net" / "handshake.py"
        for read in _machine_reads(path)
    ]
    assert reads == []
    assert _machine_reads(LANPEER_ROOT / "net" / "handshake.py")  # the check sees attributes


@pytest.mark.asyncio
async def test_the_channel_reports_the_sessions_liveness(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, "alpha") as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any(p.connected for p in b.peers()))
        link = _session(b)
        assert link.last_seen > 0.0  # the handshake's messages were received
        before = link.last_seen
        link.note_activity()
        assert link.last_seen >= before
        assert not hasattr(link._channel, "machine")


@pytest.mark.asyncio
async def test_waiting_for_a_static_peer_ends_on_its_outcome(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, "alpha") as a,
        running_node(tmp_path, "beta") as b,
    ):
        itself = a.add_static_peer(*a.listen)
        error = await asyncio.wait_for(a.wait_static_outcome(itself), 10)
        assert error is not None
        assert "this very peer" in error
        other = b.add_static_peer(*a.listen)
        assert await asyncio.wait_for(b.wait_static_outcome(other), 10) is None
        assert {t for t in asyncio.all_tasks() if "wait_first" in repr(t)} == set()
