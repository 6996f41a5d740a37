"""Entry point of ``lanpeerd`` (placeholder until the daemon issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        print("lanpeerd demo: not built yet (see issue 7)", file=sys.stderr)
        return 1
    print("lanpeerd: the daemon is not built yet", file=sys.stderr)
    return 1
