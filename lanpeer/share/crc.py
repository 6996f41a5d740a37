"""CRC-32 of every file of a served game, for its ZIP entries: from the index, else computed once.

Owns the one worker thread that reads files for their CRC (zlib releases the GIL) and the rule
that concurrent requests for one game share one computation. Each value is stored in the library
index for exactly the file version it was read from. Never reads a file on the event loop and
never computes a CRC twice for an unchanged file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest

from lanpeer.library.errors import ServeRefused
from lanpeer.tasks import OwnedTasks

log = logging.getLogger(__name__)

#: Read size: large enough that zlib.crc32 runs at memory speed, small enough to stay in cache.
READ_SIZE = 1 << 20


class CrcLibrary(Protocol):
    """What the CRC cache needs of ``lanpeer.library.GameLibrary``."""

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int: ...
    def cached_crc32s(self, game_id: str) -> dict[str, int | None]: ...
    def store_crc32(self, game_id: str, fd: int, path: str, crc32: int) -> bool: ...


class FileChanged(Exception):
    """A file changed while its CRC was read: the game is being rewritten, try again later."""


class Crc32Cache:
    """Started and closed with the share (``start``/``aclose``): its computations run in its
    own task group and end with it."""

    def __init__(self, library: CrcLibrary) -> None:
        self._library = library
        # One thread: a first download of a game reads it once; a second game waits its turn
        # rather than halving the disk's throughput for both.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-share-crc")
        self._tasks = OwnedTasks(log)
        # (game, manifest_hash) -> the one computation's result, which every waiter awaits
        self._running: dict[tuple[str, bytes], asyncio.Future[dict[str, int]]] = {}
        self.files_read = 0  # files whose CRC was computed (not found in the index)

    async def start(self) -> None:
        await self._tasks.start()

    async def aclose(self) -> None:
        await self._tasks.aclose()  # cancels every computation; their waiters see it
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def wait_crcs(self, manifest: Manifest) -> dict[str, int]:
        """CRC-32 per path of ``manifest``'s files; raises ServeRefused or FileChanged."""
        key = (manifest.game_id, manifest.manifest_hash)
        result = self._running.get(key)
        if result is None:
            if not self._tasks.running:
                raise ServeRefused(ErrorCode.BUSY, "the share is not running")
            result = self._running[key] = asyncio.get_running_loop().create_future()
            self._tasks.spawn(self._deliver(key, manifest, result), f"CRC-32s of {key[0]}")
        # Shielded: one client giving up does not cancel the work others wait for.
        return await asyncio.shield(result)

    async def _deliver(
        self, key: tuple[str, bytes], manifest: Manifest, result: asyncio.Future[dict[str, int]]
    ) -> None:
        """Compute into ``result``; the task itself never fails: each waiter re-raises."""
        try:
            result.set_result(await self._compute(manifest))
        except asyncio.CancelledError:
            result.cancel()
            raise
        except Exception as exc:
            result.set_exception(exc)
            # Retrieved: every waiter may have given up; those still waiting re-raise it.
            log.debug("CRC-32s of %s not computed: %r", key[0], result.exception())
        finally:
            if self._running.get(key) is result:
                del self._running[key]

    async def _compute(self, manifest: Manifest) -> dict[str, int]:
        loop = asyncio.get_running_loop()
        game_id = manifest.game_id
        cached = await loop.run_in_executor(self._pool, self._library.cached_crc32s, game_id)
        crcs: dict[str, int] = {}
        for file in manifest.files:
            known = cached.get(file.path)
            if known is None:
                known = await self._read(manifest, file.path)
            crcs[file.path] = known
        return crcs

    async def _read(self, manifest: Manifest, path: str) -> int:
        # Opened on the loop, where the library's served-file checks run; read in the thread.
        # The thread owns and closes the fd: a cancelled await does not stop a running read.
        fd = self._library.open_served_file(manifest.game_id, manifest.manifest_hash, path)
        loop = asyncio.get_running_loop()
        crc = await loop.run_in_executor(self._pool, self._read_and_store, manifest, fd, path)
        self.files_read += 1
        return crc

    def _read_and_store(self, manifest: Manifest, fd: int, path: str) -> int:
        try:
            crc = crc32_of_fd(fd)
            self._library.store_crc32(manifest.game_id, fd, path, crc)
        finally:
            os.close(fd)
        return crc


def crc32_of_fd(fd: int) -> int:
    """CRC-32 of the whole file open as ``fd``; FileChanged if it moved while read (blocking)."""
    before = os.fstat(fd)
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    crc, offset = 0, 0
    while offset < before.st_size:
        got = os.preadv(fd, [view[: min(READ_SIZE, before.st_size - offset)]], offset)
        if got == 0:
            raise FileChanged("a file shrank while its CRC-32 was computed")
        crc = zlib.crc32(view[:got], crc)
        offset += got
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChanged("a file changed while its CRC-32 was computed")
    return crc
