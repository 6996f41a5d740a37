"""Multi-peer downloads: chunk scheduler, staging, resume, delta, cancel, queue (SPEC §7)."""

from lanpeer.download.manager import DownloadManager, UnfinishedDownload
from lanpeer.download.operations import Operation
from lanpeer.download.progress import OperationStatus, ProgressEvent
from lanpeer.download.sources import ChunkSource, SourceDirectory, SourceSet

__all__ = [
    "ChunkSource",
    "DownloadManager",
    "Operation",
    "OperationStatus",
    "ProgressEvent",
    "SourceDirectory",
    "SourceSet",
    "UnfinishedDownload",
]
