"""Shared fixtures and checks for every test package.

Every test runs under ``process_guard``: a test that starts a process (a daemon, a helper,
``mount``, ``nft``, a forked crash-point child) must carry ``@pytest.mark.process``, so that
``pytest -m "not process"`` is the fast in-process layer and ``.ci/run`` can run it first.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import libarchive  # noqa: F401  (imported here, before any test's guard: see below)
import pytest

# libarchive-c looks for its shared library on import with ``ctypes.util.find_library``, which
# runs ``/sbin/ldconfig -p``: a process. Imported here, at collection and outside every test, a
# fast test that is the first to import ``lanpeer.install`` (a lazy import in its body, or the
# only test selected) is not refused its import by ``process_guard``, whose rule stays whole.

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


# ------------------------------------------------------------------ leak checks, every test
#
# After every test (once all its fixtures are torn down): no asyncio task left pending when its
# event loop closed, no thread the test started still alive, no file descriptor it opened still
# open. A leak fails the test's teardown with what leaked.

#: Threads and fds a test started may need a moment to wind down after its teardown (a worker
#: thread finishing its last call, a socket closed by a finalizer): wait this long, no longer.
LEAK_GRACE = 2.0

_pending_at_close: list[str] = []
_runner_close = asyncio.Runner.close


def _recording_close(self: asyncio.Runner) -> None:
    """``asyncio.Runner.close`` (pytest-asyncio's and ``asyncio.run``'s) cancels what is still
    pending without a word; record it first. ``_loop`` is the Runner's (private) loop."""
    loop = self._loop  # type: ignore[attr-defined]
    if loop is not None and not loop.is_closed():
        _pending_at_close.extend(repr(t) for t in asyncio.all_tasks(loop) if not t.done())
    _runner_close(self)


asyncio.Runner.close = _recording_close  # type: ignore[method-assign]


def _open_fds() -> dict[int, str]:
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the listing's own fd, already closed
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    item.stash[_BEFORE] = (set(threading.enumerate()), _open_fds())
    _pending_at_close.clear()
    result = yield
    if _uses_wider_fixtures(item):
        # A module- or session-scoped fixture (a shared daemon, a lab) keeps its threads and
        # fds past this test: count from after set-up (what function fixtures leak is missed).
        item.stash[_BEFORE] = (set(threading.enumerate()), _open_fds())
    return result


def _uses_wider_fixtures(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(d[-1].scope != "function" and d[-1].baseid.startswith("tests") for d in definitions)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    result = yield
    threads, fds = item.stash.get(_BEFORE, (set(), {}))
    tasks, _pending_at_close[:] = list(_pending_at_close), []
    assert not tasks, f"tasks still pending when the test's event loop closed: {tasks}"
    deadline = time.monotonic() + LEAK_GRACE
    for thread in set(threading.enumerate()) - threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert not alive, f"threads the test started are still running: {alive}"
    leaked = _leaked_fds(fds, deadline)
    assert not leaked, f"file descriptors the test opened are still open: {leaked}"
    return result


def _leaked_fds(before: dict[int, str], deadline: float) -> list[str]:
    collected = False  # a full gc costs ~0.1-0.5 s: only when an fd looks leaked
    while True:
        now = _open_fds()
        leaked = [f"{fd} -> {now[fd]}" for fd in sorted(now) if before.get(fd) != now[fd]]
        if not leaked or (collected and time.monotonic() >= deadline):
            return leaked
        if collected:
            time.sleep(0.05)
        gc.collect()  # an unreferenced file object closes its fd when collected
        collected = True


_BEFORE = pytest.StashKey[tuple[set[threading.Thread], dict[int, str]]]()
