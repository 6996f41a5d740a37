"""The live channel's limits with real sockets: a tab that stops reading is dropped, a tab that
fell behind is told to reconnect, the tab cap holds, and other tabs never wait for a slow one.

The channel runs on a real aiohttp server on loopback inside the test's loop; the hub is the
daemon's ``EventHub``. The snapshot is a plain large document: what makes a tab slow is the
tab's own socket, never a fake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from lanpeer_proto.control import LibraryChangedEvent, ProgressEvent

from lanpeer.control.events import EventHub
from lanpeer.web.live import CLOSE_FELL_BEHIND, LiveChannel, Throughput

DEADLINE = 20.0
BIG = "x" * (256 << 10)  # a snapshot of a large library: a stalled socket fills in a few sends


class Served:
    def __init__(self, hub: EventHub, channel: LiveChannel, port: int) -> None:
        self.hub = hub
        self.channel = channel
        self.port = port


async def _serve(channel: LiveChannel) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/api/live", channel.handle)
    app.on_shutdown.append(lambda _app: channel.close_all())
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    return runner, int(server.sockets[0].getsockname()[1])


@pytest_asyncio.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    options: dict[str, Any] = getattr(request, "param", {})
    hub = EventHub()

    async def snapshot() -> dict[str, Any]:
        return {"library": BIG}

    channel = LiveChannel(hub, snapshot, Throughput(), **options)
    runner, port = await _serve(channel)
    try:
        yield Served(hub, channel, port)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _tab(port: int) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A tab that reads what it is sent (as a browser does)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/api/live") as tab,
    ):
        yield tab


def _stalled_tab(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


async def _wait_tabs(channel: LiveChannel, count: int, hub: EventHub | None = None) -> None:
    """Until ``count`` tabs are open; with ``hub``, keep publishing while waiting (bounded)."""
    async with asyncio.timeout(DEADLINE):
        while channel.tab_count != count:
            if hub is not None:
                hub.publish(LibraryChangedEvent(library_rev=1))  # each one sends a snapshot
            await asyncio.sleep(0.02)  # let the tabs' pumps run; the timeout bounds the loop


@pytest.mark.asyncio
@pytest.mark.parametrize("served", [{"send_timeout": 0.5}], indirect=True)
async def test_a_tab_that_stops_reading_is_dropped_and_others_keep_receiving(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="lanpeer.web.live")
    stalled = _stalled_tab(served.port)
    try:
        async with _tab(served.port) as reader:
            first = await reader.receive_json(timeout=DEADLINE)
            assert first["type"] == "snapshot"
            await _wait_tabs(served.channel, 2)

            async def keep_reading() -> int:
                count = 0
                async for message in reader:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    count += 1
                return count

            async with asyncio.TaskGroup() as group:
                got = group.create_task(keep_reading())
                await _wait_tabs(served.channel, 1, served.hub)  # the stalled one is gone
                served.hub.publish(LibraryChangedEvent(library_rev=2))
                await reader.close()
            assert got.result() > 2
    finally:
        stalled.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("served", [{"tab_queue": 4}], indirect=True)
async def test_a_tab_that_lost_an_event_is_told_to_reconnect(served: Served) -> None:
    async with _tab(served.port) as tab:
        assert (await tab.receive_json(timeout=DEADLINE))["type"] == "snapshot"
        # Published in one go, faster than any pump: the queue of 4 overflows.
        for rev in range(20):
            served.hub.publish(LibraryChangedEvent(library_rev=rev))
        async with asyncio.timeout(DEADLINE):
            while (message := await tab.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert tab.close_code == CLOSE_FELL_BEHIND


@pytest.mark.asyncio
@pytest.mark.parametrize("served", [{"tab_queue": 4}], indirect=True)
async def test_lost_progress_lines_alone_do_not_drop_a_tab(served: Served) -> None:
    async with _tab(served.port) as tab:
        assert (await tab.receive_json(timeout=DEADLINE))["type"] == "snapshot"
        for done in range(50):
            served.hub.publish(
                    ProgressEvent(
                        game_id="g", kind="download", state="running", bytes_done=done,
                        bytes_total=100,
                    )
                )  # fmt: skip
        served.hub.publish(LibraryChangedEvent(library_rev=9))
        async with asyncio.timeout(DEADLINE):
            while True:
                doc = await tab.receive_json()
                if doc["type"] == "event" and doc["event"]["event"] == "library_changed":
                    break
        assert served.channel.tab_count == 1
        assert not tab.closed


@pytest.mark.asyncio
@pytest.mark.parametrize("served", [{"max_tabs": 2}], indirect=True)
async def test_the_tab_cap_refuses_one_more(served: Served) -> None:
    async with _tab(served.port), _tab(served.port):
        await _wait_tabs(served.channel, 2)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with _tab(served.port):
                pass
        assert refused.value.status == 503
