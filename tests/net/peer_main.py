"""A peer node in its own process, for tests that kill peers or run them in network namespaces.

Prints one JSON line when listening, then one per peer event (with that peer's games).
Stops cleanly (Goodbye, mDNS goodbye) on SIGTERM. Run: python -m tests.net.peer_main --help
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from lanpeer_proto.session import SessionTimers

from lanpeer.net.identity import Identity
from lanpeer.net.mtu import datagram_size_for
from lanpeer.net.node import NodeTimings, PeerNode
from lanpeer.net.peers import PeerEvent
from tests.net.dirlibrary import DirLibrary


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)  # before any await on the network
    library = DirLibrary(Path(args.games))
    for game_id in args.game:
        library.add_game(game_id, {f"{game_id}.bin": game_id.encode() * 1000})
    static = [(h, int(p)) for h, p in (spec.rsplit(":", 1) for spec in args.peer)]
    node = PeerNode(
        Identity.load_or_create(Path(args.state)),
        library,
        name=args.name,
        bind=args.bind,
        port=args.port,
        static_peers=static,
        mdns=args.mdns,
        timings=NodeTimings(stale_timeout=30, redial_min=0.1, redial_max=1.0),
        session_timers=SessionTimers(ping_interval=0.5, stale=3.0),
    )

    def report(event: PeerEvent) -> None:
        games = {p.peer_id: sorted(p.games) for p in node.peers()}
        _say(event=event.kind.value, peer_id=event.peer_id, games=games.get(event.peer_id, []))

    node.add_listener(report)
    async with node:
        datagram = datagram_size_for(args.bind)
        _say(listen=list(node.listen), peer_id=node.identity.peer_id, datagram=datagram,
             bulk_port=node.bulk_port)  # fmt: skip
        for game_id in args.late_game:  # changes the rev while mDNS is still probing
            library.add_game(game_id, {f"{game_id}.bin": game_id.encode() * 1000})
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--games", required=True)
    parser.add_argument("--name", default="peer")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--game", action="append", default=[])
    parser.add_argument("--late-game", action="append", default=[])
    parser.add_argument("--mdns", action="store_true")
    asyncio.run(main(parser.parse_args()))
