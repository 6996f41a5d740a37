"""Wire messages of the peer protocol: frozen pydantic models selected by ``type``.

Owns field constraints (ids, paths, list and string caps). Never does I/O.
Raw dicts never cross a module boundary: the codec turns bytes into these.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.paths import GAME_ID_RE, path_problem

# Caps. A LAN party has at most a few thousand games; a 150 GB game at 4 MiB
# chunks has ~38,000 chunks, at 1 MiB ~150,000.
MAX_GAMES = 10_000
MAX_FILES = 100_000
MAX_CHUNKS_PER_FILE = 1_000_000
MAX_NAME = 256
MAX_TEXT = 4096
MAX_FEATURES = 32
MAX_FILE_SIZE = 1 << 42  # 4 TiB
MAX_CHUNK_SIZE = 64 << 20  # the largest chunk size a peer may use
HASH_SIZE = 32  # BLAKE3 digests
U64 = (1 << 64) - 1


def _check_path(value: str) -> str:
    problem = path_problem(value)
    if problem is not None:
        raise ValueError(f"bad_path: {problem}")
    return value


GameId = Annotated[str, Field(pattern=GAME_ID_RE.pattern, max_length=64)]
PeerId = Annotated[str, Field(pattern=r"^[A-Z2-7]{52}$")]
RelPath = Annotated[str, AfterValidator(_check_path)]  # length checked there: BAD_PATH
Name = Annotated[str, Field(max_length=MAX_NAME)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Digest = Annotated[bytes, Field(min_length=HASH_SIZE, max_length=HASH_SIZE)]
Rev = Annotated[int, Field(ge=0, le=U64)]
Port = Annotated[int, Field(ge=0, le=65535)]
Size = Annotated[int, Field(ge=0, le=MAX_FILE_SIZE)]
ChunkSize = Annotated[int, Field(ge=1, le=MAX_CHUNK_SIZE)]


def _distinct_tree(files: list[ManifestFile]) -> list[ManifestFile]:
    """No path twice, and no path that is also another path's directory (``a`` and ``a/b``)."""
    paths = {f.path for f in files}
    if len(paths) != len(files):
        raise ValueError("duplicate path in manifest")
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in paths:
                raise ValueError(f"{path!r} is inside another file of the manifest")
    return files


def _distinct_games(games: list[GameSummary]) -> list[GameSummary]:
    if len({g.id for g in games}) != len(games):
        raise ValueError("duplicate game id")
    return games


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class Hello(_Message):
    """Client -> server, first message on the control stream."""

    type: Literal["hello"] = "hello"
    peer_id: PeerId
    public_key: Annotated[bytes, Field(min_length=32, max_length=32)]  # Ed25519 raw
    name: Name
    proto_major: Annotated[int, Field(ge=0, le=65535)]
    proto_minor: Annotated[int, Field(ge=0, le=65535)]
    listen_port: Port  # our QUIC listener; the host comes from the packet source
    library_rev: Rev
    library_digest: Digest
    features: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_FEATURES)]


class HelloAck(_Message):
    """Server -> client: server facts plus the nonce the client must sign."""

    type: Literal["hello_ack"] = "hello_ack"
    peer_id: PeerId
    name: Name
    proto_major: Annotated[int, Field(ge=0, le=65535)]
    proto_minor: Annotated[int, Field(ge=0, le=65535)]
    listen_port: Port
    library_rev: Rev
    library_digest: Digest
    features: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_FEATURES)]
    nonce: Annotated[bytes, Field(min_length=32, max_length=32)]
    bulk_port: Port | None = None  # TCP bulk path, when offered


class AuthProof(_Message):
    """Client -> server: Ed25519 signature over the nonce bound to both ids."""

    type: Literal["auth_proof"] = "auth_proof"
    signature: Annotated[bytes, Field(min_length=64, max_length=64)]
    party_mac: Digest | None = None  # HMAC(party key, transcript) when a party key is set


class AuthOk(_Message):
    """Server -> client: the proof was accepted; the session is ready."""

    type: Literal["auth_ok"] = "auth_ok"
    party_mac: Digest | None = None  # the server's own party-key proof


class GameSummary(_Message):
    """One advertised game, as it appears in snapshots and deltas."""

    id: GameId
    name: Name
    version: Name
    manifest_hash: Digest | None = None  # None while the game is still being hashed
    size: Size
    description: Text | None = None
    genre: Name | None = None
    max_players: Annotated[int, Field(ge=0, le=65535)] | None = None


