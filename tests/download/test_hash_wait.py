"""A download waiting for its seeder to hash the game: it shows the seeder's progress, keeps
waiting while that moves, and fails naming the seeder when it stops or goes away.

``wait_hashed_offer`` over the recorder node (what each peer answers to GetHashStatus is
scripted) and a fake clock that moves by the poll interval at each wait: no real time passes.
"""

from __future__ import annotations

import pytest
from lanpeer_proto.messages import HashStatus

from lanpeer.control import views
from lanpeer.control.offers import wait_hashed_offer
from lanpeer.download.hash_wait import HashWaitLimits, PeerHashing, SeederStalledError
from lanpeer.download.operations import OpKind, OpState
from lanpeer.download.progress import ProgressEvent
from lanpeer.net.peers import PeerInfo
from tests.seams.recorders import FakeNode, Recorder, peer, summary

GB = 1_000_000_000
LIMITS = HashWaitLimits(poll=1.0, stall=60.0, gone=15.0)


def status(done: int, total: int = 20 * GB, host: int | None = None, *, hashed: bool = False):
    return HashStatus(
        game_id="doom", hashed=hashed, hashed_bytes=done, total_bytes=total,
        host_hashed_bytes=done if host is None else host,
    )  # fmt: skip


UNHASHED = peer("A", summary("doom", "1.9", manifest_hash=None))
HASHED = peer("A", summary("doom", "1.9"))


class ScriptedNode(FakeNode):
    """Each wait moves the clock by its timeout; ``script`` gives the peers after each wait
    (the last entry repeats)."""

    def __init__(self, script: list[list[PeerInfo]]) -> None:
        rec = Recorder()
        super().__init__(rec, script[0])
        self.rec_ = rec
        self.script = script[1:]
        self.now = 1000.0
        self.waits = 0
        self.seen: list[tuple[str | None, PeerHashing | None]] = []
        self.op = rec.op("doom", OpKind.DOWNLOAD)

    def clock(self) -> float:
        return self.now

    async def wait_sources_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - seam
        self.seen.append((self.op.reason, self.op.hashing))
        self.now += timeout
        self.waits += 1
        if self.script:
            self._peers = self.script.pop(0) if len(self.script) > 1 else self.script[0]


async def wait(node: ScriptedNode) -> None:
    await wait_hashed_offer(node, "doom", None, node.op, LIMITS, node.clock)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_the_wait_shows_how_far_the_seeder_has_hashed_and_starts_once_it_is_done() -> None:
    node = ScriptedNode([[UNHASHED], [UNHASHED], [HASHED]])
    node.hash_statuses["A"] = [status(0, host=5), status(8_200_000_000)]
    await wait(node)
    assert [reason for reason, _ in node.seen] == [
        "waiting for host-A (A) to hash it: queued behind its other games",
        "waiting for host-A (A) to hash it: 41 % (8.2 GB of 20.0 GB)",
    ]
    assert node.seen[1][1] == PeerHashing("A", "host-A", 8_200_000_000, 20 * GB)
    assert node.rec_.actions[-1] == "node.fetch_manifest A doom"


@pytest.mark.asyncio
async def test_a_seeder_whose_hashing_stops_fails_the_download_naming_it_after_the_limit() -> None:
    node = ScriptedNode([[UNHASHED]])
    node.hash_statuses["A"] = [status(8_200_000_000)]  # the same answer, every time
    start = node.now
    with pytest.raises(SeederStalledError) as caught:
        await wait(node)
    message = str(caught.value)
    assert "host-A (A) at 41 %" in message
    assert "no progress for 60 s" in message
    assert LIMITS.stall <= node.now - start <= LIMITS.stall + LIMITS.poll  # not sooner


