"""Entry point of ``lanpeerd`` (SPEC §10): flags, config file, logging, signals, ``demo``.

Owns turning argv into a ``DaemonConfig`` and running one ``Daemon`` on uvloop when present.
Never holds daemon logic: ``lanpeer.daemon`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lanpeer.config import (
    DEFAULT_CONFIG_FILE,
    ConfigError,
    DaemonConfig,
    build_config,
    load_config_file,
)
from lanpeer.errors import LanpeerError

if TYPE_CHECKING:
    from lanpeer.daemon import Daemon

log = logging.getLogger("lanpeerd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanpeerd",
        description="LAN-party game sharing daemon. `lanpeerd demo` shows it working.",
        epilog="Control a running daemon with peer-cli. Flags override the config file.",
    )
    add = parser.add_argument
    add("--games", action="append", type=Path, metavar="DIR", help="game root (repeatable)")
    add("--state", type=Path, metavar="DIR", help="state dir (identity, index, resume state)")
    add("--socket", type=Path, metavar="PATH", help="control socket path")
    add("--bind", metavar="ADDR", help="address to listen on (default all; 127.0.0.1 = loopback)")
    add("--port", type=int, metavar="N", help="UDP (QUIC) port, default 47600")
    add("--name", help="name shown to peers (default: hostname)")
    add("--peer", action="append", dest="peers", metavar="HOST:PORT", help="static peer")
    add("--no-mdns", dest="mdns", action="store_const", const=False, help="no mDNS discovery")
    add("--party-key", metavar="KEY", help="only peers that know this key may connect")
    add("--max-upload", metavar="RATE", help="upload cap, e.g. 50MB/s")
    add("--max-download", metavar="RATE", help="download cap, e.g. 100MB/s")
    add("--bulk", choices=["auto", "quic"], help="chunk transport (auto: TCP bulk)")
    add("--http-share", metavar="ADDR:PORT", help="serve downloaded games to browsers (off)")
    add("--catalog", type=Path, metavar="FILE", help="catalog TOML file")
    add("--config", type=Path, metavar="FILE", help=f"TOML config (default {DEFAULT_CONFIG_FILE})")
    add("-v", "--verbose", action="store_true", help="debug logging")
    add("--version", action="version", version=f"lanpeerd {_version()}")
    return parser


def _version() -> str:
    from importlib.metadata import version

    return version("lanpeer")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        from lanpeer.demo import main as demo_main

        return demo_main(args[1:])
    options = _parser().parse_args(args)
    _setup_logging(options.verbose)
    try:
        config = _config(options)
    except ConfigError as exc:
        log.error("%s", exc)  # noqa: TRY400 - a message for people, not a traceback
        return 2
    return run_daemon(config)


def _config(options: argparse.Namespace) -> DaemonConfig:
    flags = vars(options).copy()
    config_file = flags.pop("config")
    flags.pop("verbose")
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    file_values = load_config_file(config_file) if config_file is not None else {}
    return build_config(file_values, flags, config_file)


def run_daemon(config: DaemonConfig) -> int:
    """Run until stopped; the exit status says why it ended (0: asked to stop)."""
    from lanpeer.daemon import Daemon

    try:
        _run(Daemon(config))
    except (LanpeerError, BaseExceptionGroup) as exc:
        error = _first_lanpeer_error(exc)
        if error is None:
            raise
        log.error("%s", error)  # noqa: TRY400 - a message for people, not a traceback
        return 1
    return 0


def _first_lanpeer_error(exc: BaseException) -> LanpeerError | None:
    if isinstance(exc, LanpeerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _first_lanpeer_error(inner)) is not None:
                return found
    return None


def _run(daemon: Daemon) -> None:
    async def amain() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop)
        await daemon.run()

    if os.environ.get("LANPEER_UVLOOP", "1") == "1":  # LANPEER_UVLOOP=0: plain asyncio
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(amain())
            return
    asyncio.run(amain())


#: Libraries whose INFO lines say nothing a person acts on: aioquic logs every connection's
#: version and ALPN negotiation (half the log on a busy host), libarchive its digest support.
QUIET_LOGGERS = ("quic", "libarchive")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if not verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