class LibrarySummary(_Message):
    """Pushed when our library changed: a hint to ask for a delta."""

    type: Literal["library_summary"] = "library_summary"
    library_rev: Rev
    library_digest: Digest
    game_count: Annotated[int, Field(ge=0, le=MAX_GAMES)]


class LibrarySnapshotRequest(_Message):
    type: Literal["library_snapshot_request"] = "library_snapshot_request"


class LibrarySnapshot(_Message):
    type: Literal["library_snapshot"] = "library_snapshot"
    library_rev: Rev
    library_digest: Digest
    games: Annotated[
        list[GameSummary], Field(max_length=MAX_GAMES), AfterValidator(_distinct_games)
    ]


class LibraryDeltaRequest(_Message):
    type: Literal["library_delta_request"] = "library_delta_request"
    from_rev: Rev


class LibraryDelta(_Message):
    """Changes from ``from_rev`` to ``to_rev``; apply only if ``from_rev`` is what you hold."""

    type: Literal["library_delta"] = "library_delta"
    from_rev: Rev
    to_rev: Rev
    library_digest: Digest  # digest after applying
    added: Annotated[list[GameSummary], Field(max_length=MAX_GAMES)]
    updated: Annotated[list[GameSummary], Field(max_length=MAX_GAMES)]
    removed: Annotated[list[GameId], Field(max_length=MAX_GAMES)]


class GetManifest(_Message):
    """The manifest of ``game_id``: of exactly ``manifest_hash`` when given (a host may serve
    one version whole while it downloads another), else of the version the peer serves.
    A peer that does not hold that hash refuses (``not_found`` / ``stale_manifest``); an
    older peer ignores the field and answers with its version, which the asker checks."""

    type: Literal["get_manifest"] = "get_manifest"
    game_id: GameId
    manifest_hash: Digest | None = None


class ManifestFile(_Message):
    path: RelPath
    size: Size
    chunk_size: ChunkSize
    chunk_hashes: Annotated[list[Digest], Field(max_length=MAX_CHUNKS_PER_FILE)]


class Manifest(_Message):
    type: Literal["manifest"] = "manifest"
    game_id: GameId
    version: Name
    manifest_hash: Digest
    files: Annotated[
        list[ManifestFile], Field(max_length=MAX_FILES), AfterValidator(_distinct_tree)
    ]


class GetChunk(_Message):
    """Read ``length`` bytes at ``offset`` of ``path`` in the game named by ``manifest_hash``."""

    type: Literal["get_chunk"] = "get_chunk"
    game_id: GameId
    manifest_hash: Digest
    path: RelPath
    offset: Size
    length: ChunkSize


class ChunkHeader(_Message):
    """Answer to GetChunk; exactly ``length`` raw bytes follow the frame."""

    type: Literal["chunk_header"] = "chunk_header"
    offset: Size
    length: Annotated[int, Field(ge=0, le=MAX_CHUNK_SIZE)]


#: A have-set is one bit per chunk of the manifest (files in manifest order, chunks in file
#: order). 64 KiB of bits covers 524,288 chunks: a 2 TiB game at 4 MiB chunks.
MAX_HAVE_BYTES = 64 << 10
#: Increments per answer; more than this and the holder sends its whole set instead.
MAX_HAVE_ADDED = 4096
MAX_HAVE_WAIT = 30.0  # an answer is held at most this long for news (below request timeouts)


class GetHaves(_Message):
    """Which chunks of ``manifest_hash`` do you hold? (Feature ``swarm/1``.)

    ``since`` = 0 asks for the whole set; otherwise the ``seq`` of the last answer, asking for
    what was added after it. The holder may wait up to ``wait`` seconds for news.
    """

    type: Literal["get_haves"] = "get_haves"
    game_id: GameId
    manifest_hash: Digest
    since: Rev
    wait: Annotated[float, Field(ge=0, le=MAX_HAVE_WAIT)]


class Haves(_Message):
    """A partial source's holdings: ``bits`` (the whole set) or ``added`` (since ``since``),
    and ``fetching``: the chunks it is fetching now (the whole list each time; a hint that they
    will be held soon, so askers need not fetch them from a seeder too).

    ``serving`` False: the peer serves no part of that version now (not downloading it, done,
    cancelled, or ``--no-swarm``); any set the asker kept for it is void.
    """

    type: Literal["haves"] = "haves"
    manifest_hash: Digest
    serving: bool
    seq: Rev
    bits: Annotated[bytes, Field(max_length=MAX_HAVE_BYTES)] | None = None
    added: Annotated[list[Annotated[int, Field(ge=0, lt=MAX_HAVE_BYTES * 8)]],
                     Field(max_length=MAX_HAVE_ADDED)] = []  # fmt: skip
    fetching: Annotated[list[Annotated[int, Field(ge=0, lt=MAX_HAVE_BYTES * 8)]],
                        Field(max_length=MAX_HAVE_ADDED)] = []  # fmt: skip


