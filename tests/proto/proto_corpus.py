"""One valid instance of every wire message, near the field limits where it is cheap.

Shared by the round-trip tests, the hypothesis mutation tests and scripts/fuzz_proto.py
(which puts this directory on sys.path). Deterministic: no randomness, no clock.
"""

from __future__ import annotations

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import (
    AuthOk,
    AuthProof,
    BulkChallenge,
    BulkHello,
    BulkToken,
    BulkTokenRequest,
    ChunkHeader,
    Error,
    GameSummary,
    GetChunk,
    GetHashStatus,
    GetHaves,
    GetManifest,
    Goodbye,
    HashStatus,
    Haves,
    Hello,
    HelloAck,
    LibraryDelta,
    LibraryDeltaRequest,
    LibrarySnapshot,
    LibrarySnapshotRequest,
    LibrarySummary,
    Manifest,
    ManifestFile,
    Message,
    Ping,
    Pong,
)

PEER_A = "A" * 52
PEER_B = "B2" * 26
DIGEST = bytes(range(32))
KEY = bytes(range(32, 64))


def game(game_id: str, **extra: object) -> GameSummary:
    fields: dict[str, object] = {
        "id": game_id,
        "name": f"Game {game_id}",
        "version": "1.0",
        "manifest_hash": DIGEST,
        "size": 3 << 30,
    }
    fields.update(extra)
    return GameSummary.model_validate(fields)


def all_messages() -> list[Message]:
    """Every message type, some in two shapes (optional fields absent and present)."""
    summaries = [
        game("quake"),
        game("unreal-tournament_99", description="Frag", genre="FPS", max_players=16),
        game("tetris", manifest_hash=None, size=0),
    ]
    files = [
        ManifestFile(path="version.ini", size=12, chunk_size=4 << 20, chunk_hashes=[DIGEST]),
        ManifestFile(path="data1.eti", size=9 << 20, chunk_size=4 << 20, chunk_hashes=[DIGEST] * 3),
        ManifestFile(path="art/cover ü.png", size=0, chunk_size=4 << 20, chunk_hashes=[]),
    ]
    hello = {
        "peer_id": PEER_A,
        "name": "alice's laptop",
        "proto_major": 1,
        "proto_minor": 0,
        "listen_port": 47600,
        "library_rev": (1 << 64) - 1,
        "library_digest": DIGEST,
        "features": ["tcp-bulk", "deltas"],
    }
    return [
        Hello.model_validate({**hello, "public_key": KEY}),
        HelloAck.model_validate({**hello, "peer_id": PEER_B, "nonce": KEY}),
        HelloAck.model_validate({**hello, "nonce": KEY, "bulk_port": 47601, "features": []}),
        AuthProof(signature=KEY + DIGEST),
        AuthProof(signature=KEY + DIGEST, party_mac=DIGEST),
        AuthOk(),
        AuthOk(party_mac=DIGEST),
        LibrarySummary(library_rev=7, library_digest=DIGEST, game_count=3),
        LibrarySnapshotRequest(),
        LibrarySnapshot(library_rev=7, library_digest=DIGEST, games=summaries),
        LibraryDeltaRequest(from_rev=6),
        LibraryDelta(
            from_rev=6,
            to_rev=7,
            library_digest=DIGEST,
            added=summaries[:1],
            updated=summaries[1:],
            removed=["doom"],
        ),
        GetManifest(game_id="quake"),
        GetManifest(game_id="quake", manifest_hash=DIGEST),
        Manifest(game_id="quake", version="1.0 (GOTY)", manifest_hash=DIGEST, files=files),
        GetChunk(
            game_id="quake", manifest_hash=DIGEST, path="data1.eti", offset=4 << 20, length=4 << 20
        ),
        ChunkHeader(offset=4 << 20, length=4 << 20),
        GetHaves(game_id="quake", manifest_hash=DIGEST, since=0, wait=10.0),
        Haves(manifest_hash=DIGEST, serving=True, seq=3, bits=b"\x05"),
        Haves(manifest_hash=DIGEST, serving=True, seq=9, added=[1, 7, 4095]),
        Haves(manifest_hash=DIGEST, serving=False, seq=0),
        GetHashStatus(game_id="quake"),
        HashStatus(
            game_id="quake",
            hashed=False,
            hashed_bytes=41 << 30,
            total_bytes=100 << 30,
            host_hashed_bytes=(1 << 64) - 1,
        ),
        HashStatus(
            game_id="quake", hashed=True, hashed_bytes=0, total_bytes=0, host_hashed_bytes=0
        ),
        BulkTokenRequest(),
        BulkToken(secret=KEY, port=47601, ttl_seconds=30.0),
        BulkChallenge(nonce=KEY),
        BulkHello(peer_id=PEER_A, proof=KEY),
        Ping(seq=0),
        Pong(seq=(1 << 64) - 1),
        Goodbye(),
        Goodbye(reason="daemon shutting down"),
        Error(code=ErrorCode.BAD_PATH, message="path component '..' not allowed"),
    ]
