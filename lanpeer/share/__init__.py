"""The HTTP share (SPEC §9c): downloaded catalog games for browsers, one resumable ZIP each.

Public surface: ``lanpeer.share.server`` (``ShareServer``: an async context manager with
``run()``, ``url``, ``link_url()``, ``downloads()``; ``ShareLimits``; ``ShareDownload``).
Nothing is imported here, so the sans-IO ``zipmap`` and ``ranges`` load without aiohttp.
"""
