"""Swarm: every downloading host serves the chunks it has verified (SPEC §7a).

Owns the serving side of partial sources and the registry both sides share: this host's
downloads in progress (``Holding``: which chunks of which ``manifest_hash`` are verified, where
the staged files are), reads of those chunks for the QUIC and bulk paths (through ``SwarmView``,
so both paths keep the same path rules, caps and upload slots), and answers to ``GetHaves`` (the
whole set, then increments, each answer held up to the asker's ``wait`` and debounced).
``SwarmHost.join`` hands each download a ``Member`` (``lanpeer.net.swarm_member``: the
downloading side, its have-set watches). Never verifies chunk bytes (the downloader checks every
one against the manifest) and never writes a file.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import (
    MAX_HAVE_ADDED,
    MAX_HAVE_BYTES,
    GameSummary,
    GetChunk,
    GetHaves,
    Haves,
    LibraryDelta,
    Manifest,
)
from lanpeer_proto.version import FEATURE_SWARM

from lanpeer.download.plan import ChunkRef
from lanpeer.download.sources import SourceDirectory
from lanpeer.download.swarm import LiveFiles, numbered_chunks
from lanpeer.net.fetching import PeerFetcher
from lanpeer.net.library_view import LibraryView
from lanpeer.net.peers import PeerTable
from lanpeer.net.serving import ServeError, open_served_file
from lanpeer.net.swarm_member import Member, PartialHolder
from lanpeer.tasks import OwnedTasks

log = logging.getLogger(__name__)

#: How a holding opens an unchanged file of a delta update: (game_id, installed version's
#: manifest_hash, path) -> fd, or ``ServeError`` (the library's refusal).
OpenLive = Callable[[str, bytes, str], int]

#: Fault injection for the scenario tests only ("a partial source that serves corrupt bytes"):
#: with this set to 1 in its environment a daemon flips one byte of every partial chunk it serves.
CORRUPT_ENV = "LANPEER_FAULT_CORRUPT_PARTIAL"


@dataclass(frozen=True)
class SwarmLimits:
    #: Increments within this time go out in one answer: a 4 MiB chunk lands every ~40 ms at
    #: 1 GbE, so a quarter second batches a handful while keeping others' view fresh.
    debounce: float = 0.25
    #: How long we ask a peer to hold a GetHaves with no news. Longer is cheaper, shorter
    #: notices a peer that starts downloading sooner; both ends also learn of peers on events.
    hold: float = 10.0
    #: GetHaves answers held at once for one asking peer: one per download it runs (the
    #: download lane runs 2) plus one restarting.
    max_watches_per_peer: int = 4
    #: Peers one download watches. A watch is one held request stream; past this many
    #: peers a download still uses full sources and the first watched peers.
    max_watched_peers: int = 256
    #: After a watch fails (peer busy, answer malformed), wait this long before asking again.
    retry_after: float = 1.0


# -- serving ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Holding:
    """One of our downloads in progress, as a partial source of its ``manifest_hash``."""

    manifest: Manifest
    part_dir: Path
    base_seq: int  # an asker's ``since`` below this belongs to an older holding: whole set
    numbers: dict[ChunkRef, int]
    at: dict[tuple[str, int], ChunkRef]
    held: bytearray = field(default_factory=bytearray)
    log: list[tuple[int, int]] = field(default_factory=list)  # (seq, chunk number), seq sorted
    seq: int = 0  # also bumped when ``fetching`` changes
    fetching: list[int] = field(default_factory=list)  # numbers with requests out now
    #: Unchanged files of a delta update, held from the start and read from the game dir as
    #: the installed version ``live.manifest_hash`` (never staged in the part dir).
    live: LiveFiles | None = None

    @property
    def count(self) -> int:
        return len(self.log)

    def has(self, number: int) -> bool:
        return bool(self.held[number >> 3] & (1 << (number & 7)))

    def added_since(self, since: int) -> list[int]:
        start = bisect.bisect_right(self.log, (since, 1 << 62))
        return [number for _, number in self.log[start:]]


class SwarmHost:
    """This host's side of the swarm; ``PeerNode`` creates one and routes requests to it."""

    def __init__(
        self,
        table: PeerTable,
        fetcher: PeerFetcher,
        peers_changed: SourceDirectory,
        *,
        serve: bool = True,
        limits: SwarmLimits | None = None,
    ) -> None:
        self.serve = serve  # False: --no-swarm, we answer "not serving" and serve no part
        self.limits = limits or SwarmLimits()
        self._table, self._fetcher, self._peers = table, fetcher, peers_changed
        self._holdings: dict[bytes, Holding] = {}
        self._seq = 0  # one counter for every holding: a later holding's seqs are all larger
        self._changed = asyncio.Event()
        self._watching: dict[str, int] = {}  # asking peer -> GetHaves held for it now
        self._members: set[Member] = set()  # our downloads in the swarm now
        self._corrupt = os.environ.get(CORRUPT_ENV) == "1"

    # -- serving side ---------------------------------------------------------------------------

    def holding(self, manifest_hash: bytes) -> Holding | None:
        return self._holdings.get(manifest_hash) if self.serve else None

    def holdings(self) -> list[Holding]:
        return list(self._holdings.values()) if self.serve else []

    def open_partial(self, request: GetChunk, open_live: OpenLive | None = None) -> int | None:
        """An fd of a verified staged chunk, None when we do not download that version, or
        ``ServeError`` when we do but do not hold that chunk. A chunk of an unchanged file of
        a delta update is opened with ``open_live`` (the library's file of the installed
        version)."""
        holding = self.holding(request.manifest_hash)
        if holding is None or holding.manifest.game_id != request.game_id:
            return None
        chunk = holding.at.get((request.path, request.offset))
        if chunk is None or chunk.length != request.length:
            raise ServeError(ErrorCode.BAD_RANGE, "not a chunk of the version being downloaded")
        if not holding.has(holding.numbers[chunk]):
            raise ServeError(ErrorCode.NOT_FOUND, f"{request.path}: chunk not verified here yet")
        if holding.live is not None and request.path in holding.live.paths:
            fd = self._open_live(holding, holding.live, request.path, open_live)
            return _corrupted(fd, request) if self._corrupt else fd
        try:
            # The fd stays valid if a commit moves the file or a cancel deletes it: it still
            # reads the verified bytes. A request after leave() gets the library's refusal.
            fd = os.open(
                holding.part_dir / request.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError as exc:
            raise ServeError(ErrorCode.NOT_FOUND, f"{request.path}: not staged here") from exc
        return _corrupted(fd, request) if self._corrupt else fd

    def _open_live(
        self, holding: Holding, live: LiveFiles, path: str, open_live: OpenLive | None
    ) -> int:
        """The installed version's file, as the library serves it: the library checks the
        path (fd-relative, no symlinks), the busy mark and that the file's size, mtime and
        inode are the ones it hashed, so its chunks hash to the manifest's chunk hashes (the
        old and new manifests list the same ones). Refused: that file is no longer held."""
        game_id = holding.manifest.game_id
        if open_live is None:  # a caller without the library: nothing of the game dir
            raise ServeError(ErrorCode.NOT_FOUND, f"{path}: not readable here")
        try:
            return open_live(game_id, live.manifest_hash, path)
        except ServeError as exc:
            log.info("%s: %s of the installed version no longer served (%s); unlisted",
                     game_id, path, exc.message)  # fmt: skip
            self._unhold_file(holding, path)
            raise ServeError(ErrorCode.NOT_FOUND, f"{path}: not held here any more") from exc

    def partial_manifest(self, game_id: str, manifest_hash: bytes | None = None) -> Manifest | None:
        """The manifest of a version of ``game_id`` we are downloading (of exactly
        ``manifest_hash`` when given); None when we download no such version."""
        for holding in self.holdings():
            if holding.manifest.game_id == game_id and manifest_hash in (
                None,
                holding.manifest.manifest_hash,
            ):
                return holding.manifest
        return None

    async def answer(self, peer_id: str, request: GetHaves) -> Haves:
        """What we hold of ``request.manifest_hash``: waits up to ``request.wait`` for news."""
        held = self._watching.get(peer_id, 0)
        if held >= self.limits.max_watches_per_peer:
            raise ServeError(ErrorCode.TOO_MANY, "too many have-set watches from this peer")
        self._watching[peer_id] = held + 1
        try:
            return await self._answer(request)
        finally:
            left = self._watching[peer_id] - 1
            if left:
                self._watching[peer_id] = left
            else:
                del self._watching[peer_id]

    async def _answer(self, request: GetHaves) -> Haves:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(request.wait, self.limits.hold)
        while True:
            holding = self.holding(request.manifest_hash)
            if holding is not None and holding.manifest.game_id != request.game_id:
                holding = None
            news = holding is not None and (
                request.since < holding.base_seq
                or request.since > holding.seq
                or holding.seq > request.since
            )
            if news and holding is not None and holding.count:
                if request.since >= holding.base_seq:
                    await asyncio.sleep(self.limits.debounce)  # let increments gather
                    if self.holding(request.manifest_hash) is not holding:
                        continue  # cancelled or committed meanwhile: say so instead
                return self._haves(holding, request.since)
            changed = self._changed
            left = deadline - loop.time()
            if left <= 0:
                if holding is None:
                    return Haves(manifest_hash=request.manifest_hash, serving=False, seq=0)
                return self._haves(holding, request.since)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await changed.wait()

    def _haves(self, holding: Holding, since: int) -> Haves:
        whole = since < holding.base_seq or since > holding.seq
        added = [] if whole else holding.added_since(since)
        fetching = holding.fetching[:MAX_HAVE_ADDED]
        if whole or len(added) > MAX_HAVE_ADDED:
            return Haves(manifest_hash=holding.manifest.manifest_hash, serving=True,
                         seq=holding.seq, bits=bytes(holding.held),
                         fetching=fetching)  # fmt: skip
        return Haves(manifest_hash=holding.manifest.manifest_hash, serving=True,
                     seq=max(holding.seq, since), added=added, fetching=fetching)  # fmt: skip

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _start_holding(
        self, manifest: Manifest, part_dir: Path, live: LiveFiles | None = None
    ) -> Holding | None:
        chunks = numbered_chunks(manifest)
        if len(chunks) > MAX_HAVE_BYTES * 8 or manifest.manifest_hash in self._holdings:
            return None  # too big for a have-set, or another download of it (cannot happen)
        self._seq += 1
        holding = Holding(
            manifest,
            part_dir,
            base_seq=self._seq,
            numbers={c: i for i, c in enumerate(chunks)},
            at={(c.path, c.offset): c for c in chunks},
            held=bytearray((len(chunks) + 7) // 8),
            seq=self._seq,
            live=live,
        )
        self._holdings[manifest.manifest_hash] = holding
        if live is not None:
            for chunk in chunks:
                if chunk.path in live.paths:
                    self._hold(holding, chunk)
        return holding

    def _hold(self, holding: Holding, chunk: ChunkRef) -> None:
        number = holding.numbers.get(chunk)
        if number is None or holding.has(number):
            return
        holding.held[number >> 3] |= 1 << (number & 7)
        self._seq += 1
        holding.seq = self._seq
        holding.log.append((self._seq, number))
        self._notify()

    def _fetch_hint(self, holding: Holding, chunks: frozenset[ChunkRef]) -> None:
        numbers = sorted(n for c in chunks if (n := holding.numbers.get(c)) is not None)
        if numbers == holding.fetching:
            return
        holding.fetching = numbers
        self._seq += 1
        holding.seq = self._seq
        self._notify()

    def _unhold_file(self, holding: Holding, path: str) -> None:
        """Stop holding every chunk of ``path`` (an unchanged file that changed or went): a
        have-set only grows, so every asker gets the whole set again (a new ``base_seq``)."""
        if holding.live is None or path not in holding.live.paths:
            return
        holding.live = LiveFiles(holding.live.manifest_hash, holding.live.paths - {path})
        dropped = {n for c, n in holding.numbers.items() if c.path == path}
        for number in dropped:
            holding.held[number >> 3] &= ~(1 << (number & 7)) & 0xFF
        holding.log = [(seq, n) for seq, n in holding.log if n not in dropped]
        self._seq += 1
        holding.base_seq = holding.seq = self._seq
        self._notify()

    def _stop_holding(self, holding: Holding) -> None:
        if self._holdings.get(holding.manifest.manifest_hash) is holding:
            del self._holdings[holding.manifest.manifest_hash]
            self._notify()

    # -- downloading side -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def join(
        self,
        manifest: Manifest,
        part_dir: Path,
        verified: Iterable[ChunkRef],
        full_sources: SourceDirectory,
        live: LiveFiles | None = None,
    ) -> AsyncIterator[Member]:
        holding = self._start_holding(manifest, part_dir, live)
        # The member's tasks live as long as this block; the download's own errors reach its
        # caller unwrapped (OwnedTasks, not a TaskGroup around the body).
        async with OwnedTasks(log) as tasks:
            member = Member(self, manifest, holding, full_sources, tasks)
            for chunk in verified:
                member.holds(chunk)
            self._members.add(member)
            tasks.spawn(member.keep_watching(), "have-set watching")
            try:
                yield member
            finally:
                self._members.discard(member)
                if holding is not None:
                    self._stop_holding(holding)  # at once: later requests get a typed refusal

    def partial_holders(self) -> list[PartialHolder]:
        """Per download of ours, the peers serving part of its version and what they hold
        (as their last have-set said); peers holding nothing yet are not listed."""
        return [holder for member in self._members for holder in member.holders()]

    def connected(self, peer_id: str) -> bool:
        record = self._table.get(peer_id)
        return record is not None and record.live_session() is not None

    async def wait_peers_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - seam
        """A peer came, went or changed its library (the node's event), or ``timeout``."""
        await self._peers.wait_sources_changed(timeout)

    def watchable_peers(self, manifest: Manifest, full_sources: SourceDirectory) -> list[str]:
        """Connected swarm-capable peers that are not full sources of this version."""
        full = {s.peer_id for s in full_sources.sources_for(manifest.game_id,
                                                            manifest.manifest_hash)}  # fmt: skip
        found = []
        for record in self._table.records():
            link = record.live_session()
            if link is None or record.peer_id in full:
                continue
            if FEATURE_SWARM in link.facts.shared_features:
                found.append(record.peer_id)
        return found[: self.limits.max_watched_peers]


class SwarmView:
    """The library as the serving paths see it, plus our partial downloads (SPEC §7a)."""

    def __init__(self, library: LibraryView, swarm: SwarmHost) -> None:
        self._library, self.swarm = library, swarm

    @property
    def library_rev(self) -> int:
        return self._library.library_rev

    @property
    def library_digest(self) -> bytes:
        return self._library.library_digest

    def snapshot(self) -> list[GameSummary]:
        return self._library.snapshot()

    def delta_since(self, rev: int) -> LibraryDelta | None:
        return self._library.delta_since(rev)

    def add_listener(self, cb: Callable[[int], None]) -> None:
        self._library.add_listener(cb)

    async def wait_manifest(self, game_id: str) -> Manifest:
        return await self._library.wait_manifest(game_id)

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        return self._library.open_served_file(game_id, manifest_hash, path)

    def open_partial(self, request: GetChunk) -> int | None:
        return self.swarm.open_partial(request, self._open_live)

    def _open_live(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        return open_served_file(self._library, game_id, manifest_hash, path)

    def partial_manifest(self, game_id: str, manifest_hash: bytes | None = None) -> Manifest | None:
        return self.swarm.partial_manifest(game_id, manifest_hash)


def _corrupted(fd: int, request: GetChunk) -> int:
    """The fault of ``CORRUPT_ENV``: an in-memory file with the chunk, one byte flipped, at the
    same offset (so the QUIC and the sendfile paths both serve it unchanged)."""
    try:
        data = bytearray(os.pread(fd, request.length, request.offset))
    finally:
        os.close(fd)
    if data:
        data[0] ^= 0xFF
    fake = os.memfd_create("lanpeer-corrupt-chunk", os.MFD_CLOEXEC)
    os.ftruncate(fake, request.offset + request.length)
    os.pwrite(fake, bytes(data), request.offset)
    return fake
