"""Entry-name rules: an accepted name always stays inside the staging dir; names are refused,
never rewritten."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from lanpeer.install.names import NameRegistry, entry_name_problem, split_entry_name

ALPHABET = st.sampled_from([*"aB./\\:\x00\x01 -_", "..", "é", "CON", "//"])


@given(st.lists(ALPHABET, min_size=0, max_size=12).map("".join))
def test_accepted_names_stay_inside_and_are_unchanged(name: str) -> None:
    if entry_name_problem(name, max_depth=32) is not None:
        return
    joined = posixpath.normpath(posixpath.join("/staging", name))
    assert joined.startswith("/staging/")
    assert "/".join(split_entry_name(name)) == name.removesuffix("/")
    assert not any(ord(c) < 32 for c in name)
    assert "\\" not in name


def test_registry_allows_repeated_directories_only() -> None:
    names = NameRegistry()
    assert names.claim(["a"], True) is None
    assert names.claim(["a", "b"], False) is None
    assert names.claim(["a"], True) is None
    assert names.claim(["a", "b"], False) == "duplicate entry 'a/b'"
    assert "collides" in (names.claim(["A", "c"], False) or "")
    assert "both a file and a directory" in (names.claim(["a", "b", "c"], False) or "")
