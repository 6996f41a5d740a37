from lanpeer_proto import codec
from lanpeer_proto.messages import GetChunk, Ping


def test_ping_round_trips() -> None:
    assert codec.decode(codec.encode(Ping(seq=7))) == Ping(seq=7)


def test_get_chunk_round_trips() -> None:
    msg = GetChunk(game_id="quake", manifest_hash=b"\x01" * 32, path="a/b.eti", offset=0, length=4)
    assert codec.decode(codec.encode(msg)) == msg
