"""Scenario games on disk: generate once, copy to seeders, compare trees by content hash.

Owns what "the same game" means for a scenario: the BLAKE3 of every served file (relative
path + bytes), leaving out ``local/`` and dot-names (intent log, part dir), which are never
served. Never writes outside the game roots it is given.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import blake3

from lanpeer.library.samples import generate_game, write_catalog

#: Names a finished or cancelled download must not leave behind in a game directory.
LEFTOVERS = (".lanpeer.part", ".version.ini.tmp")


def make_game(cache: Path, game_id: str, size: int, *, version: str = "1.0") -> Path:
    """Generate ``game_id`` (about ``size`` bytes, two archives) once into ``cache``."""
    game_dir = cache / f"{game_id}-{version}-{size}" / game_id
    if not (game_dir / "version.ini").is_file():
        generate_game(game_dir.parent, game_id, size, seed=7, archives=2, version=version,
                      cover=False)  # fmt: skip
    return game_dir


def seed(root: Path, source: Path) -> Path:
    """Copy a generated game into ``root`` and list it in the root's catalog."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / source.name
    shutil.copytree(source, target, dirs_exist_ok=True)
    catalog = root / "catalog.toml"
    ids = sorted({p.name for p in root.iterdir() if (p / "version.ini").is_file()})
    write_catalog(catalog, ids)
    return target


def served_files(game_dir: Path) -> list[Path]:
    files = []
    for path in sorted(game_dir.rglob("*")):
        rel = path.relative_to(game_dir)
        if rel.parts[0] == "local" or any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink():
            files.append(path)
    return files


def tree_hash(game_dir: Path) -> str:
    """BLAKE3 over (relative path, size, bytes) of every served file, in path order."""
    digest = blake3.blake3()
    for path in served_files(game_dir):
        rel = path.relative_to(game_dir).as_posix().encode()
        digest.update(len(rel).to_bytes(4, "big") + rel + path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as data:
            while block := data.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def leftovers(game_dir: Path) -> list[str]:
    """Download scratch that is still there (should be none after finish or cancel)."""
    return [name for name in LEFTOVERS if (game_dir / name).exists()]
