"""Is a game running? Processes whose cwd, root, executable or open files are under a path.

The only POSIX-specific (Linux ``/proc``) code of "game in use"; the auto-updater asks
``holders`` and waits with ``wait_released``. Never signals or otherwise touches a process.
Other platforms (see ARCHITECTURE.md): Windows would ask the Restart Manager
(``RmGetList`` over the files of ``local/``), macOS ``proc_listpids`` + ``proc_pidinfo``
(``PROC_PIDVNODEPATHINFO`` for cwd, ``PROC_PIDLISTFDS`` for open files), as ``lsof`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

PROC = Path("/proc")


def holders(path: Path, proc: Path = PROC) -> list[int]:
    """Pids of processes using anything under ``path`` (those we may inspect: as root, all)."""
    target = os.path.realpath(path)
    prefix = target.rstrip("/") + "/"
    found = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if entry.name.isdigit() and entry.name != str(os.getpid()) and _uses(entry, target, prefix):
            found.append(int(entry.name))
    return sorted(found)


def _uses(proc_dir: Path, target: str, prefix: str) -> bool:
    links = [proc_dir / "cwd", proc_dir / "exe", proc_dir / "root"]
    with contextlib.suppress(OSError):
        links += list((proc_dir / "fd").iterdir())
    for link in links:
        try:
            where = os.readlink(link)
        except OSError:
            continue  # gone, or not ours to read
        where = where.removesuffix(" (deleted)")
        if where == target or where.startswith(prefix):
            return True
    return False


async def wait_released(pids: list[int], timeout: float) -> None:  # noqa: ASYNC109 - seam
    """Return when one of ``pids`` exits (pidfd readable) or after ``timeout`` seconds.

    The caller scans ``holders`` again afterwards: a process may have started meanwhile.
    """
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    fds = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            exited.set()  # already gone
            continue
        fds.append(fd)
        loop.add_reader(fd, exited.set)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await exited.wait()
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)
