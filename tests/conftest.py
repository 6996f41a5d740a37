"""Shared fixtures for every test package.

Every test runs under ``process_guard``: a test that starts a process (a daemon, a helper,
``mount``, ``nft``, a forked crash-point child) must carry ``@pytest.mark.process``, so that
``pytest -m "not process"`` is the fast in-process layer and ``.ci/run`` can run it first.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

PROCESS_HINT = "this test starts a process: mark it @pytest.mark.process (see tests/conftest.py)"


class UnmarkedProcessError(AssertionError):
    """A test without the ``process`` marker tried to start a process."""


@pytest.fixture(autouse=True)
def process_guard(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Refuse ``subprocess.Popen`` (which asyncio's subprocesses use too) and ``os.fork``
    in a test that is not marked ``process``."""
    if request.node.get_closest_marker("process") is not None:
        yield
        return

    def refuse_popen(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        raise UnmarkedProcessError(f"{PROCESS_HINT}: {args[0] if args else kwargs.get('args')}")

    def refuse_fork() -> int:
        raise UnmarkedProcessError(f"{PROCESS_HINT}: os.fork()")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_popen)
    monkeypatch.setattr(os, "fork", refuse_fork)
    yield
