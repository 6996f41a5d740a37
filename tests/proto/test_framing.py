"""FrameDecoder: bytes split anywhere give the same frames; oversize lengths are refused early."""

from __future__ import annotations

import msgpack
import pytest
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError
from lanpeer_proto.framing import HEADER_SIZE, FrameDecoder, encode_frame
from proto_corpus import all_messages

PAYLOADS = [codec.encode(m) for m in all_messages()[:6]] + [b""]
STREAM = b"".join(encode_frame(p) for p in PAYLOADS)


def decode_in_pieces(pieces: list[bytes]) -> list[bytes]:
    decoder = FrameDecoder()
    frames: list[bytes] = []
    for piece in pieces:
        decoder.feed(piece)
        frames.extend(decoder.frames())
    assert decoder.buffered == 0
    return frames


def test_every_single_split_point_gives_the_same_frames() -> None:
    for cut in range(len(STREAM) + 1):
        assert decode_in_pieces([STREAM[:cut], STREAM[cut:]]) == PAYLOADS, cut


def test_every_pair_of_split_points_in_the_first_frames() -> None:
    head = len(encode_frame(PAYLOADS[0])) + 8  # across the first boundary and next header
    for first in range(head):
        for second in range(first, head + 1):
            pieces = [STREAM[:first], STREAM[first:second], STREAM[second:]]
            assert decode_in_pieces(pieces) == PAYLOADS, (first, second)


def test_byte_at_a_time() -> None:
    assert decode_in_pieces([STREAM[i : i + 1] for i in range(len(STREAM))]) == PAYLOADS


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.feed(b"\x00\x00")
    with pytest.raises(RemoteProtocolError) as caught:
        decoder.feed(b"\x04\x01")  # 1025: refused before any body byte arrives
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert decoder.buffered == 0


def test_a_broken_decoder_stays_broken() -> None:
    decoder = FrameDecoder(max_frame_size=8)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"\xff\xff\xff\xff")
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode_frame(b"ok"))
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()


def test_oversize_second_frame_is_refused_after_the_first() -> None:
    decoder = FrameDecoder(max_frame_size=16)
    decoder.feed(encode_frame(b"fine") + b"\x00\x00\x01\x00")
    assert decoder.next_frame() == b"fine"  # the good frame before it is not lost
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()
    assert decoder.buffered == 0


def test_raw_bytes_after_a_header_frame_are_left_for_the_caller() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"header") + b"\x00" * 3)  # 3 bytes: not a whole length yet
    assert decoder.next_frame() == b"header"
    assert decoder.next_frame() is None
    assert decoder.take_rest() == b"\x00" * 3
    assert decoder.buffered == 0


def test_frame_length_is_big_endian() -> None:
    assert encode_frame(b"abc")[:HEADER_SIZE] == b"\x00\x00\x00\x03"


def test_unpacker_limits_apply_inside_a_large_message() -> None:
    # 70 KiB string: under the frame limit, over the per-string limit of the unpacker.
    payload = msgpack.packb({"type": "goodbye", "reason": "x" * (70 << 10)})
    with pytest.raises(RemoteProtocolError, match="malformed"):
        codec.decode(payload)
