"""``peer-cli``: every command of SPEC §9 over the control socket, for people and scripts.

Owns the full command line: it loads every command group onto ``lanpeer_cli.app.app`` in the
order ``--help`` lists them. Exit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable,
4 unknown game or peer, 5 conflict. The quick road (``lanpeer_cli.entry``) answers
``--json status`` and TAB completion without loading this. Never imports ``lanpeer``.
"""

from __future__ import annotations

# Import order is registration order, which is the order ``--help`` lists the commands.
from lanpeer_cli.app import app

from lanpeer_cli.commands import info, downloads, peers, keep, daemon  # noqa: F401  # isort: skip

__all__ = ["app", "main", "run"]


def run(args: list[str]) -> None:
    """The full CLI on already hoisted arguments (``lanpeer_cli.entry`` is the entry point)."""
    app(args=args, prog_name="peer-cli")


def main() -> None:
    from lanpeer_cli.entry import main as entry_main

    entry_main()


if __name__ == "__main__":
    main()
