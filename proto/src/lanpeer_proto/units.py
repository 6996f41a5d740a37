"""How sizes and rates read to people, in one unit system: decimal SI (kB, MB, GB; MB/s).

Decimal because rates are typed that way (``--max-upload 50MB/s``) and links are sold that way
(1 GbE = 125 MB/s): a cap of 20MB/s must show as 20.0 MB/s, not 19.1 MiB/s. peer-cli (tables and
bars), the demo and doctor all format through here. Pure functions, no I/O.
"""

from __future__ import annotations

_PREFIXES = ("B", "kB", "MB", "GB", "TB", "PB")


def size(n: float) -> str:
    """``1_500_000`` -> ``1.5 MB``; bytes below 1 kB stay whole."""
    for unit in _PREFIXES:
        if abs(n) < 1000 or unit == _PREFIXES[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def rate(bytes_per_s: float) -> str:
    """``20_000_000`` -> ``20.0 MB/s``."""
    return f"{size(bytes_per_s)}/s"


def duration(seconds: float | None) -> str:
    """An ETA or elapsed time: ``0:01:05``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
