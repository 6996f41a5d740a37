"""``lanpeerd demo``: three peers on loopback, one game downloaded from two and installed.

Placeholder until the library, net, download and install parts land: it refuses clearly.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("lanpeerd demo: needs the library, net, download and install parts", file=sys.stderr)
    return 1
