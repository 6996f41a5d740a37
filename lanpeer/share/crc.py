"""CRC-32 of every file of a served game, for its ZIP entries: from the index, else computed once.

Owns the one worker thread that reads files for their CRC (zlib releases the GIL) and the rule
that concurrent requests for one game share one computation. Each value is stored in the library
index for exactly the file version it was read from. Never reads a file on the event loop and
never computes a CRC twice for an unchanged file.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lanpeer_proto.messages import Manifest

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
    def __init__(self, library: CrcLibrary) -> None:
        self._library = library
        # One thread: a first download of a game reads it once; a second game waits its turn
        # rather than halving the disk's throughput for both.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-share-crc")
        self._running: dict[tuple[str, bytes], asyncio.Task[dict[str, int]]] = {}
        self.files_read = 0  # files whose CRC was computed (not found in the index)

    async def aclose(self) -> None:
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    async def wait_crcs(self, manifest: Manifest) -> dict[str, int]:
        """CRC-32 per path of ``manifest``'s files; raises ServeRefused or FileChanged."""
        key = (manifest.game_id, manifest.manifest_hash)
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._compute(manifest))
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one client giving up does not cancel the work others wait for.
        return await asyncio.shield(task)

    def _forget(self, key: tuple[str, bytes], task: asyncio.Task[dict[str, int]]) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have given up (each one re-raises it)

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
