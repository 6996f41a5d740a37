"""A stand-in with GameLibrary's surface (lanpeer.net.library_view) over real files.

Used by the net tests and the subprocess peer until the real GameLibrary is wired in.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import blake3
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary, LibraryDelta, Manifest, ManifestFile
from lanpeer_proto.paths import path_problem

CHUNK = 1 << 20


class Refused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class DirLibrary:
    """Games are dirs under ``root``; every game is served unless marked busy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.library_rev = 0
        self.busy: set[str] = set()
        self._history: dict[int, dict[str, GameSummary]] = {0: {}}
        self._games: dict[str, GameSummary] = {}
        self._manifests: dict[str, Manifest] = {}
        self._listeners: list[Callable[[int], None]] = []
        self.forget_history = False

    @property
    def library_digest(self) -> bytes:
        h = hashlib.sha256()
        for game in sorted(self._games.values(), key=lambda g: g.id):
            h.update(repr(game).encode())
        return h.digest()

    def add_game(self, game_id: str, files: dict[str, bytes], version: str = "1.0") -> Manifest:
        game_dir = self.root / game_id
        for rel, data in files.items():
            (game_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (game_dir / rel).write_bytes(data)
        manifest = self._hash(game_id, version)
        self._manifests[game_id] = manifest
        size = sum(f.size for f in manifest.files)
        self._set(
            game_id,
            GameSummary(
                id=game_id,
                name=game_id.title(),
                version=version,
                manifest_hash=manifest.manifest_hash,
                size=size,
            ),
        )
        return manifest

    def remove_game(self, game_id: str) -> None:
        self._games.pop(game_id, None)
        self._bump()

    def _set(self, game_id: str, summary: GameSummary) -> None:
        self._games[game_id] = summary
        self._bump()

    def _bump(self) -> None:
        self.library_rev += 1
        self._history[self.library_rev] = dict(self._games)
        for cb in self._listeners:
            cb(self.library_rev)

    def _hash(self, game_id: str, version: str) -> Manifest:
        files = []
        game_dir = self.root / game_id
        for path in sorted(p for p in game_dir.rglob("*") if p.is_file()):
            data = path.read_bytes()
            hashes = [
                blake3.blake3(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK)
            ]
            files.append(
                ManifestFile(
                    path=path.relative_to(game_dir).as_posix(),
                    size=len(data),
                    chunk_size=CHUNK,
                    chunk_hashes=hashes,
                )
            )
        body = Manifest(game_id=game_id, version=version, manifest_hash=bytes(32), files=files)
        digest = blake3.blake3(codec.encode(body)).digest()
        return body.model_copy(update={"manifest_hash": digest})

    # LibraryView ---------------------------------------------------------------
    def snapshot(self) -> list[GameSummary]:
        return [g for g in self._games.values() if g.id not in self.busy]

    def delta_since(self, rev: int) -> LibraryDelta | None:
        old = self._history.get(rev)
        if old is None or self.forget_history or rev > self.library_rev:
            return None
        new = self._games
        return LibraryDelta(
            from_rev=rev,
            to_rev=self.library_rev,
            library_digest=self.library_digest,
            added=[g for k, g in new.items() if k not in old],
            updated=[g for k, g in new.items() if k in old and old[k] != g],
            removed=[k for k in old if k not in new],
        )

    def add_listener(self, cb: Callable[[int], None]) -> None:
        self._listeners.append(cb)

    async def wait_manifest(self, game_id: str) -> Manifest:
        if game_id not in self._manifests:
            raise Refused(ErrorCode.NOT_FOUND, f"no game {game_id}")
        return self._manifests[game_id]

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        if game_id not in self._games:
            raise Refused(ErrorCode.NOT_FOUND, "unknown game")
        if game_id in self.busy:
            raise Refused(ErrorCode.BUSY, "game busy")
        if self._games[game_id].manifest_hash != manifest_hash:
            raise Refused(ErrorCode.STALE_MANIFEST, "manifest changed")
        problem = path_problem(path)
        if problem is not None:
            raise Refused(ErrorCode.BAD_PATH, problem)
        dir_fd = os.open(self.root / game_id, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fd = dir_fd
            for part in path.split("/")[:-1]:
                fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = fd
            try:
                return os.open(path.split("/")[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError as exc:
                raise Refused(ErrorCode.NOT_FOUND, f"{path}: {exc.strerror}") from None
        finally:
            os.close(dir_fd)
