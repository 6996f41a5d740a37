"""Sample games for the demo, tests and benchmarks: deterministic bytes in real archives.

Owns the layout of a generated game: ``*.eti`` payload archives (zip STORED and tar, alternating),
an optional ``cover.png`` and ``version.ini`` written last (tmp + rename), as SPEC §3 says.
Payload bytes are an AES-CTR keystream (fast, incompressible, reproducible), not secrets.
The same (game_id, seed, sizes) always gives the same bytes. Never writes outside ``root``.
"""

from __future__ import annotations

import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import blake3
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lanpeer.library.catalog import CatalogEntry
from lanpeer.library.catalog import write_catalog as _write_catalog

_BLOCK = 1 << 20
_EPOCH = (2024, 1, 1, 0, 0, 0)
_EPOCH_TS = 1704067200
_ZIP64_ABOVE = 1 << 31


class _Payload:
    """A deterministic byte stream: the AES-256-CTR keystream of a key derived from a seed.

    AES-NI makes it ~2 GB/s, so a 2 GiB benchmark game takes seconds; the bytes look random,
    so chunks never repeat by accident (delta downloads and dedup see honest data).
    """

    def __init__(self, seed: str, size: int) -> None:
        key = blake3.blake3(seed.encode()).digest()
        self._keystream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
        self._zeros = memoryview(bytes(_BLOCK))
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        pieces = [
            self._keystream.update(self._zeros[: min(_BLOCK, n - done)])
            for done in range(0, n, _BLOCK)
        ]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def payload_bytes(seed: str, size: int) -> bytes:
    """The first ``size`` bytes of a payload stream (tests compare against it)."""
    return _Payload(seed, size).read(size)


def generate_game(
    root: Path,
    game_id: str,
    total_size: int,
    *,
    seed: int,
    archives: int = 3,
    version: str = "1.0",
    cover: bool = True,
) -> Path:
    """Create ``root/game_id`` holding about ``total_size`` payload bytes; returns the game dir."""
    game_dir = root / game_id
    game_dir.mkdir(parents=True, exist_ok=True)
    count = max(1, archives)
    share, extra = divmod(total_size, count)
    for index in range(count):
        size = share + (extra if index == count - 1 else 0)
        stream = f"{seed}:{game_id}:{version}:{index}"
        archive = game_dir / f"data{index:02d}.eti"
        if index % 2 == 0:
            _write_zip(archive, f"{game_id}/data{index:02d}.bin", stream, size)
        else:
            _write_tar(archive, f"{game_id}/data{index:02d}.bin", stream, size)
    if cover:
        (game_dir / "cover.png").write_bytes(_png(seed))
    write_version_ini(game_dir, game_id, version)
    return game_dir


def write_version_ini(game_dir: Path, game_id: str, version: str) -> None:
    """The sentinel, written last via ``.version.ini.tmp`` + rename."""
    tmp = game_dir / ".version.ini.tmp"
    tmp.write_text(f"[game]\nid={game_id}\nversion={version}\n", encoding="utf-8")
    os.replace(tmp, game_dir / "version.ini")


def _write_zip(path: Path, member: str, stream: str, size: int) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        readme = zipfile.ZipInfo(f"{member}.txt", date_time=_EPOCH)
        archive.writestr(readme, f"sample payload {stream}\n")
        info = zipfile.ZipInfo(member, date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        payload = _Payload(stream, size)
        with archive.open(info, "w", force_zip64=size >= _ZIP64_ABOVE) as out:
            while block := payload.read(_BLOCK):
                out.write(block)


def _write_tar(path: Path, member: str, stream: str, size: int) -> None:
    with tarfile.TarFile(path, "w", format=tarfile.PAX_FORMAT, copybufsize=_BLOCK) as archive:
        readme = f"sample payload {stream}\n".encode()
        archive.addfile(_tar_info(f"{member}.txt", len(readme)), _BytesReader(readme))
        archive.addfile(_tar_info(member, size), _Payload(stream, size))


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int = -1) -> bytes:
        out, self._data = (self._data, b"") if n < 0 else (self._data[:n], self._data[n:])
        return out


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, _EPOCH_TS, 0o644
    return info


def _png(seed: int) -> bytes:
    """A real 16x16 grey PNG whose shade depends on the seed."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(kind + body))
        )

    shade = seed % 256
    rows = b"".join(b"\x00" + bytes([shade]) * 16 for _ in range(16))
    header = struct.pack("!IIBBBBB", 16, 16, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def sample_entry(game_id: str) -> CatalogEntry:
    """A catalog entry with a readable name for a generated game."""
    title = game_id.replace("-", " ").replace("_", " ").title()
    return CatalogEntry(game_id, title, description=f"Sample game {title}", genre="sample")


def write_catalog(path: Path, entries: Iterable[CatalogEntry | str | Mapping[str, Any]]) -> None:
    """Write a catalog atomically.

    An entry is a ``CatalogEntry``, a mapping with its fields (``id``, ``name``, ...), or a bare
    game id, which becomes ``sample_entry(game_id)``.
    """
    _write_catalog(path, [_entry(e) for e in entries])


def _entry(entry: CatalogEntry | str | Mapping[str, Any]) -> CatalogEntry:
    if isinstance(entry, CatalogEntry):
        return entry
    if isinstance(entry, str):
        return sample_entry(entry)
    return CatalogEntry(**entry)


def generate_library(root: Path, count: int, size_each: int, *, seed: int) -> list[str]:
    """``count`` small games ``game-0000``... plus their catalog in ``root/catalog.toml``."""
    ids = [f"game-{n:04d}" for n in range(count)]
    for game_id in ids:
        generate_game(root, game_id, size_each, seed=seed, archives=1, cover=False)
    write_catalog(root / "catalog.toml", ids)
    return ids
