"""The library: games on disk, the catalog, the SQLite index, manifests, the watcher, revisions.

Public surface: ``GameLibrary``, ``LocalGame``, ``ServeRefused``, ``CHUNK_SIZE`` and the
sample generator in ``lanpeer.library.samples``.
"""

from lanpeer.library.catalog import CatalogEntry
from lanpeer.library.errors import CatalogError, ServeRefused
from lanpeer.library.library import GameLibrary, GameOperation
from lanpeer.library.manifest import CHUNK_SIZE, verify_manifest
from lanpeer.library.state import LocalGame

__all__ = [
    "CHUNK_SIZE",
    "CatalogEntry",
    "CatalogError",
    "GameLibrary",
    "GameOperation",
    "LocalGame",
    "ServeRefused",
    "verify_manifest",
]
