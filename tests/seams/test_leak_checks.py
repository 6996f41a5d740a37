"""The root conftest's leak checks see what they are meant to see."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests import conftest


def test_a_task_pending_when_its_loop_closes_is_recorded() -> None:
    async def leak() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")

    with asyncio.Runner() as runner:
        runner.run(leak())
    recorded, conftest._pending_at_close[:] = list(conftest._pending_at_close), []
    assert len(recorded) == 1
    assert "forgotten" in recorded[0]


def test_an_fd_left_open_is_found_and_a_closed_one_is_not(tmp_path: Path) -> None:
    before = conftest._open_fds()
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        leaked = conftest._leaked_fds(before, time.monotonic())
        assert leaked == [f"{fd} -> {tmp_path / 'f'}"]
    finally:
        os.close(fd)
    assert conftest._leaked_fds(before, time.monotonic()) == []
