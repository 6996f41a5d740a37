"""A `--version` pin survives a restart mid-download (issue 13: the resumed download once
fetched and committed the newest version instead)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lanpeer.library.samples import generate_game, write_catalog
from tests.daemon.harness import Lanpeerd, ask_json, wait_until

pytestmark = pytest.mark.process

GAME = "pinned-game"
SIZE = 24 << 20
DEADLINE = 60.0


def seeder(home: Path, version: str, seed: int, daemons: list[Lanpeerd]) -> Lanpeerd:
    daemon = Lanpeerd(home, name=f"seeder-{version}", extra=["--max-upload", "6MB/s"])
    daemon.games.mkdir(parents=True)
    generate_game(daemon.games, GAME, SIZE, seed=seed, archives=2, version=version)
    write_catalog(daemon.games / "catalog.toml", [GAME])
    daemons.append(daemon.start())
    return daemon


def offered(daemon: Lanpeerd, version: str) -> bool:
    game = next(
        (g for g in ask_json(daemon, cmd="games")["result"]["games"] if g["id"] == GAME), None
    )
    return bool(game and any(s["version"] == version and s["manifest_hash"]
                             for s in game["sources"]))  # fmt: skip


def test_a_pinned_download_resumes_the_pinned_version(
    tmp_path: Path, daemons: list[Lanpeerd]
) -> None:
    old = seeder(tmp_path / "old", "1.0", 1, daemons)
    new = seeder(tmp_path / "new", "1.1", 2, daemons)
    both = ["--peer", f"127.0.0.1:{old.port}", "--peer", f"127.0.0.1:{new.port}"]
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher", extra=both)
    daemons.append(leecher.start())
    wait_until(
        "both offers", lambda: offered(leecher, "1.0") and offered(leecher, "1.1"), timeout=DEADLINE
    )
    assert leecher.cli("download", GAME, "--version", "1.0", "--no-install").rc == 0
    saved = leecher.games / GAME / ".lanpeer.part" / ".lanpeer.json"
    # saved every few verified chunks
    wait_until("the resume state", saved.is_file, timeout=DEADLINE)
    leecher.kill()
    state = json.loads(saved.read_text())
    assert state["pin"] == "1.0"

    # Back with only the newer version's seeder in reach: the pinned download must wait.
    leecher.extra = ["--peer", f"127.0.0.1:{new.port}"]
    leecher.start()
    wait_until("the newer offer", lambda: offered(leecher, "1.1"), timeout=DEADLINE)
    (op,) = ask_json(leecher, cmd="ops")["result"]["ops"]
    assert op["state"] == "stalled", op  # once: it restarted on 1.1 here
    assert leecher.cli("add-peer", f"127.0.0.1:{old.port}").rc == 0
    wait_until(
        "the download to finish",
        lambda: ask_json(leecher, cmd="ops")["result"]["ops"] == [],
        timeout=DEADLINE,
    )
    assert "version=1.0" in (leecher.games / GAME / "version.ini").read_text()


def test_a_stalled_download_says_why_and_keeps_its_name_and_size(
    tmp_path: Path, daemons: list[Lanpeerd]
) -> None:
    """Once: no reason anywhere, and the game's row lost its name and size."""
    source = seeder(tmp_path / "old", "1.0", 1, daemons)
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher",
                       extra=["--peer", f"127.0.0.1:{source.port}"])  # fmt: skip
    daemons.append(leecher.start())
    wait_until("the offer", lambda: offered(leecher, "1.0"), timeout=DEADLINE)
    before = next(g for g in ask_json(leecher, cmd="games")["result"]["games"] if g["id"] == GAME)
    assert leecher.cli("download", GAME, "--no-install").rc == 0
    wait_until(
        "bytes",
        lambda: any(op["bytes_done"] for op in ask_json(leecher, cmd="ops")["result"]["ops"]),
        timeout=DEADLINE,
    )
    source.stop()  # the only source leaves (Goodbye)

    def stalled() -> Any:
        ops = ask_json(leecher, cmd="ops")["result"]["ops"]
        return ops[0] if ops and ops[0]["state"] == "stalled" else None

    op = wait_until("the download to stall", stalled, timeout=DEADLINE)
    assert "no connected peer serves this version" in op["reason"]
    row = next(g for g in ask_json(leecher, cmd="games")["result"]["games"] if g["id"] == GAME)
    assert (row["name"], row["size"]) == (before["name"], before["size"])
    assert "no connected peer serves" in leecher.cli("ops", json_output=False).out
    assert leecher.cli("cancel", GAME).rc == 0
