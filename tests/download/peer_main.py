"""A lanpeer peer in its own process for download tests: seeds ``--home/games``, or downloads
``--download GAME`` from ``--peer`` (printing progress) — so a test can SIGKILL either side.

Prints JSON lines: {"listen": ...} once ready, then {"progress": bytes_done, ...} and
{"finished": ok, ...}. Uses --chunk-size for the library's hashing (tests keep games small).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from lanpeer.library import manifest as library_manifest
from lanpeer.library import scanner as library_scanner


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def seed(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from tests.download.peers import seeder

    async with seeder(Path(args.home), args.name, port=args.port) as node:
        say(listen=list(node.listen), peer_id=node.identity.peer_id)
        await stop.wait()


async def download(args: argparse.Namespace, stop: asyncio.Event) -> None:
    from tests.download.peers import leecher

    peers = [(h, int(p)) for h, p in (spec.rsplit(":", 1) for spec in args.peer)]
    async with leecher(Path(args.home), peers, max_download=args.max_download) as me:
        say(listen=list(me.node.listen), peer_id=me.node.identity.peer_id)
        manifest = await me.wait_offers(args.download, 1)
        op = me.manager.submit_download(args.download, manifest, summary=me.summary(args.download))
        me.manager.add_listener(lambda ev: say(progress=ev.bytes_done, state=ev.state))
        await op.wait_finished()
        counters = op.counters
        c = counters
        say(finished=op.ok, error=op.error, bytes_fetched=c.bytes_fetched,
            bytes_resumed=c.bytes_resumed, chunks_fetched=c.chunks_fetched)  # fmt: skip
        await stop.wait()


async def main(args: argparse.Namespace) -> None:
    library_manifest.CHUNK_SIZE = args.chunk_size
    library_scanner.CHUNK_SIZE = args.chunk_size  # type: ignore[attr-defined]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await (download(args, stop) if args.download else seed(args, stop))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--name", default="peer")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--download")
    parser.add_argument("--max-download", type=float, default=None)
    parser.add_argument("--chunk-size", type=int, default=64 * 1024)
    asyncio.run(main(parser.parse_args()))
