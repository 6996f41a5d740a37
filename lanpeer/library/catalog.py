"""The catalog: the allow-list of games this host advertises and serves (SPEC §3).

Owns reading the TOML file (``[[game]]`` tables with ``id``, ``name`` and optional
``description``, ``genre``, ``max_players``) and writing it atomically. Never loses an entry:
a file that cannot be parsed is reported and left untouched, and the previous catalog stays.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from lanpeer_proto.paths import is_game_id

from lanpeer.library.errors import CatalogError

log = logging.getLogger(__name__)

#: A catalog is hand-edited text; a few MB is far beyond any real party's library.
MAX_CATALOG_BYTES = 8 << 20
_TEXT_LIMITS = {"name": 256, "description": 4096, "genre": 256}


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    description: str | None = None
    genre: str | None = None
    max_players: int | None = None


def catalog_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns) of the catalog file, or None when it is missing: re-read on change.

    Parsing 1,000 entries with tomllib costs ~80 ms, most of a warm rescan of 1,000 games.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def load_catalog(path: Path) -> dict[str, CatalogEntry]:
    """Entries by id. A missing file is an empty catalog; a broken file raises CatalogError.

    A single bad entry is skipped with a warning instead of voiding the whole catalog.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from exc
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogError(f"catalog {path} is larger than {MAX_CATALOG_BYTES} bytes")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"catalog {path} is not valid TOML ({exc}); fix or remove it") from exc
    tables = doc.get("game", [])
    if not isinstance(tables, list):
        raise CatalogError(f"catalog {path}: 'game' must be an array of tables ([[game]])")
    entries: dict[str, CatalogEntry] = {}
    for table in tables:
        entry = _entry_from(table)
        if entry is None:
            log.warning("catalog %s: skipping invalid entry %.200r", path, table)
        elif entry.id not in entries:
            entries[entry.id] = entry
    return entries


def _entry_from(table: object) -> CatalogEntry | None:
    if not isinstance(table, Mapping):
        return None
    game_id, name = table.get("id"), table.get("name")
    if not isinstance(game_id, str) or not is_game_id(game_id) or not isinstance(name, str):
        return None
    fields: dict[str, object] = {"id": game_id, "name": name[: _TEXT_LIMITS["name"]]}
    for key in ("description", "genre"):
        value = table.get(key)
        if isinstance(value, str):
            fields[key] = value[: _TEXT_LIMITS[key]]
    players = table.get("max_players")
    if isinstance(players, int) and not isinstance(players, bool) and 0 <= players <= 65535:
        fields["max_players"] = players
    return CatalogEntry(**fields)  # type: ignore[arg-type]


def render_catalog(entries: Iterable[CatalogEntry]) -> str:
    """TOML text of ``entries`` sorted by id; strings are JSON-escaped, which TOML accepts."""
    blocks = []
    for entry in sorted(entries, key=lambda e: e.id):
        lines = ["[[game]]"]
        for key, value in asdict(entry).items():
            if value is None:
                continue
            text = str(value) if isinstance(value, int) else _toml_string(value)
            lines.append(f"{key} = {text}")
        blocks.append("\n".join(lines))
    return (
        "# lanpeer catalog: games this host advertises and serves\n\n" + "\n\n".join(blocks) + "\n"
    )


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def write_catalog(path: Path, entries: Iterable[CatalogEntry]) -> None:
    """Replace the catalog atomically: tmp file + fsync + rename + directory fsync."""
    text = render_catalog(entries)
    tomllib.loads(text)  # never write a file we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise CatalogError(f"cannot write catalog {path}: {exc.strerror}") from exc


def add_entry(
    path: Path, entry: CatalogEntry, fallback: Mapping[str, CatalogEntry]
) -> dict[str, CatalogEntry]:
    """Add ``entry`` to the catalog file as it is on disk now (edits made meanwhile are kept).

    A file that cannot be parsed is moved aside to ``<name>.broken`` (never overwritten) and
    ``fallback`` (the last good catalog) is used instead.
    """
    try:
        entries = load_catalog(path)
    except CatalogError as exc:
        aside = path.with_name(path.name + ".broken")
        try:
            os.replace(path, aside)
        except OSError as move:
            raise CatalogError(f"{exc}; and it cannot be moved aside: {move.strerror}") from move
        log.warning("%s; moved it to %s and wrote the last good catalog", exc, aside)
        entries = dict(fallback)
    entries[entry.id] = entry
    write_catalog(path, entries.values())
    return entries
