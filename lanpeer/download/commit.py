"""Commit of a staged download: install's ``commit_download`` when present, else a local stand-in.

The stand-in keeps the same signature and the same order (old sentinel away, files moved into
place, ``version.ini`` last via tmp + fsync + rename + dir fsync) but writes no intent log;
it exists only until ``lanpeer.install.commit_download`` is on main.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from lanpeer.download.staging import fsync_dir

CommitFn = Callable[[Path, Path, list[str], bytes], None]


def _local_commit_download(
    game_dir: Path, part_dir: Path, files: list[str], version_ini: bytes
) -> None:
    sentinel = game_dir / "version.ini"
    sentinel.unlink(missing_ok=True)  # not "downloaded" while files are half moved
    fsync_dir(game_dir)
    for rel in files:
        target = game_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part_dir / rel, target)
        fsync_dir(target.parent)
    tmp = game_dir / ".version.ini.tmp"
    with open(tmp, "wb") as f:
        f.write(version_ini)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, sentinel)
    fsync_dir(game_dir)
    shutil.rmtree(part_dir, ignore_errors=True)


def resolve_commit() -> CommitFn:
    try:
        install = importlib.import_module("lanpeer.install")
    except ImportError:
        return _local_commit_download
    found = getattr(install, "commit_download", None)
    return found if callable(found) else _local_commit_download
