"""Download tests use 64 KiB chunks: the engine takes chunk sizes from the manifest, and the
library's hasher reads its module constant, so small test games still span many chunks."""

from __future__ import annotations

import pytest

from lanpeer.library import manifest as library_manifest
from lanpeer.library import scanner as library_scanner
from tests.download.helpers import CHUNK


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library_manifest, "CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(library_scanner, "CHUNK_SIZE", CHUNK)
