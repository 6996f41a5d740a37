"""``add-peer`` and ``remove-peer``: static peers, with the outcome said, not guessed.

Owns resolving the host first (a name that does not resolve is refused, not redialled forever)
and waiting a bounded time for the first dial to connect or fail. Never dials itself: the
node does, and keeps redialling a static peer until ``remove-peer``.
"""

from __future__ import annotations

import asyncio
import socket

from lanpeer_proto.control import AcceptedResult, AddPeerRequest, RemovePeerRequest

from lanpeer.control.views import format_address
from lanpeer.errors import LanpeerError, UnknownPeerError
from lanpeer.net.node import PeerNode

# One QUIC handshake on a LAN takes milliseconds; a dead address shows as a handshake timeout
# (10 s in the node). Waiting a little longer than that gives the first attempt its verdict.
FIRST_DIAL_WAIT = 12.0
RESOLVE_TIMEOUT = 5.0  # a resolver that takes longer is broken for LAN use


class UnresolvableHostError(UnknownPeerError):
    """A static peer whose host name does not resolve: refused, never redialled."""


async def add_peer(node: PeerNode, request: AddPeerRequest) -> AcceptedResult:
    where = format_address((request.host, request.port))
    await _resolve(request.host, request.port)
    static = node.add_static_peer(request.host, request.port)
    try:
        async with asyncio.timeout(FIRST_DIAL_WAIT):
            error = await node.wait_static_outcome(static)
    except TimeoutError:
        error = static.error or f"no answer within {FIRST_DIAL_WAIT:.0f} s"
    if error is not None:
        raise LanpeerError(
            f"no lanpeerd answered at {where}: {error}. It stays a static peer and is redialled "
            f"(`peer-cli doctor` shows why it fails); `peer-cli remove-peer {where}` drops it"
        )
    return AcceptedResult(message=f"connected to {where}")


async def _resolve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise UnresolvableHostError(
            f"cannot resolve {host!r} ({exc.strerror}): check the name, or use an IP address"
        ) from exc
    except TimeoutError as exc:
        raise UnresolvableHostError(
            f"resolving {host!r} took over {RESOLVE_TIMEOUT:.0f} s: use an IP address"
        ) from exc


def remove_peer(node: PeerNode, request: RemovePeerRequest) -> AcceptedResult:
    where = format_address((request.host, request.port))
    if node.remove_static_peer(request.host, request.port) is None:
        known = ", ".join(format_address(s.address) for s in node.static_peers()) or "none"
        raise UnknownPeerError(f"{where} is not a static peer (static peers: {known})")
    return AcceptedResult(message=f"{where} is no longer dialled")
