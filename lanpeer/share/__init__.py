"""The HTTP share (SPEC §9c): downloaded catalog games for browsers, one resumable ZIP each.

Public surface: ``ShareServer`` (an async context manager with ``run()``, ``url``,
``downloads()``), ``ShareLimits`` and ``ShareDownload``.
"""

from lanpeer.share.server import ShareDownload, ShareLimits, ShareServer

__all__ = ["ShareDownload", "ShareLimits", "ShareServer"]
