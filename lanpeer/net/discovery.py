"""The only zeroconf glue: advertise ``_lanpeer._udp.local.`` and browse for other peers.

Owns the service record (TXT id, pv, rev, name; a service and host name unique per peer built
from the name and a short peer_id, never the machine's hostname) and turning browse results into
``Advert`` hints. Never decides who a peer is: adverts are hints, the handshake proves identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from lanpeer_proto.version import PROTOCOL_VERSION
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from lanpeer.net.identity import short_id

log = logging.getLogger(__name__)

SERVICE_TYPE = "_lanpeer._udp.local."
#: mDNS keeps a SIGKILLed peer for up to 1125 s: liveness comes from sessions, not from here.
HOST_TTL = 30
RESOLVE_MS = 1500
#: Browse results waiting to be resolved; a flood of adverts is dropped, not queued forever.
MAX_PENDING = 256


@dataclass(frozen=True)
class Advert:
    """A peer as announced over mDNS; ``peer_id`` is a claim until the handshake proves it."""

    peer_id: str
    name: str
    host: str
    port: int
    library_rev: int


def instance_name(name: str, peer_id: str) -> str:
    """A DNS-safe label unique per peer: the display name plus the short peer_id."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:40] or "peer"
    return f"{label}-{short_id(peer_id).lower()}"


class Discovery:
    def __init__(
        self,
        *,
        peer_id: str,
        name: str,
        addresses: list[str],
        port: int,
        on_advert: Callable[[Advert], None],
    ) -> None:
        self._peer_id = peer_id
        self._name = name
        self._addresses = addresses
        self._port = port
        self._on_advert = on_advert
        self._pending: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._rev = 0
        self._updating = asyncio.Lock()
        #: time.monotonic() when our advert was registered; None while probing.
        self.registered_at: float | None = None
        #: Our own advert came back through a browse: multicast leaves and enters this host.
        self.own_advert_seen = False

    def _service_info(self, rev: int, service_name: str | None = None) -> AsyncServiceInfo:
        label = instance_name(self._name, self._peer_id)
        return AsyncServiceInfo(
            SERVICE_TYPE,
            service_name or f"{label}.{SERVICE_TYPE}",
            port=self._port,
            properties={
                "id": self._peer_id,
                "pv": PROTOCOL_VERSION,
                "rev": str(rev),
                "name": self._name[:100],
            },
            server=f"{label}.local.",
            addresses=[socket.inet_aton(a) for a in self._addresses],
            host_ttl=HOST_TTL,
        )

    async def run(self, rev: int) -> None:
        """Advertise and browse until cancelled; unregisters (mDNS goodbye) on the way out."""
        self._rev = rev
        interfaces: list[str | int] = list(self._addresses)
        self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        try:
            info = self._service_info(rev)
            # Probing may find the name taken (a stale record of our own last run): rename.
            await (await self._zc.async_register_service(info, allow_name_change=True))
            self._info = info
            self.registered_at = time.monotonic()
            if self._rev != rev:  # the library changed while we were probing
                await self._publish_rev()
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, [SERVICE_TYPE], handlers=[self._state_changed]
            )
            while True:
                await self._resolve(await self._pending.get())
        finally:
            await self._close()

    async def _close(self) -> None:
        if self._zc is None:
            return
        if self._browser is not None:
            await self._browser.async_cancel()
        with contextlib.suppress(Exception):  # best effort goodbye on shutdown
            await self._zc.async_unregister_all_services()
        await self._zc.async_close()
        self._zc = None

    async def update_rev(self, rev: int) -> None:
        """Publish a new library rev in the TXT record (kept for later while still probing)."""
        self._rev = rev
        if self._info is not None:
            await self._publish_rev()

    async def _publish_rev(self) -> None:
        async with self._updating:  # one update at a time; the last rev wins
            if self._zc is None or self._info is None:
                return
            info = self._service_info(self._rev, self._info.name)
            try:
                await (await self._zc.async_update_service(info))
            except Exception as exc:  # zeroconf errors must not end discovery
                log.warning("mDNS: could not update our advert: %s", exc)
                return
            self._info = info

    def _state_changed(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            return  # a hint only: sessions decide liveness
        with contextlib.suppress(asyncio.QueueFull):
            self._pending.put_nowait(name)

    async def _resolve(self, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_MS):
            return
        advert = _advert_of(info)
        if advert is None:
            return
        if advert.peer_id != self._peer_id:
            self._on_advert(advert)
        elif not self.own_advert_seen:
            # Our announcement went out and came back in (multicast loop): a firewall dropping
            # UDP 5353 either way stops this, which is what `peer-cli doctor` reports.
            self.own_advert_seen = True
            log.info("mDNS: our own advert %s came back through a browse", name)


def _advert_of(info: AsyncServiceInfo) -> Advert | None:
    props = {
        k.decode(errors="replace"): (v or b"").decode(errors="replace")
        for k, v in info.properties.items()
    }
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not addresses or info.port is None or not props.get("id"):
        return None
    try:
        rev = int(props.get("rev", "0"))
    except ValueError:
        rev = 0
    return Advert(props["id"][:64], props.get("name", "")[:256], addresses[0], info.port, rev)
