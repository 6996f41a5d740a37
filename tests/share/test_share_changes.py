"""The share across a game change, with a party key, and past the ZIP64 limit (real daemons)."""

from __future__ import annotations

import http.client
import io
import os
import struct
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from lanpeer.library.samples import write_catalog
from tests.share.conftest import DEADLINE, MIB, Share, basic, start_share, write_game

pytestmark = pytest.mark.process

GIB = 1 << 30


def _wait_new_etag(share: Share, old: str) -> str:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        answer = share.request("/games/tiny.zip", method="HEAD")
        if answer.status == 200 and answer.headers["ETag"] != old:
            return str(answer.headers["ETag"])
        time.sleep(0.05)  # poll interval; the deadline bounds the loop
    raise AssertionError("the game change never reached the share")


def test_if_range_with_a_stale_etag_gets_the_whole_new_archive(tmp_path: Path) -> None:
    games = tmp_path / "games"
    game = write_game(games, "tiny", {"a.bin": os.urandom(2 * MIB), "b.txt": b"one"})
    write_catalog(games / "catalog.toml", ["tiny"])
    share = start_share(tmp_path)
    try:
        old = share.wait_served("tiny")
        first_half = share.request("/games/tiny.zip", {"Range": "bytes=0-999999"}).body
        (game / "a.bin").write_bytes(os.urandom(2 * MIB))  # same size, other bytes
        new_etag = _wait_new_etag(share, old.headers["ETag"])
        resumed = share.request(
            "/games/tiny.zip", {"Range": "bytes=1000000-", "If-Range": old.headers["ETag"]}
        )
        assert resumed.status == 200  # never the old first half glued to new bytes
        assert resumed.headers["ETag"] == new_etag
        with zipfile.ZipFile(io.BytesIO(resumed.body)) as archive:
            assert archive.testzip() is None
            assert archive.read("tiny/a.bin") == (game / "a.bin").read_bytes()
        assert resumed.body[:1000000] != first_half
        fresh = share.request("/games/tiny.zip", {"Range": "bytes=10-", "If-Range": new_etag})
        assert (fresh.status, fresh.body) == (206, resumed.body[10:])
    finally:
        share.daemon.kill()


def test_with_a_party_key_nothing_is_served_without_it(tmp_path: Path) -> None:
    games = tmp_path / "games"
    write_game(games, "tiny", {"a.bin": b"payload" * 100})
    write_catalog(games / "catalog.toml", ["tiny"])
    share = start_share(tmp_path, ["--party-key", "lan-2026"])
    try:
        share.wait_served("tiny", basic("lan-2026"))
        for path in ("/", "/games/tiny.zip", "/games/tiny/", "/games/tiny/files/a.bin"):
            refused = share.request(path)
            assert refused.status == 401, path
            assert refused.headers["WWW-Authenticate"].startswith("Basic ")
            assert b"payload" not in refused.body
            assert share.request(path, basic("wrong-key")).status == 401
            assert share.request(path + "?token=0123456789abcdef").status == 401
        assert share.request("/games/tiny/files/a.bin", basic("lan-2026", "anyone")).body == (
            b"payload" * 100
        )
        link = share.daemon.cli("share").doc["link"]
        token = link.split("?token=")[1]
        page = share.request(f"/?token={token}")
        assert page.status == 200
        assert f"/games/tiny.zip?token={token}" in page.body.decode()  # links carry the token
        assert share.request(f"/games/tiny.zip?token={token}").status == 200
        out = subprocess.run(
            ["curl", "-sSf", "-u", "whoever:lan-2026", share.url + "games/tiny/files/a.bin"],
            capture_output=True, check=True, timeout=30,
        )  # fmt: skip
        assert out.stdout == b"payload" * 100
    finally:
        share.daemon.kill()


def _download_sparse(share: Share, path: str, target: Path) -> int:
    """Stream a download into ``target``, leaving all-zero MiBs as holes (keeps 5 GiB cheap)."""
    host, port = share.host_port
    connection = http.client.HTTPConnection(host, port, timeout=60)
    zero = bytes(MIB)
    buffer = bytearray(MIB)
    total = 0
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        with target.open("wb") as out:
            while True:
                got = response.readinto(buffer)
                if not got:
                    break
                if got == MIB and buffer == zero:
                    out.seek(got, os.SEEK_CUR)
                else:
                    out.write(memoryview(buffer)[:got])
                total += got
            out.truncate(total)
        assert total == int(response.headers["Content-Length"])
    finally:
        connection.close()
    return total


@pytest.mark.timeout(400)  # ~25 s idle; over 75 s seen at load 10 (2 cores)
def test_a_5_gib_sparse_game_crosses_zip64_and_still_unzips(tmp_path: Path) -> None:
    games = tmp_path / "games"
    game = write_game(games, "huge", {"after.txt": b"after the big one\n"})
    with (game / "big.bin").open("wb") as big:
        big.truncate(5 * GIB)  # sparse: no disk blocks, reads as zeros
        big.seek(3 * GIB)
        big.write(b"a marker in the middle")
    write_catalog(games / "catalog.toml", ["huge"])
    share = start_share(tmp_path)
    try:
        deadline = time.monotonic() + 300
        # The first HEAD waits while the daemon hashes and CRCs 5 GiB: seconds idle, far more on
        # a loaded machine, so this one request may wait as long as the whole deadline.
        while share.request("/games/huge.zip", method="HEAD", timeout=300).status != 200:
            assert time.monotonic() < deadline, share.daemon.log_text()
            time.sleep(0.2)  # poll interval; the deadline bounds the loop
        archive = tmp_path / "huge.zip"
        size = _download_sparse(share, "/games/huge.zip", archive)
        assert size > 5 * GIB
        # Info-ZIP reads the ZIP64 records and extracts (CRC-checked) the entry past 4 GiB; its
        # own CRC of 5 GiB takes ~25 s here, so the whole-archive check is zipfile's (~3 s).
        listed = subprocess.run(["unzip", "-l", str(archive)], capture_output=True, timeout=60)
        assert listed.returncode == 0, listed
        assert b"5368709120" in listed.stdout
        extracted = subprocess.run(
            ["unzip", "-p", str(archive), "huge/version.ini"], capture_output=True, timeout=60
        )
        assert extracted.returncode == 0
        assert extracted.stdout == (game / "version.ini").read_bytes()
        with zipfile.ZipFile(archive) as unzipped:
            assert unzipped.testzip() is None  # every CRC, big.bin's 5 GiB included
            infos = {i.filename: i for i in unzipped.infolist()}
            assert infos["huge/big.bin"].file_size == 5 * GIB
            assert infos["huge/version.ini"].header_offset > 0xFFFFFFFF  # needed ZIP64
            assert unzipped.read("huge/after.txt") == b"after the big one\n"
            start = infos["huge/big.bin"].header_offset
        with archive.open("rb") as raw:  # the marker, where the local header says the data is
            raw.seek(start)
            header = raw.read(30)
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            raw.seek(start + 30 + name_length + extra_length + 3 * GIB)
            assert raw.read(22) == b"a marker in the middle"
        tail = share.request("/games/huge.zip", {"Range": f"bytes={size - 22}-"})
        assert tail.status == 206
        assert len(tail.body) == 22
        assert tail.body.startswith(b"PK\x05\x06")
    finally:
        share.daemon.kill()
