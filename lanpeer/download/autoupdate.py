"""Auto-update: when a connected peer offers a newer version of a game this host has, fetch it
(a delta download in the normal download lane) and then update ``local/`` (SPEC §10).

Owns the policy (``update_candidates``: which games, by ``auto-update`` mode and pins), the
retry backoff, the "waiting: in use" deferral and the per-game records shown in ``ops`` and
doctor. Never replaces ``local/`` itself, never reads ``/proc``: both go through
``UpdateActions`` (the daemon wires downloads, install and ``lanpeer.procuse``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from lanpeer.download.resolve import PeerView, newest_offer, version_key

log = logging.getLogger(__name__)

Mode = Literal["off", "installed", "downloaded"]

#: Record states that hold an offered version back until a newer one is offered, the user asks
#: again (``request(..., asked=True)``) or the daemon restarts.
HELD_STATES = ("gave up", "cancelled")


class UpdateCancelled(Exception):
    """A step of an attempt was cancelled (``peer-cli cancel GAME``): the user does not want
    this version now. Not a failure: no backoff, no count toward giving up."""


@dataclass(frozen=True)
class Candidate:
    game_id: str
    have: str  # the version downloaded here
    offered: str  # the newest hashed version a connected peer offers


class LocalView(Protocol):
    """What the policy reads of a local game (``lanpeer.library.LocalGame``)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def downloaded(self) -> bool: ...
    @property
    def installed(self) -> bool: ...


