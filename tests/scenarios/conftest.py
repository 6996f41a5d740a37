"""Fixtures of the scenario suite: ``world`` (hosts in a netns lab or on loopback) and ``games``.

Every world is closed at teardown (daemons killed, lab namespaces deleted) whatever the test did.
The report header says which mode runs and why, so a loopback run never passes silently as netns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.scenarios.gamefiles import make_game
from tests.scenarios.world import World, mode

MiB = 1 << 20


def pytest_report_header(config: pytest.Config) -> str:
    name, why = mode()
    if name == "netns":
        return "lanpeer scenarios: netns lab (each host in its own network namespace)"
    return f"lanpeer scenarios: LOOPBACK with static peers, no netns lab because: {why}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """``world(hosts, discovery="static"|"mdns") -> World``; all closed at teardown."""
    worlds: list[World] = []

    def make(hosts: int, *, discovery: str = "static") -> World:
        made = World(tmp_path, hosts, discovery=discovery)
        worlds.append(made)
        print(f"scenario world: {made.mode} ({made.why})")
        return made

    try:
        yield make
    finally:
        for made in worlds:
            made.close()


@pytest.fixture(scope="session")
def game_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scenario-games")


@pytest.fixture
def game(game_cache: Path) -> Callable[..., Path]:
    """``game(game_id, mib)`` -> a generated game dir (cached for the session)."""

    def make(game_id: str, mib: float, version: str = "1.0") -> Path:
        return make_game(game_cache, game_id, int(mib * MiB), version=version)

    return make
