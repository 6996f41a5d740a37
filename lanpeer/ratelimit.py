"""Token buckets for the global download and upload caps (SPEC §7 "bandwidth limits").

Owns pacing only: callers ask for ``n`` bytes before moving them. Never touches sockets or files,
and never blocks the event loop (waits are ``asyncio.sleep``).
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows ``rate_bytes_per_s`` on average with bursts up to ``burst`` bytes.

    A request larger than the burst is granted once the bucket is full and leaves it in debt, so a
    4 MiB chunk under a 1 MiB/s cap waits about 4 s in total instead of never passing.
    """

    def __init__(self, rate_bytes_per_s: float, *, burst: int | None = None) -> None:
        if rate_bytes_per_s <= 0:
            raise ValueError("a bandwidth cap must be a positive number of bytes per second")
        self.rate = float(rate_bytes_per_s)
        # A quarter second of traffic: smooth enough for progress bars, large enough that a
        # fast link is not paced by timer resolution.
        self.burst = burst if burst is not None else max(64 * 1024, int(self.rate / 4))
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def set_rate(self, rate_bytes_per_s: float) -> None:
        if rate_bytes_per_s <= 0:
            raise ValueError("a bandwidth cap must be a positive number of bytes per second")
        self._refill()
        self.rate = float(rate_bytes_per_s)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def wait_acquire(self, n: int) -> None:
        """Wait until ``n`` bytes may be moved; first come, first served."""
        async with self._lock:
            self._refill()
            need = min(float(n), float(self.burst))
            while self._tokens < need:
                await asyncio.sleep((need - self._tokens) / self.rate)
                self._refill()
            self._tokens -= n
