"""Hypothesis feeds random and mutated bytes through FrameDecoder + codec.

Asserted: only ProtocolError subclasses come out (never another exception type); what
is accepted re-encodes to an equal message; each input is handled quickly. CI keeps
the runs short; scripts/fuzz_proto.py is the long run.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lanpeer_proto import codec
from lanpeer_proto.errors import ProtocolError
from lanpeer_proto.framing import FrameDecoder, encode_frame
from lanpeer_proto.messages import Message
from proto_corpus import all_messages

ENCODED = [codec.encode(m) for m in all_messages()]
MAX_FRAME = 64 << 10
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = 0.5  # CPU seconds one input may take; a decoder with limits needs a few ms


def decode_one(payload: bytes) -> Message | None:
    """codec.decode, asserting the only outcomes allowed: a message or a ProtocolError."""
    # Thread CPU time, not wall time: a busy machine stretches wall time, never this thread's work.
    started = time.thread_time()
    try:
        message = codec.decode(payload, max_size=MAX_FRAME)
    except ProtocolError:
        return None
    finally:
        assert time.thread_time() - started < QUICK
    assert codec.decode(codec.encode(message)) == message
    return message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding with a few edits: flips, inserts, deletes, splices, truncation."""
    data = bytearray(draw(st.sampled_from(ENCODED)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "splice", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xCC, 0xDC, 0xDD, 0xFF]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "splice":
            other = draw(st.sampled_from(ENCODED))
            data[at:] = other[draw(st.integers(0, len(other))) :]
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_protocol_error(payload: bytes) -> None:
    decode_one(payload)


@FUZZ
@given(mutated())
def test_mutated_messages_decode_or_raise_protocol_error(payload: bytes) -> None:
    decode_one(payload)


@settings(FUZZ, max_examples=300)
@given(st.lists(st.one_of(mutated(), st.binary(max_size=64)), max_size=4), st.data())
def test_random_streams_through_decoder_and_codec(
    payloads: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    if data.draw(st.booleans(), label="corrupt a length"):
        at = data.draw(st.integers(0, max(len(stream) - 1, 0)))
        stream = stream[:at] + data.draw(st.binary(min_size=1, max_size=8)) + stream[at:]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder(max_frame_size=MAX_FRAME)
    try:
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            decoder.feed(stream[start:end])
            for frame in decoder.frames():
                assert len(frame) <= MAX_FRAME
                decode_one(frame)
    except ProtocolError:
        pass
    assert decoder.buffered <= len(stream)
