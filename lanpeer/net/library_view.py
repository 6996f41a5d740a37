"""What the peer network needs from the game library (lanpeer.library.GameLibrary satisfies it).

Owns only the shape of that dependency, so net can be built and tested on its own.
Never holds state: it is a typing Protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from lanpeer_proto.messages import GameSummary, HashStatus, LibraryDelta, Manifest


class LibraryView(Protocol):
    @property
    def library_rev(self) -> int: ...

    @property
    def library_digest(self) -> bytes: ...

    def snapshot(self) -> list[GameSummary]:
        """Advertised games: in the catalog, downloaded, not busy."""
        ...

    def delta_since(self, rev: int) -> LibraryDelta | None:
        """Changes since ``rev``, or None when that rev is too old (send a snapshot)."""
        ...

    def add_listener(self, cb: Callable[[int], None]) -> None: ...

    async def wait_manifest(self, game_id: str) -> Manifest: ...

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        """An O_RDONLY fd of a served file; raises an error carrying an ErrorCode if refused."""
        ...


@runtime_checkable
class HashStatusSource(Protocol):
    """A library that can say how far its hashing of an advertised game has got (the answer
    to GetHashStatus, feature ``hash-status/1``)."""

    def hash_status(self, game_id: str) -> HashStatus:
        """Raises an error carrying an ErrorCode when the game is not served here."""
        ...
