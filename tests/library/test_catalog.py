"""The catalog file: round trips, atomic writes, and bad input that loses nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lanpeer.library.catalog import CatalogEntry, add_entry, load_catalog, write_catalog
from lanpeer.library.errors import CatalogError


def test_round_trip_with_awkward_text(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    entries = [
        CatalogEntry("quake", 'Quake "III"\\Arena', "line1\nline2\ttab\x7f", "FPS", 16),
        CatalogEntry("z-game", "Zürich ☃", None, None, None),
    ]
    write_catalog(path, entries)
    assert load_catalog(path) == {e.id: e for e in entries}
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_catalog_is_empty(tmp_path: Path) -> None:
    assert load_catalog(tmp_path / "none.toml") == {}


def test_broken_toml_is_an_error_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text("[[game]\nid = ")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(path)
    assert path.read_text() == "[[game]\nid = "


def test_bad_entries_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        '[[game]]\nid = "good"\nname = "Good"\nmax_players = 8\n'
        '[[game]]\nid = "Bad Id"\nname = "x"\n'
        '[[game]]\nid = "noname"\n'
        '[[game]]\nid = "players"\nname = "P"\nmax_players = -3\ngenre = 5\n'
    )
    catalog = load_catalog(path)
    assert sorted(catalog) == ["good", "players"]
    assert catalog["good"].max_players == 8
    assert catalog["players"] == CatalogEntry("players", "P")


def test_game_must_be_an_array_of_tables(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text('game = "oops"\n')
    with pytest.raises(CatalogError, match=r"\[\[game\]\]"):
        load_catalog(path)


def test_written_file_is_plain_toml(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "catalog.toml"
    write_catalog(path, [CatalogEntry("b", "B"), CatalogEntry("a", "A", genre="g")])
    doc = tomllib.loads(path.read_text())
    assert doc == {"game": [{"id": "a", "name": "A", "genre": "g"}, {"id": "b", "name": "B"}]}


def test_add_entry_keeps_edits_made_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    write_catalog(path, [CatalogEntry("a", "A")])
    with open(path, "a") as out:
        out.write('\n[[game]]\nid = "hand"\nname = "Added by hand"\n')
    entries = add_entry(path, CatalogEntry("b", "B"), fallback={})
    assert sorted(entries) == ["a", "b", "hand"]
    assert load_catalog(path) == entries


def test_add_entry_moves_a_broken_catalog_aside(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text("[[game]\nbroken by hand")
    entries = add_entry(path, CatalogEntry("b", "B"), fallback={"a": CatalogEntry("a", "A")})
    assert sorted(entries) == ["a", "b"]
    assert load_catalog(path) == entries
    assert (tmp_path / "catalog.toml.broken").read_text() == "[[game]\nbroken by hand"
