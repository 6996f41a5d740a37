"""``games`` / ``game GAME`` list the partial sources of our downloads (SPEC §7a) apart from
full copies: a ``sources`` row with ``partial`` and what the source holds, and ``partial_peers``.
``ControlCommands`` over recorder fakes; the real have-sets are in tests/download/test_swarm.py
and the daemons' answer through ``peer-cli --json`` in tests/scenarios/test_swarm.py."""

from __future__ import annotations

import io

import pytest
from lanpeer_cli import render
from lanpeer_proto import units
from lanpeer_proto.control import GameRequest, GameResult, GamesRequest
from rich.console import Console

from lanpeer.net.swarm_member import PartialHolder
from tests.seams.recorders import build, local_game, peer, summary

NEW = b"h" * 32  # the hash ``summary`` gives the offered version


@pytest.mark.asyncio
async def test_game_lists_partial_sources_with_what_they_hold() -> None:
    d = build([local_game("doom")], [peer("S", summary("doom", "1.1")), peer("L1")])
    d.node.swarm.holders = [
        PartialHolder("L1", "doom", "1.1", NEW, chunks=3, bytes=3 << 20),
        PartialHolder("L2", "quake", "2.0", b"q" * 32, chunks=1, bytes=1),  # not this game
    ]
    answer = await d.commands.answer(GameRequest(game_id="doom"))
    game = answer.result.game  # type: ignore[union-attr]
    rows = {(s.peer_id, s.partial): s for s in game.sources}
    assert set(rows) == {("S", False), ("L1", True)}
    full, part = rows["S", False], rows["L1", True]
    assert (full.held_chunks, full.held_bytes) == (None, None)
    assert (part.version, part.manifest_hash) == ("1.1", NEW.hex())
    assert (part.held_chunks, part.held_bytes) == (3, 3 << 20)
    assert game.partial_peers == ["L1"]
    assert game.peers == ["S"]  # full copies only
    # The same rows in `games`, and a game with no download of ours has none.
    games = (await d.commands.answer(GamesRequest())).result.games  # type: ignore[union-attr]
    assert {g.id: [s.partial for s in g.sources] for g in games} == {"doom": [False, True]}


@pytest.mark.asyncio
async def test_a_delta_host_is_a_full_source_of_one_version_and_partial_of_the_next() -> None:
    d = build([local_game("doom")], [peer("A", summary("doom", "1.0", b"o" * 32))])
    d.node.swarm.holders = [PartialHolder("A", "doom", "1.1", NEW, chunks=40, bytes=40 << 20)]
    game = (await d.commands.answer(GameRequest(game_id="doom"))).result.game  # type: ignore[union-attr]
    assert [(s.peer_id, s.version, s.partial, s.held_chunks) for s in game.sources] == [
        ("A", "1.0", False, None),
        ("A", "1.1", True, 40),
    ]


@pytest.mark.asyncio
async def test_peer_cli_game_says_what_a_partial_source_holds() -> None:
    d = build([local_game("doom")], [peer("S", summary("doom", "1.1"))])
    d.node.swarm.holders = [PartialHolder("L1", "doom", "1.1", NEW, chunks=3, bytes=3 << 20)]
    result = (await d.commands.answer(GameRequest(game_id="doom"))).result
    assert isinstance(result, GameResult)
    out = io.StringIO()
    render.game(Console(file=out, width=120, color_system=None), result)
    lines = [line.split() for line in out.getvalue().splitlines()]
    assert ["L1", "1.1", NEW.hex()[:16], "yes,", *units.size(3 << 20).split()] in lines
    assert ["S", "1.1", NEW.hex()[:16], "no"] in lines
