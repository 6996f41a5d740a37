"""Answers to other peers' requests: library sync, manifests, hash status and chunk reads.

Owns the SPEC §4 checks a remote request must pass (served game, safe path, range) and their
typed refusals; both the QUIC streams and the TCP bulk path open chunks through here.
Never lets a refusal or a bad request escape as anything but an ``Error`` for that request.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import (
    Error,
    GetChunk,
    GetHashStatus,
    GetManifest,
    HashStatus,
    LibraryDelta,
    LibraryDeltaRequest,
    LibrarySnapshot,
    LibrarySnapshotRequest,
    Manifest,
)
from lanpeer_proto.paths import path_problem

from lanpeer.net.library_view import HashStatusSource, LibraryView
from lanpeer.net.uploads import UploadLedger

log = logging.getLogger(__name__)


class ServeError(Exception):
    """A request we refuse; becomes ``Error(code, message)`` on the wire."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_message(self) -> Error:
        return Error(code=self.code, message=self.message[:500])


@dataclass
class OpenChunk:
    """A validated chunk read: the caller owns ``fd`` and must close it."""

    fd: int
    offset: int
    length: int

    def close(self) -> None:
        os.close(self.fd)


def refusal_code(exc: Exception) -> ErrorCode | None:
    """The wire code a library refusal carries (``wire_code`` or ``code``), if any."""
    for attr in ("wire_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, ErrorCode):
            return value
        if isinstance(value, str) and value in ErrorCode._value2member_map_:
            return ErrorCode(value)
    return None


def _served_ids(library: LibraryView) -> set[str]:
    return {game.id for game in library.snapshot()}


@runtime_checkable
class PartialChunks(Protocol):
    """A library view that also serves verified chunks of downloads in progress (swarm)."""

    def open_partial(self, request: GetChunk) -> int | None:
        """An fd of that verified staged chunk; None when that version is not being
        downloaded here; ``ServeError`` when it is but that chunk is not held."""
        ...

    def partial_manifest(
        self, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest | None: ...


def open_chunk(library: LibraryView, request: GetChunk) -> OpenChunk:
    """Check and open one chunk read, or raise ``ServeError`` saying why not."""
    problem = path_problem(request.path)
    if problem is not None:
        raise ServeError(ErrorCode.BAD_PATH, problem)
    # open_served_file enforces catalog, downloaded and not busy (BUSY / NOT_FOUND / STALE).
    try:
        fd = _open_served(library, request)
    except ServeError:
        # Not served as a whole game: maybe a version we are downloading (SPEC §7a).
        partial = library.open_partial(request) if isinstance(library, PartialChunks) else None
        if partial is None:
            raise
        fd = partial
    try:
        _check_range(os.fstat(fd).st_size, request)
    except BaseException:
        os.close(fd)
        raise
    return OpenChunk(fd, request.offset, request.length)


def _check_range(size: int, request: GetChunk) -> None:
    if request.offset >= size or request.offset + request.length > size:
        raise ServeError(
            ErrorCode.BAD_RANGE,
            f"bytes {request.offset}+{request.length} outside a {size}-byte file",
        )


def _open_served(library: LibraryView, request: GetChunk) -> int:
    return open_served_file(library, request.game_id, request.manifest_hash, request.path)


def open_served_file(library: LibraryView, game_id: str, manifest_hash: bytes, path: str) -> int:
    """The library's fd of a file of a served version (its path, stat and busy checks), or
    ``ServeError`` with the library's refusal."""
    try:
        return library.open_served_file(game_id, manifest_hash, path)
    except (OSError, LookupError) as exc:
        raise ServeError(ErrorCode.NOT_FOUND, f"{path}: not served") from exc
    except Exception as exc:
        code = refusal_code(exc)
        if code is None:
            raise
        raise ServeError(code, str(exc)) from exc


async def manifest_for(library: LibraryView, request: GetManifest) -> Manifest:
    """The manifest the request asks for: of exactly ``request.manifest_hash`` when given (the
    served version or one we download: SPEC §7a), else of the served version, else of the
    version we download. ``ServeError`` NOT_FOUND / STALE_MANIFEST when we hold no such one."""
    wanted = request.manifest_hash
    partial = (
        library.partial_manifest(request.game_id, wanted)
        if isinstance(library, PartialChunks)
        else None
    )
    if request.game_id not in _served_ids(library):
        # A partial source hands out the manifest of the version it downloads; the asker
        # checks it against the manifest_hash it wants (SPEC §7a).
        if partial is not None:
            return partial
        raise ServeError(ErrorCode.NOT_FOUND, f"game {request.game_id!r} is not served here")
    if wanted is not None and partial is not None:
        return partial  # updating: the version asked for is the one we download, not the served
    try:
        manifest = await library.wait_manifest(request.game_id)
    except LookupError as exc:
        raise ServeError(ErrorCode.NOT_FOUND, f"game {request.game_id!r}: no manifest") from exc
    except Exception as exc:
        code = refusal_code(exc)
        if code is None:
            raise
        raise ServeError(code, str(exc)) from exc
    if wanted is not None and manifest.manifest_hash != wanted:
        raise ServeError(
            ErrorCode.STALE_MANIFEST,
            f"game {request.game_id!r}: manifest {wanted.hex()[:12]} is not held here "
            f"(this host serves version {manifest.version})",
        )
    return manifest


def hash_status_for(library: HashStatusSource, request: GetHashStatus) -> HashStatus:
    try:
        return library.hash_status(request.game_id)
    except Exception as exc:
        code = refusal_code(exc)
        if code is None:
            raise
        raise ServeError(code, str(exc)) from exc


def snapshot_of(library: LibraryView) -> LibrarySnapshot:
    return LibrarySnapshot(
        library_rev=library.library_rev,
        library_digest=library.library_digest,
        games=library.snapshot(),
    )


def sync_answer(
    library: LibraryView, request: LibraryDeltaRequest | LibrarySnapshotRequest
) -> LibraryDelta | LibrarySnapshot:
    """A delta from the asker's rev when we still have one, else a full snapshot."""
    if isinstance(request, LibraryDeltaRequest):
        delta = library.delta_since(request.from_rev)
        if delta is not None:
            return delta
    return snapshot_of(library)


class UploadSlots:
    """Per-peer cap on concurrent chunk uploads, shared by the QUIC and bulk paths, and the
    ledger both report what they served to (``peer-cli uploads``)."""

    def __init__(self, per_peer: int, ledger: UploadLedger | None = None) -> None:
        self._per_peer = per_peer
        self._active: dict[str, int] = {}
        self.ledger = ledger or UploadLedger()

    def served(self, peer_id: str, game_id: str, nbytes: int) -> None:
        self.ledger.served(peer_id, game_id, nbytes)

    def try_acquire(self, peer_id: str) -> bool:
        if self._active.get(peer_id, 0) >= self._per_peer:
            return False
        self._active[peer_id] = self._active.get(peer_id, 0) + 1
        return True

    def release(self, peer_id: str) -> None:
        left = self._active.get(peer_id, 1) - 1
        if left:
            self._active[peer_id] = left
        else:
            self._active.pop(peer_id, None)


class Limiter(Protocol):
    """lanpeer.ratelimit.TokenBucket's shape: the daemon's upload rate limit."""

    async def wait_acquire(self, n: int) -> None: ...