def update_candidates(
    mode: Mode,
    local: Iterable[LocalView],
    peers: Sequence[PeerView],
    pins: Mapping[str, str],
) -> list[Candidate]:
    """Games to bring up to the newest offered version: ``installed`` mode takes installed
    games, ``downloaded`` also downloaded-only ones; pinned games never (SPEC §9a)."""
    if mode == "off":
        return []
    found = []
    for game in local:
        if not game.downloaded or game.version is None or game.id in pins:
            continue
        if mode == "installed" and not game.installed:
            continue
        offer = newest_offer(peers, game.id)
        if offer is not None and version_key(offer[1].version) > version_key(game.version):
            found.append(Candidate(game.id, game.version, offer[1].version))
    return found


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``first`` doubling up to ``longest``; after
    ``attempts`` failures of one version the updater gives up on it until a newer one appears
    or the daemon restarts (a broken offer must not download forever)."""

    # 30 s lets a peer that just restarted finish hashing; 15 min keeps a dead offer cheap;
    # 8 attempts span about an hour and a half, the length of a LAN-party session.
    first: float = 30.0
    longest: float = 900.0
    attempts: int = 8

    def delay(self, failures: int) -> float:
        return float(min(self.longest, self.first * 2 ** max(0, failures - 1)))


class UpdateActions(Protocol):
    """The daemon parts the updater drives (the daemon wires real ones; tests record calls)."""

    def busy(self, game_id: str) -> bool: ...  # has an operation queued or running
    def installed(self, game_id: str) -> bool: ...
    # Both raise on failure, UpdateCancelled when their operation was cancelled.
    async def download(self, game_id: str, version: str) -> None: ...
    async def update(self, game_id: str) -> None: ...  # local/ from the downloaded version
    async def in_use(self, game_id: str) -> list[int]: ...  # pids using local/
    async def wait_released(self, pids: list[int], timeout: float) -> None: ...  # noqa: ASYNC109


@dataclass
class UpdateRecord:
    """What the updater is doing or last failed at for one game (a row in ``ops``)."""

    game_id: str
    version: str
    state: str  # downloading, updating, waiting: in use, retry in Ns, gave up, cancelled
    failures: int = 0
    error: str | None = None
    retry_at: float | None = None  # clock time of the next attempt
    holders: tuple[int, ...] = ()


Listener = Callable[[UpdateRecord], None]


class AutoUpdater:
    def __init__(
        self,
        mode: Mode,
        candidates: Callable[[], list[Candidate]],
        actions: UpdateActions,
        *,
        clock: Callable[[], float] = time.monotonic,
        period: float = 600.0,  # SPEC: checked every 10 minutes besides peer events
        backoff: Backoff | None = None,
        # A process may start using local/ without our noticing (no event for that): rescan
        # its holders this often even if none exits.
        in_use_rescan: float = 30.0,
    ) -> None:
        self.mode = mode
        self._candidates = candidates
        self._actions = actions
        self._clock = clock
        self.period = period
        self.backoff = backoff or Backoff()
        self.in_use_rescan = in_use_rescan
        self.records: dict[str, UpdateRecord] = {}
        self._running: dict[str, asyncio.Task[None]] = {}  # attempts of run()'s group
        self._cancelling: set[str] = set()  # attempts a person cancelled (not shutdown)
        self._requested: dict[str, Candidate] = {}  # asked for by follow / download --all
        self._wake = asyncio.Event()
        self._listeners: list[Listener] = []
        self.checks = 0  # how many times the policy ran (doctor, tests)

    def add_listener(self, cb: Listener) -> None:
        self._listeners.append(cb)

    def poke(self) -> None:
        """A library delta arrived or a peer connected: check soon (coalesced)."""
        self._wake.set()

    def request(self, candidate: Candidate, *, asked: bool = False) -> None:
        """Update this game whatever the mode (``follow`` / ``download --all`` of a game that
        is installed here: it must wait while the game runs like any automatic update).

        ``asked``: a person's command (``download --all``), which lifts a hold on the version
        (given up on, or cancelled); ``follow`` acting alone respects it."""
        record = self.records.get(candidate.game_id)
        if asked and record is not None and record.state in HELD_STATES:
            del self.records[candidate.game_id]
        self._requested[candidate.game_id] = candidate
        self._wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()
                try:
                    ready = self.due()
                except Exception:  # a bug here must not stop the daemon's task group
                    log.exception("auto-update check failed")
                    ready = []
                for candidate in ready:
                    task = group.create_task(self.attempt(candidate))
                    self._running[candidate.game_id] = task
                await self._wait_wake(self._next_wake())

    def due(self) -> list[Candidate]:
        """The candidates to start now: not already handled, not busy, not backing off."""
        self.checks += 1
        now = self._clock()
        wanted = {c.game_id: c for c in self._candidates()}
        for game_id in [g for g in self._requested if g not in self._running]:
            wanted[game_id] = self._requested.pop(game_id)
        # An attempt whose download landed but whose update failed is no candidate any more
        # (the downloaded version is the offered one); its retry must still run.
        for record in self.records.values():
            if record.retry_at is not None and record.game_id not in wanted:
                wanted[record.game_id] = Candidate(record.game_id, record.version, record.version)
        ready = []
        for candidate in wanted.values():
            if candidate.game_id in self._running or self._actions.busy(candidate.game_id):
                continue
            if not self._held_back(self.records.get(candidate.game_id), candidate, now):
                ready.append(candidate)
        return ready

    @staticmethod
    def _held_back(record: UpdateRecord | None, candidate: Candidate, now: float) -> bool:
        """Backing off this version, given up on it or cancelled (a newer version starts
        afresh)."""
        if record is None or record.version != candidate.offered:
            return False
        return record.state in HELD_STATES or (record.retry_at or 0.0) > now

    async def cancel(self, game_id: str) -> bool:
        """A person's ``peer-cli cancel GAME`` while no operation of the game runs: stop its
        attempt (waiting while the game is in use, or between steps) or the retries of a failed
        one. Held afterwards like any cancelled version. False: nothing here to cancel."""
        requested = self._requested.pop(game_id, None) is not None
        task = self._running.get(game_id)
        if task is not None:
            self._cancelling.add(game_id)
            task.cancel()
            await asyncio.wait([task])  # its cleanup is a record and a log line: no wait
            return True
        record = self.records.get(game_id)
        if record is not None and record.retry_at is not None:
            log.info("auto-update of %s to %s cancelled; no more retries until a newer version",
                     game_id, record.version)  # fmt: skip
            self._set(record, state="cancelled", error=None, retry_at=None)
            return True
        return requested

    def forget(self, game_id: str) -> None:
        """Drop a game's failures and retries (it was pinned: leave it alone)."""
        self.records.pop(game_id, None)

    def _next_wake(self) -> float:
        now = self._clock()
        retries = [r.retry_at - now for r in self.records.values() if r.retry_at is not None]
        return max(0.0, min([self.period, *retries]))

    async def _wait_wake(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded by period
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def attempt(self, candidate: Candidate) -> None:
        """Download the offered version, wait while the game runs, update; a failure backs off."""
        game_id = candidate.game_id
        previous = self.records.get(game_id)
        failures = previous.failures if previous and previous.version == candidate.offered else 0
        record = UpdateRecord(game_id, candidate.offered, "downloading", failures)
        self._set(record)
        log.info("auto-update: %s %s -> %s", game_id, candidate.have, candidate.offered)
        try:
            await self._actions.download(game_id, candidate.offered)
            if self._actions.installed(game_id):
                await self._wait_not_in_use(record)
                self._set(record, state="updating", holders=())
                await self._actions.update(game_id)
        except asyncio.CancelledError:
            if game_id not in self._cancelling:
                raise  # shutdown
            if (task := asyncio.current_task()) is not None:
                task.uncancel()  # handled: the attempt ends as cancelled, the loop goes on
            self._cancelled(record)
        except UpdateCancelled:
            self._cancelled(record)
        except Exception as exc:
            self._failed(record, exc)
        else:
            log.info("auto-update: %s is at %s", game_id, candidate.offered)
            self.records.pop(game_id, None)
            self._set(UpdateRecord(game_id, candidate.offered, "done", record.failures), keep=False)
        finally:
            self._running.pop(game_id, None)
            self._cancelling.discard(game_id)
            self._wake.set()  # a retry time or another candidate may be due

    async def _wait_not_in_use(self, record: UpdateRecord) -> None:
        """Never replace a running game: wait while a process uses its local/."""
        while pids := await self._actions.in_use(record.game_id):
            if record.state != "waiting: in use":
                log.info("auto-update: %s is in use (pids %s); waiting", record.game_id, pids)
            self._set(record, state="waiting: in use", holders=tuple(pids))
            await self._actions.wait_released(pids, self.in_use_rescan)

    def _cancelled(self, record: UpdateRecord) -> None:
        log.info("auto-update of %s to %s cancelled; not retried until a newer version",
                 record.game_id, record.version)  # fmt: skip
        self._set(record, state="cancelled", holders=())

    def _failed(self, record: UpdateRecord, exc: Exception) -> None:
        failures = record.failures + 1
        error = str(exc) or type(exc).__name__
        if failures >= self.backoff.attempts:
            state, retry_at = "gave up", None
            log.warning(
                "auto-update of %s gave up after %d attempts: %s", record.game_id, failures, error
            )
        else:
            delay = self.backoff.delay(failures)
            state, retry_at = f"retry in {delay:.0f}s", self._clock() + delay
            log.warning("auto-update of %s failed (%s); %s", record.game_id, error, state)
        self._set(record, state=state, failures=failures, error=error, retry_at=retry_at)

    def _set(self, record: UpdateRecord, *, keep: bool = True, **changes: object) -> None:
        for name, value in changes.items():
            setattr(record, name, value)
        if keep:
            self.records[record.game_id] = record
        for cb in list(self._listeners):
            try:
                cb(record)
            except Exception:
                log.exception("auto-update listener failed")