class GetHashStatus(_Message):
    """How far have you got hashing ``game_id``? (Feature ``hash-status/1``.)

    Asked by a download waiting for a game its seeder advertises without a manifest hash yet.
    """

    type: Literal["get_hash_status"] = "get_hash_status"
    game_id: GameId


class HashStatus(_Message):
    """The answer to GetHashStatus: ``hashed_bytes`` of ``total_bytes`` of that game are hashed;
    ``hashed`` once its manifest is ready. ``host_hashed_bytes`` counts every byte this host has
    hashed since it started (any game): it grows while the game waits behind another one, so
    the asker can tell "queued" from "stuck"."""

    type: Literal["hash_status"] = "hash_status"
    game_id: GameId
    hashed: bool
    hashed_bytes: Size
    total_bytes: Size
    host_hashed_bytes: Rev

    @model_validator(mode="after")
    def _done_within_total(self) -> HashStatus:
        if self.hashed_bytes > self.total_bytes:
            raise ValueError("hashed_bytes is more than total_bytes")
        return self


class BulkTokenRequest(_Message):
    type: Literal["bulk_token_request"] = "bulk_token_request"


class BulkToken(_Message):
    """Issued over QUIC: the per-session bulk secret and the port. The secret never crosses
    the TCP connection; the downloader proves it by answering each ``BulkChallenge``."""

    type: Literal["bulk_token"] = "bulk_token"
    secret: Annotated[bytes, Field(min_length=32, max_length=32)]
    port: Port
    ttl_seconds: Annotated[float, Field(gt=0, le=86400)]


class BulkChallenge(_Message):
    """First frame on a bulk TCP connection, from the server: a fresh nonce."""

    type: Literal["bulk_challenge"] = "bulk_challenge"
    nonce: Annotated[bytes, Field(min_length=32, max_length=32)]


class BulkHello(_Message):
    """The downloader's answer: ``handshake.bulk_proof`` of the challenge under its secret."""

    type: Literal["bulk_hello"] = "bulk_hello"
    peer_id: PeerId
    proof: Annotated[bytes, Field(min_length=32, max_length=32)]


class Ping(_Message):
    type: Literal["ping"] = "ping"
    seq: Annotated[int, Field(ge=0, le=U64)]


class Pong(_Message):
    type: Literal["pong"] = "pong"
    seq: Annotated[int, Field(ge=0, le=U64)]


class Goodbye(_Message):
    type: Literal["goodbye"] = "goodbye"
    reason: Text = ""


def _error_code(value: object) -> object:
    """Wire strings become ErrorCode; a code from a newer minor version becomes INTERNAL."""
    if isinstance(value, str) and not isinstance(value, ErrorCode):
        try:
            return ErrorCode(value)
        except ValueError:
            return ErrorCode.INTERNAL if len(value) <= 64 else value
    return value


class Error(_Message):
    type: Literal["error"] = "error"
    code: Annotated[ErrorCode, BeforeValidator(_error_code)]
    message: Text = ""


Message = (
    Hello
    | HelloAck
    | AuthProof
    | AuthOk
    | LibrarySummary
    | LibrarySnapshotRequest
    | LibrarySnapshot
    | LibraryDeltaRequest
    | LibraryDelta
    | GetManifest
    | Manifest
    | GetChunk
    | ChunkHeader
    | GetHaves
    | Haves
    | GetHashStatus
    | HashStatus
    | BulkTokenRequest
    | BulkToken
    | BulkChallenge
    | BulkHello
    | Ping
    | Pong
    | Goodbye
    | Error
)

MESSAGE_TYPES: dict[str, type[_Message]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        Hello, HelloAck, AuthProof, AuthOk, LibrarySummary, LibrarySnapshotRequest,
        LibrarySnapshot, LibraryDeltaRequest, LibraryDelta, GetManifest, Manifest, GetChunk,
        ChunkHeader, GetHaves, Haves, GetHashStatus, HashStatus, BulkTokenRequest, BulkToken,
        BulkChallenge, BulkHello,
        Ping, Pong, Goodbye, Error,
    )
}  # fmt: skip
