"""Hostile paths in a GetChunk are refused with BAD_PATH when decoded (SPEC §4)."""

from __future__ import annotations

import msgpack
import pytest
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError
from lanpeer_proto.messages import GetChunk
from lanpeer_proto.paths import path_problem
from proto_corpus import DIGEST

HOSTILE = [
    ("..", "component '..'"),
    ("a/../../x", "component '..'"),
    ("a/..", "component '..'"),
    ("/etc/passwd", "absolute"),
    ("C:\\x", "backslash"),
    ("C:x", "drive letter"),
    ("c:/x", "drive letter"),
    ("a\\b", "backslash"),
    ("a\x00b", "NUL"),
    ("a\nb", "control character"),
    ("a//b", "component ''"),
    ("a/", "component ''"),
    ("./a", "component '.'"),
    ("", "empty"),
    ("local/x", "reserved name 'local'"),
    ("local", "reserved name 'local'"),
    (".version.ini.tmp", "reserved name"),
    (".lanpeer.part/x.eti", "reserved name"),
    (".lanpeer.json", "reserved name"),
    (".sync/state", "reserved name"),
    (".softlan_game_installed", "reserved name"),
    ("x" * 1025, "too long"),
    ("/".join(["d"] * 33), "too deep"),
    ("d/" + "x" * 256, "component too long"),
]


def get_chunk_bytes(path: str) -> bytes:
    fields = {
        "type": "get_chunk",
        "game_id": "quake",
        "manifest_hash": DIGEST,
        "path": path,
        "offset": 0,
        "length": 4096,
    }
    return msgpack.packb(fields, use_bin_type=True)


@pytest.mark.parametrize(("path", "problem"), HOSTILE)
def test_hostile_path_is_refused_with_bad_path(path: str, problem: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        codec.decode(get_chunk_bytes(path))
    assert caught.value.code is ErrorCode.BAD_PATH, caught.value.message
    assert problem in caught.value.message
    assert problem in (path_problem(path) or "")


@pytest.mark.parametrize(
    "path", ["version.ini", "data1.eti", "art/cover.png", "a/b/c/d.bin", "local.txt", "..a", "a..b"]
)
def test_ordinary_paths_are_accepted(path: str) -> None:
    assert path_problem(path) is None
    message = codec.decode(get_chunk_bytes(path))
    assert isinstance(message, GetChunk)
    assert message.path == path
