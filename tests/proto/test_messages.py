"""Every message round-trips through codec and framing; hostile fields are refused."""

from __future__ import annotations

import msgpack
import pytest
from lanpeer_proto import codec
from lanpeer_proto.codec import UnknownMessageType
from lanpeer_proto.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from lanpeer_proto.framing import FrameDecoder, encode_frame
from lanpeer_proto.messages import MESSAGE_TYPES, Error, GetManifest, HashStatus, Message
from proto_corpus import DIGEST, all_messages, game

MESSAGES = all_messages()


def test_corpus_covers_every_message_type() -> None:
    assert {m.type for m in MESSAGES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_message_round_trips(message: Message) -> None:
    decoded = codec.decode(codec.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_message_round_trips_through_a_frame(message: Message) -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(codec.encode(message)))
    assert [codec.decode(f) for f in decoder.frames()] == [message]


def raw(**fields: object) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def test_unknown_type_is_its_own_error() -> None:
    with pytest.raises(UnknownMessageType) as caught:
        codec.decode(raw(type="teleport", to="mars"))
    assert caught.value.code is ErrorCode.UNKNOWN_TYPE
    assert caught.value.type_name == "teleport"
    assert isinstance(caught.value, RemoteProtocolError)


def test_unknown_fields_are_ignored_for_newer_minor_versions() -> None:
    assert codec.decode(raw(type="ping", seq=3, sent_at=1.5)) == codec.decode(
        raw(type="ping", seq=3)
    )


def test_unknown_error_code_from_a_newer_minor_version_decodes() -> None:
    message = codec.decode(raw(type="error", code="quota_exceeded", message="later"))
    assert message == Error(code=ErrorCode.INTERNAL, message="later")


def test_get_manifest_names_a_version_by_hash_and_an_old_peer_sends_none() -> None:
    old = codec.decode(raw(type="get_manifest", game_id="quake"))
    assert old == GetManifest(game_id="quake")  # manifest_hash None: today's answer
    new = codec.decode(raw(type="get_manifest", game_id="quake", manifest_hash=DIGEST))
    assert new == GetManifest(game_id="quake", manifest_hash=DIGEST)
    # An older peer (no field) reads the new request as today's: the field is ignored.
    assert "manifest_hash" in msgpack.unpackb(codec.encode(new))


def test_hash_status_from_a_peer_a_minor_version_newer_decodes() -> None:
    fields = {"game_id": "quake", "hashed": False, "hashed_bytes": 5, "total_bytes": 9}
    message = codec.decode(raw(type="hash_status", host_hashed_bytes=7, eta=3.0, **fields))
    assert message == HashStatus(host_hashed_bytes=7, **fields)  # type: ignore[arg-type]


def test_hash_status_claiming_more_hashed_than_the_game_holds_is_refused() -> None:
    payload = raw(
        type="hash_status", game_id="quake", hashed=False, hashed_bytes=10, total_bytes=9,
        host_hashed_bytes=10,
    )  # fmt: skip
    with pytest.raises(RemoteProtocolError) as caught:
        codec.decode(payload)
    assert caught.value.code is ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (b"", "truncated"),
        (b"\xc1", "malformed"),  # never-used msgpack byte
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"seq": 1}), "no string 'type'"),
        (raw(type="ping", seq=-1), "invalid ping"),
        (raw(type="ping", seq=1) + b"\x00", "trailing"),
        (raw(type="ping", seq="1"), "invalid ping"),  # strict: no str -> int coercion
        (raw(type="get_manifest", game_id="Quake!"), "invalid get_manifest"),
        (raw(type="get_manifest", game_id="quake", manifest_hash=b"short"), "invalid get_manifest"),
        (raw(type="bulk_token", secret=b"t" * 32, port=1, ttl_seconds=float("nan")), "invalid"),
        (b"\xd7\xff" + b"\x00" * 8, "malformed"),  # ext type (msgpack timestamp)
        (b"\x91" * 100 + b"\xc0", "nested too deeply"),
        (msgpack.packb({"type": "ping", "x": [[[[[[[[[[1]]]]]]]]]]}), "nested too deeply"),
        (b"\xdd\xff\xff\xff\xff", "malformed"),  # array header claiming 4 billion items
        (b"\xdb\x00\xff\xff\xff", "truncated"),  # str header claiming 16 MiB
        (b"\xa4\xff\xfe\xfd\xfc", "malformed"),  # invalid UTF-8
    ],
)
def test_malformed_payload_is_a_remote_protocol_error(payload: bytes, what: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        codec.decode(payload)
    assert what in caught.value.message
    assert type(caught.value) is RemoteProtocolError


def test_oversize_message_is_refused_before_unpacking() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        codec.decode(raw(type="goodbye", reason="x" * 100), max_size=50)
    assert caught.value.code is ErrorCode.BAD_FRAME


def test_manifest_with_duplicate_or_nested_paths_is_refused() -> None:
    file = {"size": 1, "chunk_size": 4, "chunk_hashes": [DIGEST]}
    for paths in (["a.eti", "a.eti"], ["data", "data/x.eti"]):
        payload = raw(
            type="manifest",
            game_id="quake",
            version="1",
            manifest_hash=DIGEST,
            files=[{**file, "path": p} for p in paths],
        )
        with pytest.raises(RemoteProtocolError):
            codec.decode(payload)


def test_snapshot_with_duplicate_game_ids_is_refused() -> None:
    g = game("quake").model_dump()
    payload = raw(type="library_snapshot", library_rev=1, library_digest=DIGEST, games=[g, g])
    with pytest.raises(RemoteProtocolError, match="duplicate game id"):
        codec.decode(payload)


def test_encoding_an_oversize_frame_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(b"x" * 11, max_frame_size=10)
