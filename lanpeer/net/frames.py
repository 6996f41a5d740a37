"""The one frame reader of the peer network: QUIC streams and both bulk directions use it.

Owns reading one length-prefixed frame (lanpeer_proto.framing) from a byte source that can
hand over exactly ``n`` bytes, refusing an oversize length before the body is read. The
reader is a tiny sans-IO generator; ``read_frame`` drives it from async sources, and
``read_frame_blocking`` from a blocking socket in a worker thread. Never decodes messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator

from lanpeer_proto.framing import HEADER_SIZE, FrameDecoder

#: The reader yields how many bytes it needs next and is sent exactly that many.
FrameReads = Generator[int, bytes, bytes]


def frame_reads(max_size: int) -> FrameReads:
    """Header, then body; RemoteProtocolError (BAD_FRAME) on a length over ``max_size``."""
    decoder = FrameDecoder(max_size)
    header = yield HEADER_SIZE
    decoder.feed(header)  # refuses an oversize length before any body byte is read
    decoder.feed((yield int.from_bytes(header, "big")))
    frame = decoder.next_frame()
    assert frame is not None
    return frame


async def read_frame(read_exactly: Callable[[int], Awaitable[bytes]], max_size: int) -> bytes:
    reads = frame_reads(max_size)
    wanted = next(reads)
    try:
        while True:
            wanted = reads.send(await read_exactly(wanted))
    except StopIteration as done:
        frame: bytes = done.value
        return frame


def read_frame_blocking(read_exactly: Callable[[int], bytes], max_size: int) -> bytes:
    reads = frame_reads(max_size)
    wanted = next(reads)
    try:
        while True:
            wanted = reads.send(read_exactly(wanted))
    except StopIteration as done:
        frame: bytes = done.value
        return frame
