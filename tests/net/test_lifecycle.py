"""Peer lifecycle: address changes, vanished peers, three-peer sync, deltas and snapshots."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lanpeer_proto.session import SessionTimers

from lanpeer.net.errors import DialledSelf, ListenError
from lanpeer.net.identity import Identity
from lanpeer.net.node import NodeTimings, PeerNode
from lanpeer.net.peers import PeerEvent, PeerEventKind
from lanpeer.net.quic import QuicSettings, dial
from tests.net.conftest import event_flag, poll_until, running_node, wait_for
from tests.net.dirlibrary import DirLibrary

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.asyncio
async def test_known_peer_new_address_updated_in_place(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha") as a:
        async with running_node(tmp_path, "beta", static=[a.listen]) as b1:
            await wait_for(a, lambda: any(p.connected for p in a.peers()))
            first = b1.listen
        async with running_node(tmp_path, "beta", static=[a.listen]) as b2:  # same state dir
            assert b2.identity.peer_id == b1.identity.peer_id
            assert b2.listen != first
            await wait_for(a, lambda: [p.address for p in a.peers() if p.connected] == [b2.listen])
            (pb,) = a.peers()
            assert pb.peer_id == b2.identity.peer_id


@pytest.mark.asyncio
async def test_goodbye_marks_peer_down_at_once(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha") as a:
        async with running_node(tmp_path, "beta", static=[a.listen]) as b:
            down = event_flag(a, PeerEventKind.DOWN, b.identity.peer_id)
            await wait_for(a, lambda: any(p.connected for p in a.peers()))
        await asyncio.wait_for(down.wait(), 1.0)
        (pb,) = a.peers()  # still known (a Goodbye is a hint), until the stale timeout
        assert not pb.connected


def _spawn_peer(tmp_path: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "tests.net.peer_main",
        "--state",
        str(tmp_path / name / "state"),
        "--games",
        str(tmp_path / name / "games"),
        "--name",
        name,
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)


@pytest.mark.process
@pytest.mark.asyncio
async def test_vanished_peer_removed_by_stale_timeout(tmp_path: Path) -> None:
    timings = NodeTimings(stale_timeout=1.0, redial_min=0.1, redial_max=0.5, push_debounce=0.05)
    quick = SessionTimers(handshake=5.0, ping_interval=0.3, stale=1.0)
    async with running_node(tmp_path, "alpha", timings=timings, session_timers=quick) as a:
        proc = _spawn_peer(tmp_path, "beta", "--peer", f"{a.listen[0]}:{a.listen[1]}")
        try:
            assert proc.stdout is not None
            hello = json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20))
            removed = event_flag(a, PeerEventKind.REMOVED, hello["peer_id"])
            await wait_for(a, lambda: any(p.connected for p in a.peers()), within=20)
            os.kill(proc.pid, signal.SIGKILL)  # no Goodbye, no QUIC close: it just vanishes
            await asyncio.wait_for(removed.wait(), 10)
            assert a.peers() == []
        finally:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


@pytest.mark.asyncio
async def test_three_peers_delta_then_snapshot(tmp_path: Path) -> None:
    lib_a = DirLibrary(tmp_path / "a-games")
    lib_a.add_game("quake", {"q.bin": b"q" * 100})
    lib_c = DirLibrary(tmp_path / "c-games")
    lib_c.add_game("doom", {"d.bin": b"d" * 100})
    async with (
        running_node(tmp_path, "alpha", library=lib_a) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
        running_node(tmp_path, "gamma", library=lib_c, static=[a.listen, b.listen]) as c,
    ):

        def games_of(node_peer: str) -> set[str]:
            return {g for p in b.peers() if p.peer_id == node_peer for g in p.games}

        await wait_for(
            b,
            lambda: (
                games_of(a.identity.peer_id) == {"quake"}
                and games_of(c.identity.peer_id) == {"doom"}
            ),
        )
        await wait_for(a, lambda: any("doom" in p.games for p in a.peers()))
        # delta path: a adds and removes games; b applies deltas from the rev it holds
        rev_before = lib_a.library_rev
        applied = b._sync.applied
        snapshots = applied["snapshot"]
        lib_a.add_game("hexen", {"h.bin": b"h" * 10})
        lib_a.remove_game("quake")
        await wait_for(b, lambda: games_of(a.identity.peer_id) == {"hexen"})
        pa = next(p for p in b.peers() if p.peer_id == a.identity.peer_id)
        assert pa.library_rev == lib_a.library_rev > rev_before
        assert applied["delta"] >= 1
        assert applied["snapshot"] == snapshots
        # snapshot path: the server no longer has deltas from b's rev
        lib_a.forget_history = True
        lib_a.add_game("heretic", {"x.bin": b"x"})
        await wait_for(b, lambda: games_of(a.identity.peer_id) == {"hexen", "heretic"})
        assert applied["snapshot"] == snapshots + 1
        await wait_for(c, lambda: any(p.games.keys() == {"hexen", "heretic"} for p in c.peers()))


@pytest.mark.asyncio
async def test_port_in_use_is_a_clear_error_and_leaks_nothing(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha") as a:
        clash = PeerNode(Identity.generate(), DirLibrary(tmp_path / "b"), name="beta",
                         bind="127.0.0.1", port=a.listen[1], mdns=False)  # fmt: skip
        with pytest.raises(ListenError, match="pick another --port"):
            await clash.start()


@pytest.mark.asyncio
async def test_unauthenticated_cap_per_host_counts_only_strangers(tmp_path: Path) -> None:
    """Authenticated peers never count against the per-host cap (a same-host mesh); the
    connections over the cap of strangers are dropped at their first packet."""
    capped = QuicSettings(max_unauthenticated_per_host=2)
    async with (
        running_node(tmp_path, "alpha", quic_settings=capped) as a,
        running_node(tmp_path, "beta", static=[a.listen]),
        running_node(tmp_path, "gamma", static=[a.listen]),
    ):
        await wait_for(a, lambda: sum(p.connected for p in a.peers()) == 2)
        conns = [await dial(*a.listen, QuicSettings(), 5.0) for _ in range(2)]
        try:
            with pytest.raises(TimeoutError):  # the third stranger is dropped
                await dial(*a.listen, QuicSettings(), 1.0)
            assert not conns[0].is_closed
            assert not conns[1].is_closed
        finally:
            for conn in conns:
                conn.close_connection()
                conn.force_close()


@pytest.mark.asyncio
async def test_a_closing_connection_does_not_count_against_the_cap(tmp_path: Path) -> None:
    """aioquic ends a closed connection only after its draining period (3 PTO); the cap
    counts only connections that can still carry something."""
    capped = QuicSettings(max_unauthenticated_per_host=1)
    async with running_node(tmp_path, "alpha", quic_settings=capped) as a:
        assert a._quic is not None
        first = await dial(*a.listen, QuicSettings(), 5.0)
        second = None
        try:
            await poll_until(lambda: len(a._quic.connections) == 1)  # type: ignore[union-attr]
            (server_side,) = a._quic.connections
            server_side.close_connection("test: closing")
            assert server_side.is_closing
            assert not server_side.is_closed  # still draining
            second = await dial(*a.listen, QuicSettings(), 5.0)
            with pytest.raises(TimeoutError):  # admitted: nobody closes it
                await asyncio.wait_for(second.wait_ended(), 0.5)
        finally:
            for conn in (first, second):
                if conn is not None:
                    conn.close_connection()
                    conn.force_close()


@pytest.mark.asyncio
async def test_static_peer_pointing_at_ourselves_is_dropped(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha") as a:
        events: list[PeerEvent] = []
        a.add_listener(events.append)
        with pytest.raises(DialledSelf):
            await a._dial_and_run(*a.listen, expected_id=None)
        assert a.peers() == []
        assert events == []
