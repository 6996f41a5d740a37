"""Install and update progress as people see it: archive bytes extracted of the total, rate, ETA.

Owns an operation ``Transfer`` fed by the extraction's progress callback (called in the worker
thread): the newest value reaches the loop a few times a second, where the operation's queue
publishes it (``ops``, ``--wait`` bars, ``watch``). Never touches the files being extracted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from lanpeer.download.progress import RateWindow, TransferCounters, TransferSnapshot

#: Updates per second that reach the loop: smooth bars, negligible cost for a 1 MiB block.
UPDATES_PER_SECOND = 5


class ExtractionProgress:
    """Track it on the operation (``op.track``), pass ``report`` to the install step."""

    def __init__(
        self, progressed: Callable[[], None], counters: TransferCounters | None = None
    ) -> None:
        self._progressed = progressed  # the queue's progress event for the operation
        # A download's install keeps the download's counters: its finish reports the download.
        self._counters = counters or TransferCounters()
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pending: tuple[int, int] | None = None
        self._scheduled = False  # an _apply is on its way to the loop
        self._last_sent = 0.0
        self._done = self._total = 0
        self._window = RateWindow()

    @property
    def counters(self) -> TransferCounters:
        return self._counters

    def snapshot(self, now: float) -> TransferSnapshot:
        return TransferSnapshot(self._done, self._total, self._window.rate(now), (), {})

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
        self._window.add(time.monotonic(), max(0, done - self._done))
        self._done, self._total = done, total
        self._progressed()
