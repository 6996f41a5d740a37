"""The first download of a game its seeder is still hashing (a cold disk): two real lanpeerd
processes and ``peer-cli --json download --wait``. The download waits, shows how far the
seeder's hashing has got as it moves, then completes with the seeder's exact files.

The seeder hashes no faster than ``LANPEER_FAULT_HASH_RATE`` (the test-only fault switch), so a
36 MiB game takes ~12 s to hash: long enough to outlast the request's own short wait.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanpeer.library.samples import generate_game, write_catalog
from lanpeer.library.scanner import HASH_RATE_ENV
from tests.daemon.harness import Lanpeerd
from tests.scenarios.gamefiles import tree_hash

pytestmark = pytest.mark.process

MIB = 1 << 20
GAME = "cold-game"


def test_a_download_waits_for_the_seeders_hash_showing_its_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    games = tmp_path / "seeder" / "games"
    games.mkdir(parents=True)
    generate_game(games, GAME, 36 * MIB, seed=7, archives=2)
    write_catalog(games / "catalog.toml", [GAME])
    monkeypatch.setenv(HASH_RATE_ENV, str(3 * MIB))  # the seeder's disk only: ~12 s
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder").start()
    monkeypatch.delenv(HASH_RATE_ENV)
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher", extra=["--auto-update", "off"])
    try:
        leecher.start()
        added = leecher.cli("add-peer", f"127.0.0.1:{seeder.port}")
        assert added.rc == 0, added.err
        done = leecher.cli("download", GAME, "--no-install", "--wait", timeout=60)
        assert done.rc == 0, done.out + done.err
        events = [json.loads(line) for line in done.out.splitlines()]
        waiting = [e for e in events if e["event"] == "progress" and e.get("hashing")]
        hashed = [e["hashing"]["hashed_bytes"] for e in waiting]
        assert len(set(hashed)) >= 2, waiting  # the seeder's progress, as it moved
        assert hashed == sorted(hashed)
        last = waiting[-1]
        assert last["state"] == "stalled"
        assert last["hashing"]["name"] == "seeder"
        assert last["hashing"]["total_bytes"] >= 36 * MIB
        assert last["reason"].startswith("waiting for seeder (")
        assert "% (" in last["reason"]
        assert events[-1]["event"] == "finished"
        assert events[-1]["ok"] is True
        assert tree_hash(leecher.games / GAME) == tree_hash(games / GAME)
    finally:
        leecher.kill()
        seeder.kill()
