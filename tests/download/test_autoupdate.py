"""The auto-update policy and loop with recorder fakes and a fake clock (no daemon, no sleeps):
which games are candidates, backoff and giving up, the in-use wait, retries of a failed update.
The real-daemon scenarios are in tests/cli/test_keep_in_step.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from lanpeer_proto.messages import GameSummary

from lanpeer.download.autoupdate import (
    AutoUpdater,
    Backoff,
    Candidate,
    UpdateCancelled,
    UpdateRecord,
    update_candidates,
)
from lanpeer.errors import LanpeerError


@dataclass(frozen=True)
class Local:
    id: str
    version: str | None
    downloaded: bool = True
    installed: bool = True


@dataclass
class Peer:
    peer_id: str
    games: dict[str, GameSummary]
    connected: bool = True


def offer(game_id: str, version: str, digest: bytes | None = b"\x01" * 32) -> GameSummary:
    return GameSummary(id=game_id, name=game_id, version=version, manifest_hash=digest, size=1)


PEERS = [
    Peer(
        "A",
        {
            "inst": offer("inst", "1.1"),
            "dl": offer("dl", "2.0"),
            "old": offer("old", "0.9"),
            "unhashed": offer("unhashed", "9", None),
            "pinned": offer("pinned", "1.1"),
        },
    )
]
LOCAL = [
    Local("inst", "1.0"),
    Local("dl", "1.0", installed=False),
    Local("old", "1.0"),
    Local("unhashed", "1.0"),
    Local("pinned", "1.0"),
    Local("local-only", None, downloaded=False),
]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("off", []), ("installed", ["inst"]), ("downloaded", ["inst", "dl"])],
)
def test_candidates_follow_the_mode_and_skip_pins_older_and_unhashed(
    mode: str, expected: list[str]
) -> None:
    found = update_candidates(mode, LOCAL, PEERS, {"pinned": "1.0"})  # type: ignore[arg-type]
    assert [c.game_id for c in found] == expected
    assert all(c.have == "1.0" for c in found)


def test_backoff_doubles_up_to_its_ceiling() -> None:
    backoff = Backoff(first=30, longest=900, attempts=8)
    assert [backoff.delay(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]


@dataclass
class Actions:
    """Records every call in order; scripted failures and in-use answers."""

    calls: list[str] = field(default_factory=list)
    download_failures: int = 0
    update_failures: int = 0
    in_use_answers: list[list[int]] = field(default_factory=list)
    is_installed: bool = True
    cancel_download: bool = False  # the user cancels the next download (`peer-cli cancel`)
    cancel_update: bool = False

    def busy(self, game_id: str) -> bool:
        return False

    def installed(self, game_id: str) -> bool:
        return self.is_installed

    async def download(self, game_id: str, version: str) -> None:
        self.calls.append(f"download {game_id} {version}")
        if self.download_failures:
            self.download_failures -= 1
            raise LanpeerError("no peer answered")
        if self.cancel_download:
            self.cancel_download = False
            raise UpdateCancelled(f"the download of {game_id} was cancelled")

    async def update(self, game_id: str) -> None:
        self.calls.append(f"update {game_id}")
        if self.update_failures:
            self.update_failures -= 1
            raise LanpeerError("archive is broken")
        if self.cancel_update:
            self.cancel_update = False
            raise UpdateCancelled(f"the update of {game_id} was cancelled")

    async def in_use(self, game_id: str) -> list[int]:
        return self.in_use_answers.pop(0) if self.in_use_answers else []

    async def wait_released(self, pids: list[int], timeout: float) -> None:  # noqa: ASYNC109
        self.calls.append(f"wait {pids} {timeout}")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CANDIDATE = Candidate("inst", "1.0", "1.1")


def updater(actions: Actions, clock: Clock, candidates: list[Candidate]) -> AutoUpdater:
    return AutoUpdater(
        "installed", lambda: list(candidates), actions, clock=clock, backoff=Backoff(30, 900, 3)
    )


@pytest.mark.asyncio
async def test_a_failed_download_backs_off_then_retries_and_gives_up() -> None:
    actions, clock = Actions(download_failures=5), Clock()
    up = updater(actions, clock, [CANDIDATE])
    assert up.due() == [CANDIDATE]
    await up.attempt(CANDIDATE)
    record = up.records["inst"]
    assert (record.state, record.failures, record.error) == ("retry in 30s", 1, "no peer answered")
    assert record.retry_at == clock.now + 30
    assert up.due() == []  # backing off
    clock.now += 29.9
    assert up.due() == []
    clock.now += 0.2
    assert up.due() == [CANDIDATE]
    await up.attempt(CANDIDATE)
    assert (up.records["inst"].state, up.records["inst"].failures) == ("retry in 60s", 2)
    clock.now += 60.1
    await up.attempt(up.due()[0])
    assert (up.records["inst"].state, up.records["inst"].retry_at) == ("gave up", None)
    clock.now += 10_000
    assert up.due() == []  # gave up on 1.1 ...
    newer = Candidate("inst", "1.0", "1.2")
    up._candidates = lambda: [newer]
    assert up.due() == [newer]  # ... a newer version starts afresh
    assert actions.calls == ["download inst 1.1"] * 3


@pytest.mark.asyncio
async def test_an_update_waits_while_the_game_is_in_use() -> None:
    actions = Actions(in_use_answers=[[4242], [4242, 4343], []])
    up = updater(actions, Clock(), [CANDIDATE])
    states: list[tuple[str, tuple[int, ...]]] = []

    def seen(record: UpdateRecord) -> None:
        states.append((record.state, record.holders))

    up.add_listener(seen)
    await up.attempt(CANDIDATE)
    assert actions.calls == [
        "download inst 1.1",
        "wait [4242] 30.0",
        "wait [4242, 4343] 30.0",
        "update inst",
    ]
    assert states == [
        ("downloading", ()),
        ("waiting: in use", (4242,)),
        ("waiting: in use", (4242, 4343)),
        ("updating", ()),
        ("done", ()),
    ]
    assert up.records == {}


@pytest.mark.asyncio
async def test_a_failed_update_is_retried_although_the_download_landed() -> None:
    """After the download the game no longer looks older (its downloaded version is the
    offered one): the record alone brings the retry back."""
    actions, clock = Actions(update_failures=1), Clock()
    candidates = [CANDIDATE]
    up = updater(actions, clock, candidates)
    await up.attempt(CANDIDATE)
    assert up.records["inst"].error == "archive is broken"
    candidates.clear()  # the downloaded version is now 1.1
    clock.now += 31
    (retry,) = up.due()
    assert retry.offered == "1.1"
    await up.attempt(retry)
    assert up.records == {}
    assert actions.calls == ["download inst 1.1", "update inst", "download inst 1.1", "update inst"]


@pytest.mark.asyncio
async def test_a_downloaded_only_game_is_not_updated() -> None:
    actions = Actions(is_installed=False)
    await updater(actions, Clock(), [CANDIDATE]).attempt(CANDIDATE)
    assert actions.calls == ["download inst 1.1"]


@pytest.mark.asyncio
async def test_the_loop_checks_on_a_poke_and_every_period() -> None:
    """A peer event pokes the loop at once; without one it still checks every ``period``."""
    checked = asyncio.Event()

    def candidates() -> list[Candidate]:
        checked.set()
        return []

    up = AutoUpdater("installed", candidates, Actions(), period=3600.0)
    runner = asyncio.create_task(up.run())
    try:
        async with asyncio.timeout(5):
            await checked.wait()  # the first check, at start
            checked.clear()
            up.poke()
            await checked.wait()
        assert up.checks == 2
        up.period = 0.01  # the next wait ends by the period alone
        up.poke()  # (wakes the current hour-long wait so the new period applies)
        async with asyncio.timeout(5):
            while up.checks < 6:
                checked.clear()
                await checked.wait()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


@pytest.mark.asyncio
async def test_off_updates_nothing_by_itself_but_runs_what_is_requested() -> None:
    """Mode off: no candidates of its own; ``request`` (follow of an installed game) still
    goes through the loop and its in-use wait."""
    actions = Actions(in_use_answers=[[77], []])
    checked = asyncio.Event()

    def candidates() -> list[Candidate]:
        checked.set()
        return update_candidates("off", LOCAL, PEERS, {})

    up = AutoUpdater("off", candidates, actions, period=3600.0)
    done = asyncio.Event()
    up.add_listener(lambda record: done.set() if record.state == "done" else None)
    runner = asyncio.create_task(up.run())
    try:
        async with asyncio.timeout(5):
            await checked.wait()  # the loop's first check found nothing
            assert actions.calls == []
            up.request(CANDIDATE)
            await done.wait()
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert actions.calls == ["download inst 1.1", "wait [77] 30.0", "update inst"]


@pytest.mark.asyncio
async def test_a_cancelled_attempt_is_no_failure_and_waits_for_a_newer_version() -> None:
    """Two failures, then the user cancels the third try: recorded as cancelled (no error, no
    retry time, not shown by ``ops``), the failures not counted up (3 would give up), and not
    tried again at any later check until 1.2 is offered."""
    actions, clock = Actions(download_failures=2), Clock()
    candidates = [CANDIDATE]
    up = updater(actions, clock, candidates)
    for _ in range(2):
        clock.now += 1000
        (due,) = up.due()
        await up.attempt(due)
    assert (up.records["inst"].failures, up.records["inst"].state) == (2, "retry in 60s")
    actions.cancel_download = True
    clock.now += 61
    await up.attempt(up.due()[0])
    record = up.records["inst"]
    assert (record.state, record.failures, record.error, record.retry_at) == (
        "cancelled",
        2,
        None,
        None,
    )
    clock.now += 100_000  # many periodic checks later
    assert up.due() == []
    newer = Candidate("inst", "1.0", "1.2")
    candidates[:] = [newer]
    assert up.due() == [newer]
    await up.attempt(newer)
    assert up.records == {}
    assert actions.calls == ["download inst 1.1"] * 3 + ["download inst 1.2", "update inst"]


@pytest.mark.asyncio
async def test_a_cancelled_update_step_is_not_retried_from_its_record() -> None:
    """The download landed, the user cancelled the update: unlike a failed update (retried
    from its record), nothing runs again by itself."""
    actions, clock = Actions(cancel_update=True), Clock()
    candidates = [CANDIDATE]
    up = updater(actions, clock, candidates)
    await up.attempt(CANDIDATE)
    candidates.clear()  # the downloaded version is now 1.1
    assert up.records["inst"].state == "cancelled"
    clock.now += 100_000
    assert up.due() == []
    assert actions.calls == ["download inst 1.1", "update inst"]


@pytest.mark.asyncio
async def test_a_person_asking_again_lifts_the_hold_of_a_cancel() -> None:
    """`download --all` (asked) retries a cancelled version; `follow` alone does not."""
    actions, clock = Actions(cancel_download=True), Clock()
    up = updater(actions, clock, [])
    up.request(CANDIDATE)
    await up.attempt(up.due()[0])
    assert up.records["inst"].state == "cancelled"
    up.request(CANDIDATE)  # follow, on the peer's next library change
    assert up.due() == []
    up.request(CANDIDATE, asked=True)  # download --all
    assert up.due() == [CANDIDATE]


@dataclass
class Holding(Actions):
    """The game stays in use: ``wait_released`` blocks until the test releases it."""

    released: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    async def in_use(self, game_id: str) -> list[int]:
        return [] if self.released.is_set() else [4242]

    async def wait_released(self, pids: list[int], timeout: float) -> None:  # noqa: ASYNC109
        self.waiting.set()
        await self.released.wait()


@pytest.mark.asyncio
async def test_cancelling_an_update_that_waits_for_the_game_to_exit_stops_it() -> None:
    """`peer-cli cancel GAME` while the update waits (no operation exists then): the attempt
    ends as cancelled, the loop goes on, and the game's exit brings no update."""
    actions, clock, checked = Holding(), Clock(), asyncio.Event()

    def candidates() -> list[Candidate]:
        checked.set()
        return [CANDIDATE]

    up = AutoUpdater("installed", candidates, actions, clock=clock, period=3600.0)
    runner = asyncio.create_task(up.run())
    try:
        async with asyncio.timeout(5):
            await actions.waiting.wait()
            assert up.records["inst"].state == "waiting: in use"
            assert await up.cancel("inst")
            record = up.records["inst"]
            assert (record.state, record.failures, record.error) == ("cancelled", 0, None)
            actions.released.set()  # the game exits
            checked.clear()
            up.poke()
            await checked.wait()  # the loop still runs, and holds the version back:
            assert up._running == {}  # (that check started nothing; due() and create_task
            # run without a yield before the loop waits again)
        assert not runner.done()
        assert up.due() == []
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert actions.calls == ["download inst 1.1"]  # no update


@pytest.mark.asyncio
async def test_cancelling_a_failed_update_stops_its_retries() -> None:
    actions, clock = Actions(download_failures=1), Clock()
    up = updater(actions, clock, [CANDIDATE])
    await up.attempt(CANDIDATE)
    assert up.records["inst"].retry_at is not None
    assert await up.cancel("inst")
    record = up.records["inst"]
    assert (record.state, record.error, record.retry_at) == ("cancelled", None, None)
    clock.now += 100_000
    assert up.due() == []
    assert not await up.cancel("other")  # nothing of that game here
