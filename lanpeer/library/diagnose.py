"""Why a game is not in the library: the problems of game dirs and the catalog, in words.

Owns finding what the scan and the catalog reader skip on purpose (a dir whose name is not a
game id, a downloaded game the catalog does not list, a catalog entry without a dir or without
a ``name``, a misspelt table such as ``[[games]]``) so doctor and the log can say so. Reads
the roots and the catalog file; never changes anything.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from lanpeer_proto.paths import RESERVED_NAMES, is_game_id

#: Enough to say what is wrong; a root with thousands of odd dirs is summarised after this.
MAX_PROBLEMS = 50
_ENTRY_KEYS = ("id", "name", "description", "genre", "max_players")


def library_problems(roots: Iterable[Path], catalog_path: Path) -> list[str]:
    """Every problem found, most useful first, at most ``MAX_PROBLEMS`` (then a count)."""
    listed, problems = catalog_problems(catalog_path)
    problems += root_problems(roots, listed, catalog_path)
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"... and {more} more"]
    return problems


def catalog_problems(path: Path) -> tuple[set[str] | None, list[str]]:
    """(ids the catalog lists, or None when unreadable; problems of its entries)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set(), []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, [f"catalog {path} cannot be read: {exc}"]
    problems = [
        f"catalog {path}: unknown table {key!r}" + _did_you_mean(key, ["game"])
        for key in doc
        if key != "game"
    ]
    tables = doc.get("game", [])
    if not isinstance(tables, list):
        return set(), [*problems, f"catalog {path}: 'game' must be [[game]] tables"]
    listed: set[str] = set()
    for number, table in enumerate(tables, 1):
        problem = _entry_problem(table)
        if problem is None:
            listed.add(table["id"])
        else:
            problems.append(f"catalog {path}: entry #{number} skipped: {problem}")
    return listed, problems


def _entry_problem(table: object) -> str | None:
    if not isinstance(table, Mapping):
        return "not a table"
    game_id, name = table.get("id"), table.get("name")
    unknown = [key for key in table if key not in _ENTRY_KEYS]
    if not isinstance(game_id, str):
        return "no id" + _unknown_keys(unknown)
    if not is_game_id(game_id):
        return f"id {game_id!r} is not a game id{_suggest_id(game_id)}"
    if not isinstance(name, str):
        return f"{game_id!r} has no name" + _unknown_keys(unknown)
    return None


def root_problems(roots: Iterable[Path], listed: set[str] | None, catalog: Path) -> list[str]:
    problems: list[str] = []
    found: set[str] = set()
    for root in roots:
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"game root {root} cannot be read: {exc.strerror}")
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
                continue
            if not is_game_id(entry.name):
                problems.append(
                    f"game dir {entry.path!r} skipped: {entry.name!r} is not a game id"
                    f"{_suggest_id(entry.name)}"
                )
                continue
            found.add(entry.name)
            downloaded = os.path.isfile(os.path.join(entry.path, "version.ini"))
            if listed is not None and downloaded and entry.name not in listed:
                problems.append(
                    f"game {entry.name!r} is not in the catalog {catalog}: it is neither "
                    "advertised nor served; add a [[game]] entry with its id and name"
                )
    for game_id in sorted((listed or set()) - found):
        problems.append(f"catalog entry {game_id!r} has no game dir in any root")
    return problems


def _suggest_id(text: str) -> str:
    guess = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:64]
    if is_game_id(guess) and guess not in RESERVED_NAMES:
        return f" (ids are lowercase letters, digits, - and _: rename it to {guess!r})"
    return " (ids are lowercase letters, digits, - and _)"


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean [[{close[0]}]]?)" if close else ""


def _unknown_keys(keys: list[str]) -> str:
    if not keys:
        return ""
    hints = [key + _did_you_mean(key, list(_ENTRY_KEYS)).replace("[[", "").replace("]]", "")
             for key in keys]  # fmt: skip
    return f" (unknown keys: {', '.join(hints)})"
