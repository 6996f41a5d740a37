"""Opening a served file for a peer: the file must be the one the manifest describes.

Owns the per-game table of served file stats (from the index, for the current manifest) and the
final check after opening: same size, mtime and inode as when hashed, else the manifest is stale.
Never opens through a symlink (``open_relative``) and never returns an fd it has not checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from lanpeer_proto.errors import ErrorCode

from lanpeer.library.disk import FileStat, open_relative
from lanpeer.library.errors import ServeRefused
from lanpeer.library.index import GameRecord, LibraryIndex


class ServedFiles:
    def __init__(self, index: LibraryIndex, on_stale: Callable[[str], None]) -> None:
        self._index = index
        self._on_stale = on_stale  # asks for a rescan of a game whose disk moved on
        self._stats: dict[str, tuple[bytes, dict[str, FileStat]]] = {}

    def forget(self, game_id: str) -> None:
        self._stats.pop(game_id, None)

    def open(self, record: GameRecord, path: str) -> int:
        """An fd of ``path`` as hashed in ``record``'s manifest, or ServeRefused."""
        expected = self._files(record).get(path)
        if expected is None:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"{record.game_id}: no file {path!r}")
        try:
            fd = open_relative(record.root / record.game_id, path)
        except FileNotFoundError:
            self._on_stale(record.game_id)
            raise ServeRefused(ErrorCode.NOT_FOUND, f"{record.game_id}: {path!r} is gone") from None
        st = os.fstat(fd)
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (
            expected.size,
            expected.mtime_ns,
            expected.inode,
        ):
            os.close(fd)
            self._on_stale(record.game_id)
            raise ServeRefused(
                ErrorCode.STALE_MANIFEST, f"{record.game_id}: {path!r} changed on disk"
            )
        return fd

    def _files(self, record: GameRecord) -> dict[str, FileStat]:
        """Stats of the files the current manifest was made of (one indexed query, cached)."""
        manifest_hash = record.manifest_hash or b""
        cached = self._stats.get(record.game_id)
        if cached is None or cached[0] != manifest_hash:
            rows = self._index.file_hashes(record.game_id)
            cached = (manifest_hash, {p: f.stat for p, f in rows.items()})
            self._stats[record.game_id] = cached
        return cached[1]
