"""Kill a real child process at the k-th filesystem step of each transaction, for every k.

After each kill, startup recovery runs and the game dir must be exactly the old or exactly the
new tree (contents, local/, intent log, .local.* dirs). The same loop with an injected EIO at
step k checks that a failed step aborts and converges the same way.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from gamekit import content, make_game, tree_digest

from lanpeer.errors import LanpeerError
from lanpeer.install import (
    commit_download,
    fsops,
    install_game,
    recover_game_dir,
    remove_game,
    uninstall_game,
    update_game,
)

#: Generous bound per child; each one runs a few milliseconds of file operations.
CHILD_TIMEOUT = 30.0
#: Far above any transaction's step count here; a loop reaching it is a bug.
MAX_STEPS = 400


@dataclass(frozen=True)
class Scenario:
    name: str
    prepare: Callable[[Path], object]  # builds <root>/game in its old state
    run: Callable[[Path], None]  # the transaction, given the game dir


def _installed(root: Path) -> None:
    game = make_game(root / "game", "1.0")
    install_game(game)
    (game / "local" / "savegame.dat").write_bytes(b"user data")


def _update_ready(root: Path) -> None:
    _installed(root)
    make_game(root / "game", "2.0", seed="v2")


def _download_staged(root: Path) -> None:
    game = make_game(root / "game", "1.0")
    part = game / ".lanpeer.part" / "files"  # where the download engine stages
    for name, size in (("data1.eti", 800), ("extra/new.pak", 300), ("extra/more.pak", 50)):
        (part / name).parent.mkdir(parents=True, exist_ok=True)
        (part / name).write_bytes(content("new" + name, size))
    (game / ".lanpeer.part" / "resume.state").write_bytes(b"verified chunks")


def _commit(game: Path) -> None:
    files = ["data1.eti", "extra/new.pak", "extra/more.pak"]
    commit_download(
        game, game / ".lanpeer.part" / "files", files, b"version=2.0\n", removed=["cover.jpg"]
    )


SCENARIOS = [
    Scenario("install", lambda root: make_game(root / "game", "1.0"), install_game),
    Scenario("update", _update_ready, update_game),
    Scenario("uninstall", _installed, uninstall_game),
    Scenario("download-commit", _download_staged, _commit),
    Scenario(
        "remove",
        lambda root: make_game(root / "game", "1.0"),
        lambda game: remove_game([game.parent], game),
    ),
]


def _kill_at(k: int) -> fsops.StepHook:
    count = 0

    def hook(_operation: str, _path: str) -> None:
        nonlocal count
        count += 1
        if count == k:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _fail_at(k: int, seen: list[str]) -> fsops.StepHook:
    def hook(operation: str, path: str) -> None:
        seen.append(operation)
        if len(seen) == k:
            raise OSError(errno.EIO, f"injected EIO at {operation} {path}")

    return hook


def _child(scenario: Scenario, game: Path, k: int) -> None:
    fsops.set_step_hook(_kill_at(k))
    scenario.run(game)


def _old_and_new(scenario: Scenario, base: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    template = base / "template"
    scenario.prepare(template)
    finished = base / "finished"
    shutil.copytree(template, finished, symlinks=True)
    scenario.run(finished / "game")
    return template, tree_digest(template), tree_digest(finished)


def _fresh_copy(template: Path, base: Path, k: int) -> Path:
    root = base / f"k{k}"
    shutil.copytree(template, root, symlinks=True)
    return root / "game"


def _assert_converged(game: Path, old: dict[str, str], new: dict[str, str], k: int) -> str:
    result = recover_game_dir(game) if game.exists() else None
    assert result is None or result.error is None, f"step {k}: {result}"
    state = tree_digest(game.parent)
    if new == {} and state == {"game": "dir"}:
        # remove: killed after the intent was cleared, before rmdir; an empty dir is no game
        state = new
    assert state in (old, new), f"step {k}: neither old nor new: {sorted(state)}"
    if game.exists():
        assert not recover_game_dir(game).changed, f"step {k}: recovery did not converge"
    return "old" if state == old else "new"


@pytest.mark.process
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_sigkill_at_every_step_recovers_to_old_or_new(
    scenario: Scenario, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    template, old, new = _old_and_new(scenario, tmp_path)
    assert old != new
    fork = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for k in range(1, MAX_STEPS):
        game = _fresh_copy(template, tmp_path, k)
        child = fork.Process(target=_child, args=(scenario, game, k))
        child.start()
        child.join(CHILD_TIMEOUT)
        assert child.exitcode is not None, f"step {k}: child hung"
        if child.exitcode == 0:
            assert tree_digest(game.parent) == new
            break
        assert child.exitcode == -signal.SIGKILL, f"step {k}: child failed: {child.exitcode}"
        outcomes.append(_assert_converged(game, old, new, k))
        shutil.rmtree(game.parent)
    else:
        pytest.fail(f"{scenario.name} did not finish within {MAX_STEPS} steps")
    assert "old" in outcomes
    assert "new" in outcomes or scenario.name in ("install",)
    record_property("kill_points", len(outcomes))
    print(f"{scenario.name}: {len(outcomes)} kill points, {outcomes.count('new')} rolled forward")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_eio_at_every_step_aborts_and_converges(scenario: Scenario, tmp_path: Path) -> None:
    template, old, new = _old_and_new(scenario, tmp_path)
    failed_points = 0
    for k in range(1, MAX_STEPS):
        game = _fresh_copy(template, tmp_path, k)
        seen: list[str] = []
        fsops.set_step_hook(_fail_at(k, seen))
        try:
            scenario.run(game)
        except LanpeerError:
            pass
        else:
            if len(seen) < k:
                break  # no fault was injected: the transaction is complete
            # only remove's final rmdir of the emptied game dir is best-effort
            assert scenario.name == "remove", f"step {k} ({seen[k - 1]}) failed silently"
        finally:
            fsops.set_step_hook(None)
        _assert_converged(game, old, new, k)
        shutil.rmtree(game.parent)
        failed_points = k
    print(f"{scenario.name}: EIO injected at {failed_points} steps")
