"""The typed seams: the composition root, error codes, the offers seam, one counters type,
and the process guard every test runs under."""

from __future__ import annotations

import asyncio
import subprocess
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
from lanpeer_proto.control import EXIT_CODES, ControlErrorCode
from lanpeer_proto.messages import GameSummary, Manifest

import lanpeer.errors
from lanpeer.control.server import error_message
from lanpeer.download import DownloadManager, SourceSet
from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError, UnknownPeerError
from lanpeer.parts import Parts
from tests.conftest import UnmarkedProcessError
from tests.download.helpers import (
    DirSource,
    in_catalog,
    manifest_of,
    open_library,
    random_bytes,
    write_game,
)

GAME = "space-race"


def test_parts_are_frozen_and_typed_without_any() -> None:
    hints = typing.get_type_hints(Parts)
    assert set(hints) == {
        "config", "events", "library", "identity", "node", "downloads", "installs", "keep",
        "share",
    }  # fmt: skip
    # The one part that may be absent: the HTTP share is off unless --http-share (SPEC §9c).
    assert str(hints["share"]) == "lanpeer.share.server.ShareServer | None"
    assert typing.Any not in hints.values()
    assert all(not str(hint).startswith("typing.Optional") for hint in hints.values())
    assert Parts.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert not hasattr(lanpeer.errors, "NotAvailableError")


def test_each_error_class_carries_its_control_code() -> None:
    class PeerGone(UnknownPeerError):
        code = "peer_gone"  # a finer reason; the control code is still the class's

    assert error_message(PeerGone("x")).code is ControlErrorCode.UNKNOWN_PEER
    assert error_message(UnknownGameError("x")).code is ControlErrorCode.UNKNOWN_GAME
    assert error_message(ConflictError("x")).code is ControlErrorCode.CONFLICT
    assert error_message(LanpeerError("x")).code is ControlErrorCode.FAILED
    assert not hasattr(LanpeerError, "exit_code")  # exit codes live in one table only
    assert error_message(PeerGone("x")).exit_code == EXIT_CODES[ControlErrorCode.UNKNOWN_PEER]


@dataclass
class Offer:
    peer_id: str
    games: dict[str, GameSummary]
    connected: bool = True


class Offers:
    """The peer table as a recorder: the manager must read offers from here, and only here."""

    def __init__(self, manifest: Manifest, summary: GameSummary) -> None:
        self.manifest, self.summary = manifest, summary
        self.calls: list[str] = []

    def peers(self) -> list[Offer]:
        self.calls.append("peers")
        return [Offer("A", {GAME: self.summary})]

    async def fetch_manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        self.calls.append(f"fetch_manifest {peer_id} {game_id}")
        return self.manifest


class SourcesThatLookLikeAPeerTable(SourceSet):
    """Has ``peers`` and ``fetch_manifest``: the old manager sniffed these and used them."""

    def peers(self) -> list[Offer]:
        raise AssertionError("the sources were taken for the peer table")

    async def fetch_manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        raise AssertionError("the sources were taken for the peer table")


def _seed(tmp_path: Path) -> tuple[Manifest, GameSummary, DirSource]:
    seed = write_game(tmp_path / "seed" / GAME, {"game.eti": random_bytes(200_000, 1)}, "1.0")
    m = manifest_of(seed, GAME)
    summary = GameSummary(id=GAME, name="Space Race", version="1.0",
                          manifest_hash=m.manifest_hash, size=200_000)  # fmt: skip
    return m, summary, DirSource("A", seed, m.manifest_hash)


@pytest.mark.asyncio
async def test_the_catalog_entry_comes_from_the_explicit_offers(tmp_path: Path) -> None:
    m, summary, src = _seed(tmp_path)
    sources = SourceSet()
    sources.add(GAME, m.manifest_hash, src)
    offers = Offers(m, summary)
    async with open_library(tmp_path / "games") as lib:
        async with DownloadManager(lib, sources, offers=offers) as mgr:
            op = mgr.submit_download(GAME, m)  # no summary: the offer's is used
            async with asyncio.timeout(20):
                await op.wait_finished()
        assert op.state == "done", op.error
        assert in_catalog(lib, GAME)
    assert offers.calls == ["peers"]


@pytest.mark.asyncio
async def test_sources_are_never_sniffed_for_a_peer_table(tmp_path: Path) -> None:
    m, _, src = _seed(tmp_path)
    sources = SourcesThatLookLikeAPeerTable()
    sources.add(GAME, m.manifest_hash, src)
    async with open_library(tmp_path / "games") as lib:
        async with DownloadManager(lib, sources) as mgr:
            op = mgr.submit_download(GAME, m)
            async with asyncio.timeout(20):
                await op.wait_finished()
        assert op.state == "done", op.error
        assert not in_catalog(lib, GAME)  # no offers, no summary: no catalog entry
        counters = op.counters  # one counters type: the scheduler counted into it
        assert (
            counters.requests
            == counters.chunks_fetched
            == sum(len(f.chunk_hashes) for f in m.files)
        )
        assert counters.failures == 0
        assert counters.chunks_by_peer == {"A": counters.chunks_fetched}
        assert (
            counters.bytes_done
            == counters.bytes_total
            == 200_000 + len((tmp_path / "seed" / GAME / "version.ini").read_bytes())
        )


@pytest.mark.asyncio
async def test_install_afterwards_without_an_installer_is_refused_up_front(tmp_path: Path) -> None:
    m, _, _ = _seed(tmp_path)
    async with open_library(tmp_path / "games") as lib, DownloadManager(lib, SourceSet()) as mgr:
        with pytest.raises(LanpeerError, match="no installer"):
            mgr.submit_download(GAME, m, then_install=True)
        assert mgr.operations() == []
        assert not hasattr(mgr, "submit_job")  # transactions have their own runner


def test_an_unmarked_test_cannot_start_a_process() -> None:
    with pytest.raises(UnmarkedProcessError, match=r"mark it @pytest\.mark\.process"):
        subprocess.run(["true"], check=True)


@pytest.mark.process
def test_a_marked_test_can() -> None:
    assert subprocess.run(["true"], check=True).returncode == 0
