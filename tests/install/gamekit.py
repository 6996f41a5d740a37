"""Test helpers for install tests: build real game dirs with real archives, hash trees."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path


def content(name: str, size: int) -> bytes:
    """Deterministic, poorly compressible bytes for a file name."""
    out = bytearray()
    seed = name.encode()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:size])


def write_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def make_game(game_dir: Path, version: str, seed: str = "v1") -> Path:
    """A downloaded game: version.ini, one tar.gz and one zip payload (.eti), a cover file."""
    game_dir.mkdir(parents=True, exist_ok=True)
    write_tar(
        game_dir / "data1.eti",
        {"bin/game.exe": content(seed + "exe", 3000), "README.txt": seed.encode() * 10},
    )
    write_zip(
        game_dir / "data2.eti",
        {"maps/a.map": content(seed + "a", 2000), "maps/deep/b.map": content(seed + "b", 500)},
    )
    (game_dir / "cover.jpg").write_bytes(content(seed + "cover", 700))
    (game_dir / "version.ini").write_text(f"[game]\nversion={version}\n")
    return game_dir


def tree_digest(top: Path) -> dict[str, str]:
    """Every entry under ``top`` (relative path -> type and content hash); symlinks as links."""
    result: dict[str, str] = {}
    if not os.path.lexists(top):
        return result
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(directory) / name
            rel = str(path.relative_to(top))
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                result[rel] = "link:" + os.readlink(path)
            elif stat.S_ISDIR(mode):
                result[rel] = "dir"
            else:
                result[rel] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return result
