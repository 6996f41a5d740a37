"""Long fuzz run of the wire decoder: FrameDecoder + codec.decode on hostile bytes.

Feeds seeded random bytes, byte-level mutations of valid encodings, field-level
mutations (valid msgpack, wrong or extreme values) and multi-frame streams split at
random points. Prints counts by outcome and the time taken. Exit 1 if anything but a
ProtocolError subclass escapes, or an accepted message does not re-encode to itself.

    uv run python scripts/fuzz_proto.py [--count 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "proto"))
from lanpeer_proto import codec
from lanpeer_proto.codec import UnknownMessageType
from lanpeer_proto.errors import ProtocolError
from lanpeer_proto.framing import FrameDecoder, encode_frame
from proto_corpus import all_messages

MAX_FRAME = 1 << 20
MESSAGES = all_messages()
ENCODED = [codec.encode(m) for m in MESSAGES]
DICTS = [m.model_dump(mode="python") for m in MESSAGES]
INTERESTING_BYTES = [0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xC4, 0xCC, 0xD9, 0xDC, 0xDD, 0xDF, 0xFF]
EXTREME_VALUES: list[Any] = [
    None, True, -1, 0, 1, 2**31, 2**63, 2**64 - 1, -(2**63), 1.5, float("nan"), float("inf"),
    "", "..", "/etc/passwd", "a\x00b", "C:\\x", "local/x", "x" * 5000, "ü" * 2000,
    b"", b"\x00" * 31, b"\x00" * 33, b"\xff" * 64, [], [None] * 50, {}, {"type": "ping"},
    [[[[[[[[[[1]]]]]]]]]], {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}},
]  # fmt: skip


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 2, 5, 16, 64, 256, 1024]))


def byte_mutation(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(ENCODED))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data)) if data else 0
        kind = rng.randrange(6)
        if kind == 0 and data:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            data[at] = rng.choice(INTERESTING_BYTES)
        elif kind == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 3:
            del data[at : at + rng.randint(1, 16)]
        elif kind == 4:
            other = rng.choice(ENCODED)
            data[at:] = other[rng.randrange(len(other) + 1) :]
        else:
            del data[at:]
    return bytes(data)


def field_mutation(rng: random.Random) -> bytes:
    """Valid msgpack, valid envelope, one or two fields with wrong or extreme values."""
    fields = dict(rng.choice(DICTS))
    for _ in range(rng.randint(1, 2)):
        name = rng.choice([*fields, "type", "unknown_field"])
        fields[name] = rng.choice(EXTREME_VALUES)
    if rng.random() < 0.05:
        fields["type"] = rng.choice(["", "teleport", "Hello", "x" * 300])
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.escapes: list[str] = []
        self.slowest = (0.0, b"")

    def decode(self, payload: bytes) -> None:
        started = time.perf_counter()
        try:
            message = codec.decode(payload, max_size=MAX_FRAME)
        except UnknownMessageType:
            self.outcomes["unknown_type (ignored)"] += 1
        except ProtocolError as exc:
            self.outcomes[f"refused: {exc.code}"] += 1
        except Exception:
            self.escape(payload)
        else:
            self.outcomes[f"accepted: {message.type}"] += 1
            if codec.decode(codec.encode(message)) != message:
                self.escapes.append(f"re-encode mismatch for {payload!r}")
        elapsed = time.perf_counter() - started
        if elapsed > self.slowest[0]:
            self.slowest = (elapsed, payload)

    def escape(self, payload: bytes) -> None:
        self.outcomes["ESCAPED"] += 1
        if len(self.escapes) < 5:
            self.escapes.append(f"{payload[:80]!r}\n{traceback.format_exc()}")


def run_stream(rng: random.Random, tally: Tally) -> None:
    """Several (partly corrupt) frames, split at random points, through one FrameDecoder."""
    payloads = [rng.choice([byte_mutation, field_mutation])(rng) for _ in range(rng.randint(1, 5))]
    stream = bytearray(b"".join(encode_frame(p) for p in payloads))
    if rng.random() < 0.3 and stream:
        stream[rng.randrange(len(stream))] = rng.choice(INTERESTING_BYTES)
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randint(0, 6)))
    decoder = FrameDecoder(max_frame_size=MAX_FRAME)
    try:
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            decoder.feed(bytes(stream[start:end]))
            for frame in decoder.frames():
                tally.decode(frame)
    except ProtocolError as exc:
        tally.outcomes[f"stream refused: {exc.code}"] += 1
    except Exception:
        tally.escape(bytes(stream))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs to try")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tally = Tally()
    kinds: Counter[str] = Counter()
    generators: dict[str, Callable[[random.Random], bytes]] = {
        "random bytes": random_bytes,
        "byte mutation": byte_mutation,
        "field mutation": field_mutation,
    }
    started = time.perf_counter()
    for _ in range(args.count):
        kind = rng.choice([*generators, "stream"])
        kinds[kind] += 1
        if kind == "stream":
            run_stream(rng, tally)
        else:
            tally.decode(generators[kind](rng))
    elapsed = time.perf_counter() - started
    report(args, kinds, tally, elapsed)
    return 1 if tally.escapes else 0


def report(args: argparse.Namespace, kinds: Counter[str], tally: Tally, elapsed: float) -> None:
    print(f"fuzz_proto: {args.count} inputs, seed {args.seed}, {elapsed:.1f} s")
    print("inputs by kind:  " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"decode calls: {sum(tally.outcomes.values())}")
    for outcome, n in sorted(tally.outcomes.items(), key=lambda item: -item[1]):
        print(f"  {n:8d}  {outcome}")
    print(
        f"slowest single decode: {tally.slowest[0] * 1000:.1f} ms ({len(tally.slowest[1])} bytes)"
    )
    for escape in tally.escapes:
        print("ESCAPE:", escape, file=sys.stderr)
    print("result:", "FAIL" if tally.escapes else "ok: only ProtocolError subclasses")


if __name__ == "__main__":
    sys.exit(main())
