"""Fixtures that start real lanpeerd processes (the daemon tests' harness and fixtures), and
``party``: the two daemons the peer-cli modules share (each module names its seeder's games)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import pytest

from tests.daemon.conftest import daemon, daemons
from tests.daemon.harness import Lanpeerd, ask_json, json_watch, wait_until

__all__ = ["daemon", "daemons"]  # fixtures shared with the daemon tests


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanpeerd]:
    """One daemon for the read-only tests of a module (each start costs about a second)."""
    running = Lanpeerd(tmp_path_factory.mktemp("shared")).start()
    yield running
    running.kill()


class SampleGame(NamedTuple):
    """A game the party's seeder offers (``lanpeer.library.samples.generate_game``)."""

    game_id: str
    size: int
    seed: int
    archives: int = 3


@dataclass(frozen=True)
class Party:
    seeder: Lanpeerd
    leecher: Lanpeerd
    seeder_id: str
    first_event: dict[str, Any]  # the leecher's first `watch` event after add-peer


@pytest.fixture(scope="module")
def party_games() -> list[SampleGame]:
    """What the seeder offers: a module that uses ``party`` defines its own."""
    pytest.fail("a module using the `party` fixture defines `party_games`")


@pytest.fixture(scope="module")
def party(
    tmp_path_factory: pytest.TempPathFactory, party_games: list[SampleGame]
) -> Iterator[Party]:
    """A seeder with ``party_games`` and a leecher (download capped at 4 MiB/s, auto-update off:
    tests drive `update` by hand) that finds it through `add-peer` while watched; yielded once
    every game is offered and hashed."""
    from lanpeer.library.samples import generate_game, write_catalog

    home = tmp_path_factory.mktemp("party")
    games = home / "seeder" / "games"
    games.mkdir(parents=True)
    for game in party_games:
        generate_game(games, game.game_id, game.size, seed=game.seed, archives=game.archives)
    write_catalog(games / "catalog.toml", [game.game_id for game in party_games])
    seeder = Lanpeerd(home / "seeder", name="seeder").start()
    leecher = Lanpeerd(
        home / "leecher", name="leecher",
        extra=["--max-download", "4MiB/s", "--auto-update", "off"],
    ).start()  # fmt: skip
    watch = json_watch(leecher)
    try:
        added = leecher.cli("add-peer", f"127.0.0.1:{seeder.port}")
        assert added.rc == 0, added.err
        assert watch.stdout is not None
        first = json.loads(watch.stdout.readline())  # blocks until the first event
        watch.terminate()
        for game in party_games:
            wait_until(f"{game.game_id} offered and hashed", partial(_ready, leecher, game.game_id))
        seeder_id = ask_json(seeder, cmd="status")["result"]["peer_id"]
        yield Party(seeder, leecher, seeder_id, first)
    finally:
        watch.kill()
        watch.communicate(timeout=5)  # also closes the pipe
        seeder.kill()
        leecher.kill()


def _ready(daemon: Lanpeerd, game_id: str) -> bool:
    games = ask_json(daemon, cmd="games")["result"]["games"]
    return any(g["id"] == game_id and g["ready_peers"] for g in games)
