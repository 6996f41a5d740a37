"""library_rev, library_digest and deltas: the rev moves only on real change; deltas compose."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lanpeer_proto.messages import GameSummary

from lanpeer.library.revisions import RevisionLog, apply_delta, library_digest


def summary(game_id: str, version: str = "1", hashed: bool = True) -> GameSummary:
    digest = bytes([len(version)]) * 32 if hashed else None
    return GameSummary(
        id=game_id, name=game_id.upper(), version=version, manifest_hash=digest, size=1
    )


def test_rev_moves_only_on_real_change() -> None:
    log = RevisionLog()
    assert not log.apply({})
    assert log.apply({"a": summary("a")})
    assert not log.apply({"a": summary("a")})
    assert log.rev == 1
    assert log.apply({"a": summary("a", "2")})
    assert log.rev == 2


def test_digest_ignores_insertion_order() -> None:
    one = {"a": summary("a"), "b": summary("b")}
    two = {"b": summary("b"), "a": summary("a")}
    assert library_digest(one) == library_digest(two) != library_digest({"a": summary("a")})


def test_delta_coalesces_add_then_remove() -> None:
    log = RevisionLog()
    log.apply({"a": summary("a")})
    log.apply({"a": summary("a"), "b": summary("b")})
    log.apply({"b": summary("b", "22")})
    delta = log.delta_since(1)
    assert delta is not None
    assert (delta.added, delta.updated, delta.removed) == ([summary("b", "22")], [], ["a"])
    assert delta.library_digest == log.digest


def test_delta_limits() -> None:
    log = RevisionLog(history=2)
    for n in range(5):
        log.apply({"a": summary("a", "v" * (n + 1))})
    assert log.delta_since(2) is None  # older than the history
    assert log.delta_since(3) is not None
    assert log.delta_since(6) is None  # from the future
    same = log.delta_since(5)
    assert same is not None
    assert (same.added, same.updated, same.removed) == ([], [], [])


def test_persisted_form_keeps_rev_games_and_history() -> None:
    log = RevisionLog()
    log.apply({"a": summary("a")})
    log.apply({"a": summary("a", "2"), "b": summary("b", hashed=False)})
    restored = RevisionLog.from_bytes(log.to_bytes())
    assert (restored.rev, restored.digest, restored.snapshot()) == (
        log.rev,
        log.digest,
        log.snapshot(),
    )
    assert restored.delta_since(1) is None  # history not restored yet
    assert not restored.apply(dict(log.games))
    assert restored.restore_history(log.history_to_bytes())
    assert restored.delta_since(1) == log.delta_since(1)
    assert restored.delta_since(0) == log.delta_since(0)


@pytest.mark.parametrize("data", [b"", b"{", b"[[1, [], [], []]]", b'[["x"]]', b"[[2,[],[],[]]]"])
def test_a_history_that_does_not_end_at_the_rev_is_ignored(data: bytes) -> None:
    log = RevisionLog(rev=5)
    assert not log.restore_history(data)
    assert log.delta_since(4) is None


_ids = st.sampled_from(["a", "b", "c", "d", "e"])
_libraries = st.dictionaries(_ids, st.sampled_from(["1", "2", "33"]), max_size=5).map(
    lambda versions: {g: summary(g, v) for g, v in versions.items()}
)


@settings(max_examples=150, deadline=None)
@given(states=st.lists(_libraries, min_size=1, max_size=12), history=st.integers(1, 8))
def test_applying_a_delta_to_an_old_snapshot_gives_the_new_snapshot(
    states: list[dict[str, GameSummary]], history: int
) -> None:
    log = RevisionLog(history=history)
    held: dict[int, dict[str, GameSummary]] = {0: {}}
    for state in states:
        log.apply(state)
        held[log.rev] = dict(log.games)
    for rev, old in held.items():
        delta = log.delta_since(rev)
        if log.rev - rev > history:
            assert delta is None
            continue
        assert delta is not None
        assert delta.to_rev == log.rev
        new = apply_delta(old, delta)
        assert new == log.games
        assert library_digest(new) == delta.library_digest
