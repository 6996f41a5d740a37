"""Install and update progress as people see it: bytes of the total, rate and ETA.

Owns carrying the extraction's progress (called in the worker thread) to the loop, at most a
few times a second, into the running operation's fields (``ops``) and a ``ProgressEvent``
(``--wait`` bars, ``watch``). Never touches the files being extracted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from lanpeer_proto.control import ProgressEvent

from lanpeer.download.progress import RateWindow, eta_seconds

#: Updates per second that reach the loop: smooth bars, negligible cost for a 1 MiB block.
UPDATES_PER_SECOND = 5


class InstallProgress:
    """``report(done, total)`` from any thread; the loop applies the newest values."""

    def __init__(
        self,
        game_id: str,
        kind: str,
        state: str,
        operation: Callable[[], Any],
        publish: Callable[[ProgressEvent], None],
    ) -> None:
        self.game_id, self.kind, self.state = game_id, kind, state
        self._operation = operation  # the running operation (its fields feed `ops`), or None
        self._publish = publish
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._last_sent = 0.0
        self._pending: tuple[int, int] | None = None
        self._scheduled = False  # an _apply is on its way to the loop
        self._window = RateWindow()
        self._seen = 0

    def report(self, done: int, total: int) -> None:
        """In the worker thread: keep the newest value, wake the loop when it is time."""
        now = time.monotonic()
        with self._lock:
            self._pending = (done, total)
            due = now - self._last_sent >= 1 / UPDATES_PER_SECOND or done >= total
            wake = due and not self._scheduled
            if wake:
                self._last_sent, self._scheduled = now, True
        if wake:
            self._loop.call_soon_threadsafe(self._apply)

    def _apply(self) -> None:
        with self._lock:
            pending, self._pending, self._scheduled = self._pending, None, False
        if pending is None:
            return
        done, total = pending
        now = time.monotonic()
        self._window.add(now, max(0, done - self._seen))
        self._seen = done
        rate = self._window.rate(now)
        op = self._operation()
        if op is not None:
            op.bytes_done, op.bytes_total, op.rate = done, total, rate
        self._publish(
            ProgressEvent(
                game_id=self.game_id,
                kind=self.kind,
                state=self.state,
                bytes_done=done,
                bytes_total=total,
                rate=rate,
                eta=eta_seconds(total - done, rate),
            )
        )
