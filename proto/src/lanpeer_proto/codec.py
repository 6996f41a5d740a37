"""The only bytes <-> message code: msgpack on the wire, pydantic models in memory.

Decoding is bounded (buffer, str/bin/array/map lengths, nesting) and strict
(map keys must be str). Malformed input raises ``RemoteProtocolError`` with a
wire code, never any other exception type.
"""

from __future__ import annotations

from typing import Any

import msgpack
from pydantic import TypeAdapter, ValidationError

from lanpeer_proto.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from lanpeer_proto.framing import MAX_LARGE_FRAME_SIZE
from lanpeer_proto.messages import MAX_CHUNKS_PER_FILE, MESSAGE_TYPES, Message

#: Deepest nesting any message needs is 4 (manifest -> files -> file -> hashes).
MAX_NESTING = 8
#: The longest string field is MAX_TEXT (4096 chars, at most 16 KiB of UTF-8); the
#: longest bytes field is a 64-byte signature. 64 KiB leaves room for fields a newer
#: minor version may add (ignored by us) while bounding every single allocation.
MAX_STR_BYTES = 64 << 10
MAX_BIN_BYTES = 64 << 10
#: The longest list is ManifestFile.chunk_hashes; an array also needs >= 1 byte per item,
#: so its length is capped by the message length too (no big preallocation from a header).
MAX_ARRAY_LEN = MAX_CHUNKS_PER_FILE
#: Objects have ~12 keys; 256 is plenty for future optional fields.
MAX_MAP_LEN = 256

_ADAPTERS: dict[str, TypeAdapter[Message]] = {
    name: TypeAdapter[Message](cls)  # type: ignore[arg-type]  # each class is a Message member
    for name, cls in MESSAGE_TYPES.items()
}


class UnknownMessageType(RemoteProtocolError):
    """A well-formed message of a type this version does not know: log and ignore."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"unknown message type {type_name[:64]!r}", ErrorCode.UNKNOWN_TYPE)
        self.type_name = type_name


def encode(message: Message) -> bytes:
    try:
        payload: bytes = msgpack.packb(message.model_dump(mode="python"), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {message.type}: {exc}") from exc
    return payload


def decode(data: bytes, max_size: int = MAX_LARGE_FRAME_SIZE) -> Message:
    """One message from one frame payload."""
    if len(data) > max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes is too large", ErrorCode.BAD_FRAME)
    raw = _unpack(data)
    if not isinstance(raw, dict):
        raise RemoteProtocolError("message is not a map")
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        raise RemoteProtocolError("message has no string 'type'")
    adapter = _ADAPTERS.get(type_name)
    if adapter is None:
        raise UnknownMessageType(type_name)
    try:
        message: Message = adapter.validate_python(raw)
    except ValidationError as exc:
        raise RemoteProtocolError(_describe(type_name, exc), _code_for(exc)) from None
    return message


def _unpack(data: bytes) -> Any:
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        use_list=True,
        max_buffer_size=max(len(data), 1),
        max_str_len=min(len(data), MAX_STR_BYTES),
        max_bin_len=min(len(data), MAX_BIN_BYTES),
        max_array_len=min(len(data), MAX_ARRAY_LEN),
        max_map_len=min(len(data) // 2, MAX_MAP_LEN),
        max_ext_len=0,  # no ext types on the wire (msgpack timestamps included)
    )
    try:
        unpacker.feed(data)
        value = unpacker.unpack()
        try:
            unpacker.unpack()
        except msgpack.OutOfData:
            pass
        else:
            raise RemoteProtocolError("trailing data after message")
    except RemoteProtocolError:
        raise
    except msgpack.OutOfData:
        raise RemoteProtocolError("truncated message") from None
    except Exception as exc:  # msgpack raises many types on hostile input
        raise RemoteProtocolError(f"malformed message: {type(exc).__name__}") from None
    if _depth(value) > MAX_NESTING:
        raise RemoteProtocolError("message nested too deeply")
    return value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _code_for(exc: ValidationError) -> ErrorCode:
    for error in exc.errors():
        if "bad_path" in str(error.get("msg", "")):
            return ErrorCode.BAD_PATH
    return ErrorCode.BAD_MESSAGE


def _describe(type_name: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])[:128]
    return f"invalid {type_name}: {where}: {first['msg'][:200]}"
