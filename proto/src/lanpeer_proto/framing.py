"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

``FrameDecoder`` accepts bytes split anywhere and yields whole frames. A length
over ``max_frame_size`` is refused as soon as its 4 bytes arrive, before any
buffer for the body is allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from lanpeer_proto.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

_LENGTH = struct.Struct("!I")
HEADER_SIZE = _LENGTH.size

#: Control-plane frames (Hello, requests, summaries) stay small.
DEFAULT_MAX_FRAME_SIZE = 1 << 20
#: A full snapshot of 10,000 games or a manifest of a 150 GB game fits in 16 MiB
#: (a manifest costs ~33 bytes per chunk: 38,000 chunks at 4 MiB ~ 1.3 MB).
MAX_LARGE_FRAME_SIZE = 16 << 20


def encode_frame(payload: bytes, max_frame_size: int = MAX_LARGE_FRAME_SIZE) -> bytes:
    if len(payload) > max_frame_size:
        raise LocalProtocolError(
            f"frame of {len(payload)} bytes exceeds the {max_frame_size}-byte limit",
            ErrorCode.BAD_FRAME,
        )
    return _LENGTH.pack(len(payload)) + payload


class FrameDecoder:
    """Reassembles frames from a byte stream.

    Feed bytes with ``feed()``, iterate whole frames with ``frames()``. After an
    oversize length the decoder is broken for good: the stream is desynchronised.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._broken: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        self._buffer += data
        self._check_length()

    def frames(self) -> Iterator[bytes]:
        while True:
            frame = self.next_frame()
            if frame is None:
                return
            yield frame

    def next_frame(self) -> bytes | None:
        """One whole frame, or None when more bytes are needed."""
        if self._broken is not None:
            raise self._broken
        length = self._check_length()
        if length is None or len(self._buffer) < HEADER_SIZE + length:
            return None
        end = HEADER_SIZE + length
        frame = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]  # cheap: a bytearray drops its front without copying
        return frame

    def take_rest(self) -> bytes:
        """Bytes after the last whole frame (raw chunk bytes that follow a header)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def _check_length(self) -> int | None:
        """Length of the next frame once its header is here; refuses an oversize one."""
        if len(self._buffer) < HEADER_SIZE:
            return None
        length: int = _LENGTH.unpack_from(self._buffer)[0]
        if length > self.max_frame_size:
            self._buffer.clear()
            self._broken = RemoteProtocolError(
                f"frame of {length} bytes exceeds the {self.max_frame_size}-byte limit",
                ErrorCode.BAD_FRAME,
            )
            raise self._broken
        return length
