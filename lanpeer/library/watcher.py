"""The only module that touches watchdog: filesystem events -> library events on the loop.

Watchdog's observer thread talks to asyncio in exactly one place (``_from_thread``, via
``loop.call_soon_threadsafe``); the loop-side ``deliver`` callback puts the event on the
library's bounded queue. Events are reduced to what the library acts on: a game id, the catalog,
or "scan everything" (a root itself moved or deleted). Never reads a game's files and never
blocks the observer thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

from lanpeer_proto.paths import RESERVED_NAMES, is_game_id
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from lanpeer.library.disk import LOCAL_DIR
from lanpeer.library.events import CatalogChanged, GameChanged, LibraryEvent, ScanAll

_JOIN_TIMEOUT = 5.0


class LibraryWatcher(FileSystemEventHandler):
    """Watches the roots (recursively) and the catalog's directory."""

    def __init__(
        self,
        roots: list[Path],
        catalog_path: Path,
        deliver: Callable[[LibraryEvent], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._roots = [os.path.abspath(r) for r in roots]
        self._catalog = os.path.abspath(catalog_path)
        self._deliver = deliver  # runs on the loop, never in the observer thread
        self._loop = loop
        self._observer = Observer()
        self._watched: set[str] = set()
        self._lock = threading.Lock()  # start/watch and stop may run in different threads
        self._stopped = False

    def start(self) -> None:
        """Start the observer thread and watch what exists (blocking: a worker thread).

        Watching a root recursively walks its whole tree (``local/`` too) to add inotify
        watches, so the library runs this off its startup path.
        """
        with self._lock:
            if not self._stopped:
                self._observer.start()
        self.watch_new_roots()

    def watch_new_roots(self) -> None:
        """Watch roots (and the catalog's dir) that exist now but were missing before."""
        catalog_dir = os.path.dirname(self._catalog)
        wanted = [(root, True) for root in self._roots]
        if catalog_dir not in self._roots:
            wanted.append((catalog_dir, False))
        for path, recursive in wanted:
            with self._lock:
                if self._stopped or path in self._watched or not os.path.isdir(path):
                    continue
                self._observer.schedule(self, path, recursive=recursive)
                self._watched.add(path)

    def stop(self) -> None:
        """Stop and join the observer thread (blocking: call it from a worker thread)."""
        with self._lock:
            self._stopped = True
            self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(_JOIN_TIMEOUT)

    # -- observer thread ---------------------------------------------------------------

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw)
            found = self._classify(path, event.event_type) if path else None
            if found is not None:
                self._from_thread(found)

    def _classify(self, path: str, kind: str) -> LibraryEvent | None:
        if path == self._catalog:
            return CatalogChanged()
        for root in self._roots:
            if path == root:  # its own "modified" only echoes a child's event
                return ScanAll(f"root {root} changed") if kind in ("deleted", "moved") else None
            if path.startswith(root + os.sep):
                return _game_event(path[len(root) + 1 :].split(os.sep), kind)
        return None

    def _from_thread(self, event: LibraryEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:  # the loop closed while the observer was stopping
            pass


def _game_event(parts: list[str], kind: str) -> LibraryEvent | None:
    """A game id for a path inside a game dir, unless the change cannot alter served content."""
    if not is_game_id(parts[0]):
        return None
    if kind == "modified" and parts[1:] in ([], [LOCAL_DIR]):
        return None  # a directory's own mtime moving only echoes an event on its child
    # local/ itself appearing or going changes the state; what happens inside it does not.
    if len(parts) >= 2 and parts[1] in RESERVED_NAMES and parts[1:] != [LOCAL_DIR]:
        return None
    return GameChanged(parts[0])
