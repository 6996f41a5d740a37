"""The live channel: one WebSocket per browser tab, fed by the daemon's event hub (SPEC §9b).

Owns the cap on open tabs, each tab's bounded queue (a hub subscription), the send deadline that
drops a tab that stopped reading, the fresh snapshot a tab gets when it opens and after each
change of shape (an operation's state, a peer, the library), and the throughput history.
Never buffers without limit, never lets one slow tab delay the hub or another tab.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from lanpeer_proto.control import Event, ProgressEvent

from lanpeer.control.events import EventHub, Subscription

log = logging.getLogger(__name__)

Snapshot = Callable[[], Awaitable[dict[str, Any]]]

# A tab is a person looking; 64 covers a party's organisers with many tabs and bounds the fds
# and queues a looping script on this host can pin.
MAX_TABS = 64
# 256 events is a minute of progress of one download at 4 updates/s: a tab further behind has
# stopped reading. Progress lines are dropped oldest-first; losing any other event drops the tab
# (it reconnects and gets a snapshot), so no tab shows a state that silently went stale.
TAB_QUEUE = 256
# One message is at most a snapshot of a big library (~1 MB): a tab that cannot take it in 5 s
# is frozen or gone; waiting longer only pins its buffers.
SEND_TIMEOUT = 5.0
# Seconds between throughput samples, and how many are kept: 5 minutes of history for the graph.
SAMPLE_EVERY = 1.0
SAMPLES_KEPT = 300
# WebSocket close code (private range) telling the page to reconnect at once.
CLOSE_FELL_BEHIND = 4000


class Throughput:
    """The host's download and upload rate, one sample a second, the last minutes of it."""

    def __init__(self, kept: int = SAMPLES_KEPT) -> None:
        # (time, down, up); up is None while the daemon does not measure what it sends
        self.samples: deque[tuple[float, float, float | None]] = deque(maxlen=kept)
        self._tick = asyncio.Event()

    def add(self, down: float, up: float | None) -> None:
        self.samples.append((round(time.time(), 1), round(down), None if up is None else round(up)))
        self._tick.set()
        self._tick = asyncio.Event()

    async def wait_sample(self) -> tuple[float, float, float | None]:
        await self._tick.wait()
        return self.samples[-1]


class EncodedEvents:
    """Each event is turned into text once, however many tabs send it."""

    def __init__(self, kept: int = 64) -> None:
        self._kept = kept
        self._texts: OrderedDict[int, tuple[Event, str]] = OrderedDict()

    def text(self, event: Event) -> str:
        hit = self._texts.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        text = '{"type":"event","event":' + event.model_dump_json() + "}"
        self._texts[id(event)] = (event, text)  # holding the event keeps its id unique
        if len(self._texts) > self._kept:
            self._texts.popitem(last=False)
        return text


class LiveChannel:
    """``GET /api/live``: the WebSocket handler and the set of open tabs."""

    def __init__(
        self,
        events: EventHub,
        snapshot: Snapshot,
        throughput: Throughput,
        *,
        max_tabs: int = MAX_TABS,
        tab_queue: int = TAB_QUEUE,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self._events = events
        self._snapshot = snapshot
        self._throughput = throughput
        self._max_tabs = max_tabs
        self._tab_queue = tab_queue
        self._send_timeout = send_timeout
        self._tabs: set[web.WebSocketResponse] = set()
        self._encoded = EncodedEvents()
        self._shared: tuple[object, str] | None = None  # (cause, snapshot text) for all tabs

    @property
    def tab_count(self) -> int:
        return len(self._tabs)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if len(self._tabs) >= self._max_tabs:
            raise web.HTTPServiceUnavailable(text=f"{self._max_tabs} tabs are open already\n")
        # The page never sends anything but pings: 4 KiB bounds what it may send.
        tab = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
        await tab.prepare(request)
        self._tabs.add(tab)
        try:
            with self._events.subscribe(maxsize=self._tab_queue) as subscription:
                await self._serve_tab(tab, subscription)
        except* (ConnectionError, TimeoutError):  # alone or from the tab's task group
            log.info("web: a tab stopped reading or went away; dropped it")
        finally:
            self._tabs.discard(tab)
            await tab.close()
        return tab

    async def close_all(self) -> None:
        """On shutdown: every tab is told, so the runner does not wait for them."""
        for tab in list(self._tabs):
            await tab.close(code=1001, message=b"lanpeerd is stopping")

    async def _serve_tab(self, tab: web.WebSocketResponse, subscription: Subscription) -> None:
        await self._send(tab, await self._snapshot_text(None))
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._pump_events(tab, subscription)),
                group.create_task(self._pump_samples(tab)),
                group.create_task(_wait_closed(tab)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    async def _pump_events(self, tab: web.WebSocketResponse, subscription: Subscription) -> None:
        states: dict[str, str] = {}  # what this tab last saw per game: a new one re-snapshots
        while True:
            event = await subscription.wait_event()
            if subscription.lagged:
                await tab.close(code=CLOSE_FELL_BEHIND, message=b"fell behind; reconnect")
                return
            await self._send(tab, self._encoded.text(event))
            if _changes_shape(event, states):
                await self._send(tab, await self._snapshot_text(event))

    async def _pump_samples(self, tab: web.WebSocketResponse) -> None:
        while True:
            sample = await self._throughput.wait_sample()
            await self._send(tab, json.dumps({"type": "sample", "sample": sample}))

    async def _snapshot_text(self, cause: object) -> str:
        """The state after ``cause``; tabs handling the same event share one snapshot."""
        if cause is not None and self._shared is not None and self._shared[0] is cause:
            return self._shared[1]
        doc = await self._snapshot()
        text = json.dumps({"type": "snapshot", **doc}, separators=(",", ":"))
        self._shared = (cause, text)
        return text

    async def _send(self, tab: web.WebSocketResponse, text: str) -> None:
        async with asyncio.timeout(self._send_timeout):
            await tab.send_str(text)


def _changes_shape(event: Event, states: dict[str, str]) -> bool:
    if not isinstance(event, ProgressEvent):
        return True  # finished, peer up/down, library changed: lists change
    previous = states.get(event.game_id)
    states[event.game_id] = event.state
    return previous != event.state


async def _wait_closed(tab: web.WebSocketResponse) -> None:
    """Reads (and ignores) what the page sends until it closes: that ends the tab."""
    with contextlib.suppress(ConnectionError):
        async for message in tab:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return