@pytest.mark.asyncio
async def test_a_slow_seeder_is_waited_for_as_long_as_its_hashing_moves() -> None:
    moving = [status(n * 1_000_000) for n in range(1, 301)]  # 1 MB more per poll, 5 minutes
    node = ScriptedNode([[UNHASHED]] * 301 + [[HASHED]])
    node.hash_statuses["A"] = moving
    await wait(node)
    assert node.waits == 301
    assert node.waits * LIMITS.poll > 4 * LIMITS.stall


@pytest.mark.asyncio
async def test_a_game_queued_behind_another_waits_while_that_host_hashes_the_other() -> None:
    behind = [status(0, host=n * GB) for n in range(1, 201)]  # this game 0, the host moving
    node = ScriptedNode([[UNHASHED]] * 201 + [[HASHED]])
    node.hash_statuses["A"] = behind
    await wait(node)
    assert node.seen[-1][0] == "waiting for host-A (A) to hash it: queued behind its other games"


@pytest.mark.asyncio
async def test_a_seeder_that_goes_away_fails_the_download_naming_it() -> None:
    node = ScriptedNode([[UNHASHED], [UNHASHED], []])
    node.hash_statuses["A"] = [status(GB), status(2 * GB)]
    with pytest.raises(SeederStalledError) as caught:
        await wait(node)
    assert "host-A (A) went away before it finished hashing doom" in str(caught.value)
    assert "for 15 s" in str(caught.value)
    assert node.seen[-1][0] == (
        "no connected peer offers it now; waiting for its seeder to come back"
    )


@pytest.mark.asyncio
async def test_a_seeder_back_within_the_limit_keeps_the_download() -> None:
    away = [[]] * 10  # 10 s away: less than ``gone``
    node = ScriptedNode([[UNHASHED], *away, [UNHASHED], [HASHED]])
    node.hash_statuses["A"] = [status(GB), status(2 * GB)]
    await wait(node)
    assert node.rec_.actions[-1] == "node.fetch_manifest A doom"


@pytest.mark.asyncio
async def test_a_seeder_that_cannot_say_how_far_it_got_is_waited_for_without_end() -> None:
    node = ScriptedNode([[UNHASHED]] * 500 + [[HASHED]])  # no hash_statuses: an older peer
    await wait(node)
    assert node.waits == 500
    assert node.seen[0] == (
        "waiting for host-A (A) to finish hashing it (that peer cannot say how far)",
        None,
    )


def test_the_progress_event_of_a_waiting_download_carries_the_seeders_progress() -> None:
    hashing = PeerHashing("A" * 52, "seeder", 8_200_000_000, 20 * GB)
    event = ProgressEvent(
        "progress", "doom", OpKind.DOWNLOAD, OpState.STALLED, 0, 0, 0.0, None,
        reason=hashing.describe(), hashing=hashing,
    )  # fmt: skip
    document = views.download_event(event).model_dump(mode="json")
    assert document["hashing"] == {
        "peer_id": "A" * 52, "name": "seeder", "hashed_bytes": 8_200_000_000,
        "total_bytes": 20 * GB, "queued": False,
    }  # fmt: skip
    assert document["reason"] == (
        "waiting for seeder (AAAAAAAA) to hash it: 41 % (8.2 GB of 20.0 GB)"
    )


@pytest.mark.asyncio
async def test_a_pinned_wait_asks_only_the_seeders_of_that_version() -> None:
    other = peer("B", summary("doom", "2.0", manifest_hash=None))
    node = ScriptedNode([[UNHASHED, other], [UNHASHED, peer("B", summary("doom", "2.0"))]])
    node.hash_statuses = {"A": [status(GB)], "B": [status(2 * GB)]}
    await wait_hashed_offer(node, "doom", "2.0", node.op, LIMITS, node.clock)  # type: ignore[arg-type]
    asked = [a for a in node.rec_.actions if a.startswith("node.fetch_hash_status")]
    assert asked == ["node.fetch_hash_status B doom"]
    assert node.seen[0][1] == PeerHashing("B", "host-B", 2 * GB, 20 * GB)
