"""Dialling: who the node connects to on its own, from ``--peer`` and from mDNS adverts.

Owns the static peers (one ``StaticPeer`` per HOST:PORT, redialled with backoff while not
connected, until removed), the mDNS ``Discovery`` and its status, and the one-dial-per-advert
rule with the larger peer_id yielding. Never runs a session: each dial goes through the node's
``dial`` callback, which handshakes and runs the link until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lanpeer.net.discovery import Advert, Discovery
from lanpeer.net.errors import DialledSelf, HandshakeRefused
from lanpeer.net.identity import short_id
from lanpeer.net.peers import PeerTable
from lanpeer.net.static_peers import StaticPeer

if TYPE_CHECKING:
    from lanpeer.net.node import NodeTimings

log = logging.getLogger(__name__)

#: ``dial(host, port, expected_id, static)``: handshake, then run the session until it ends.
Dial = Callable[[str, int, "str | None", "StaticPeer | None"], Awaitable[None]]


@dataclass(frozen=True)
class MdnsStatus:
    running: bool  # False: --no-mdns, or no LAN IPv4 address to advertise on
    own_advert_seen: bool
    advertised_for: float | None  # seconds since our advert was registered; None while probing


class Dialler:
    def __init__(
        self,
        peer_id: str,
        table: PeerTable,
        timings: NodeTimings,
        static_peers: Iterable[tuple[str, int]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        dial: Dial,
    ) -> None:
        self._peer_id = peer_id
        self._table = table
        self._timings = timings
        self._static: dict[tuple[str, int], StaticPeer] = {
            (host, port): StaticPeer(host, port) for host, port in static_peers
        }
        self._spawn = spawn
        self._dial = dial
        self._dialling: set[str] = set()
        self.discovery: Discovery | None = None

    def start_static(self) -> None:
        """Start dialling every static peer given at construction."""
        for static in self._static.values():
            self._spawn(self._keep_dialling(static))

    # static peers --------------------------------------------------------------
    def add_static_peer(self, host: str, port: int) -> StaticPeer:
        """Dial HOST:PORT now and whenever it is not connected (once per address)."""
        static = self._static.get((host, port))
        if static is None or static.removed.is_set():
            static = self._static[(host, port)] = StaticPeer(host, port)
            self._spawn(self._keep_dialling(static))
        return static

    def remove_static_peer(self, host: str, port: int) -> StaticPeer | None:
        """Stop redialling HOST:PORT; None when it was not a static peer."""
        static = self._static.pop((host, port), None)
        if static is not None:
            static.removed.set()
        return static

    def static_peers(self) -> list[StaticPeer]:
        return list(self._static.values())

    async def _keep_dialling(self, static: StaticPeer) -> None:
        """Dial a static peer; redial with backoff whenever it is not connected, until removed."""
        host, port = static.address
        backoff = self._timings.redial_min
        while not static.removed.is_set():
            if not self.connected_at(host, port):
                try:
                    await self._dial(host, port, None, static)
                    backoff = self._timings.redial_min
                except DialledSelf as exc:
                    static.failed(exc)
                    log.warning(
                        "static peer %s:%d is this peer itself; not dialling it", host, port
                    )
                    return
                except (HandshakeRefused, ConnectionError, OSError, TimeoutError) as exc:
                    static.failed(exc)
                    log.info("static peer %s:%d: %s (retry in %.1f s)", host, port, static.error,
                             backoff)  # fmt: skip
            with contextlib.suppress(TimeoutError):  # removal ends the wait at once
                async with asyncio.timeout(backoff):
                    await static.removed.wait()
            backoff = min(backoff * 2, self._timings.redial_max)

    def connected_at(self, host: str, port: int) -> bool:
        return any(r.connected and r.address == (host, port) for r in self._table.records())

    # mDNS ------------------------------------------------------------------------
    def start_discovery(
        self, name: str, advertise: list[str] | None, bind: str, port: int, library_rev: int
    ) -> None:
        addresses = advertise or ([] if bind == "0.0.0.0" else [bind])
        addresses = addresses or _lan_addresses()
        if not addresses:
            log.warning("mDNS is off: no LAN IPv4 address to advertise on; use --peer host:port")
            return
        self.discovery = Discovery(peer_id=self._peer_id, name=name, addresses=addresses,
                                   port=port, on_advert=self.advert_seen)  # fmt: skip
        self._spawn(self.discovery.run(library_rev))

    def mdns_status(self) -> MdnsStatus:
        """Whether mDNS runs, and whether our own advert has come back through a browse."""
        found = self.discovery
        if found is None:
            return MdnsStatus(running=False, own_advert_seen=False, advertised_for=None)
        since = found.registered_at
        return MdnsStatus(
            running=True,
            own_advert_seen=found.own_advert_seen,
            advertised_for=None if since is None else time.monotonic() - since,
        )

    def advert_seen(self, advert: Advert) -> None:
        record = self._table.get(advert.peer_id)
        if (record is not None and record.connected) or advert.peer_id in self._dialling:
            return
        self._spawn(self._dial_advert(advert))

    async def _dial_advert(self, advert: Advert) -> None:
        """Dial an advert once; a spoofed id fails the handshake and changes nothing."""
        self._dialling.add(advert.peer_id)
        try:
            if self._peer_id > advert.peer_id:
                await asyncio.sleep(self._timings.dial_yield)
                record = self._table.get(advert.peer_id)
                if record is not None and record.connected:
                    return  # it dialled us
            await self._dial(advert.host, advert.port, advert.peer_id, None)
        except (HandshakeRefused, ConnectionError, OSError, TimeoutError) as exc:
            log.warning(
                "advert %s at %s:%d failed: %s",
                short_id(advert.peer_id),
                advert.host,
                advert.port,
                exc,
            )
        finally:
            self._dialling.discard(advert.peer_id)


def _lan_addresses() -> list[str]:
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                found.append(ip.ip)
    return found
