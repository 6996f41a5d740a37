"""BulkClient against a scripted bulk server on loopback: a client closed while a fetch or a
connect runs on another socket leaves no socket open (issue 14 follow-up: a teardown fd leak
of a bulk socket to a killed seeder)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.framing import FrameDecoder, encode_frame
from lanpeer_proto.messages import BulkChallenge, BulkHello, ChunkHeader, GetChunk

from lanpeer.net.bulk import BulkClient
from lanpeer.net.errors import ChunkRefused
from lanpeer.net.identity import Identity

pytestmark = pytest.mark.timeout(30)
REQUEST = GetChunk(game_id="quake", manifest_hash=bytes(32), path="q.bin", offset=0, length=4)


class ScriptedServer:
    """One bulk connection at a time, each step gated by the test: the challenge is sent once
    ``challenge`` is set, the chunk once ``answer`` is set; ``eof`` is set when the client
    closes its end (what a pooled socket never does)."""

    def __init__(self) -> None:
        self.challenge, self.answer = asyncio.Event(), asyncio.Event()
        self.connected, self.asked, self.eof = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.connected.set()
            await self.challenge.wait()
            writer.write(encode_frame(codec.encode(BulkChallenge(nonce=bytes(32)))))
            decoder = FrameDecoder()
            frames: list[bytes] = []
            while len(frames) < 2 and (data := await reader.read(65536)):
                decoder.feed(data)
                frames += decoder.frames()
            if len(frames) == 2:
                assert isinstance(codec.decode(frames[0]), BulkHello)
                assert codec.decode(frames[1]) == REQUEST
                self.asked.set()
                await self.answer.wait()
                header = ChunkHeader(offset=0, length=REQUEST.length)
                writer.write(encode_frame(codec.encode(header)) + b"data")
                await writer.drain()
            while await reader.read(65536):
                pass
            self.eof.set()
        finally:
            writer.close()


async def secret() -> bytes:
    return bytes(32)


async def outcome(fetch: Awaitable[bytes]) -> bytes | Exception:
    """The fetch's bytes or its error (a task that raises would fail its task group)."""
    try:
        return await fetch
    except Exception as exc:
        return exc


def client(port: int) -> BulkClient:
    ids = Identity.generate().peer_id, Identity.generate().peer_id
    return BulkClient("127.0.0.1", port, ids[0], ids[1], secret)


@pytest.mark.asyncio
async def test_a_fetch_that_ends_after_close_closes_its_socket() -> None:
    script = ScriptedServer()
    script.challenge.set()
    async with script as port, asyncio.TaskGroup() as tasks:
        bulk = client(port)
        fetch = tasks.create_task(bulk.fetch(REQUEST))
        await script.asked.wait()
        bulk.close()  # the peer left the table while this fetch ran
        script.answer.set()
        assert await fetch == b"data"  # the fetch in flight still completes
        await asyncio.wait_for(script.eof.wait(), 10)  # and its socket is closed, not pooled
        with pytest.raises(ChunkRefused) as refused:
            await bulk.fetch(REQUEST)
        assert refused.value.wire_code is ErrorCode.BAD_TOKEN  # the fetcher retries afresh


@pytest.mark.asyncio
async def test_a_connect_that_ends_after_close_closes_its_socket() -> None:
    script = ScriptedServer()
    async with script as port, asyncio.TaskGroup() as tasks:
        bulk = client(port)
        fetch = tasks.create_task(outcome(bulk.fetch(REQUEST)))
        await script.connected.wait()
        bulk.close()  # while the connection waits for its challenge
        script.challenge.set()
        refused = await fetch
        assert isinstance(refused, ChunkRefused), refused
        assert refused.wire_code is ErrorCode.BAD_TOKEN
        await asyncio.wait_for(script.eof.wait(), 10)
        assert not script.asked.is_set()  # no request went out on a closed client
