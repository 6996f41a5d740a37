"""The HTTP share of a real lanpeerd, fetched by real clients: http.client, urllib, curl, unzip."""

from __future__ import annotations

import io
import socket
import subprocess
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from lanpeer.share.page import human_size
from tests.share.conftest import Share, served_tree, share_doc

pytestmark = pytest.mark.process


def _unzipped(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {i.filename: archive.read(i) for i in archive.infolist()}


def _expected(share: Share) -> dict[str, bytes]:
    return {f"tiny/{k}": v for k, v in served_tree(share.daemon.games / "tiny").items()}


def test_full_download_unzips_into_the_games_files(share: Share, tmp_path: Path) -> None:
    with urllib.request.urlopen(share.url + "games/tiny.zip", timeout=30) as response:
        data = response.read()
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Content-Type"] == "application/zip"
        assert 'filename="tiny.zip"' in response.headers["Content-Disposition"]
    assert _unzipped(data) == _expected(share)
    assert not any(
        name.startswith(("tiny/local", "tiny/link", "tiny/.softlan")) for name in _unzipped(data)
    )
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, timeout=60)
    assert tested.returncode == 0, tested.stdout.decode() + tested.stderr.decode()


def test_a_download_cut_in_half_resumes_with_range_to_the_same_bytes(share: Share) -> None:
    whole = share.request("/games/tiny.zip")
    etag = whole.headers["ETag"]
    half = len(whole.body) // 2
    rest = share.request("/games/tiny.zip", {"Range": f"bytes={half}-", "If-Range": etag})
    assert rest.status == 206
    assert rest.headers["Content-Range"] == f"bytes {half}-{len(whole.body) - 1}/{len(whole.body)}"
    assert whole.body[:half] + rest.body == whole.body
    middle = share.request("/games/tiny.zip", {"Range": "bytes=100-199"})
    assert (middle.status, middle.body) == (206, whole.body[100:200])
    tail = share.request("/games/tiny.zip", {"Range": "bytes=-10"})
    assert (tail.status, tail.body) == (206, whole.body[-10:])


def test_several_ranges_come_as_one_multipart_byteranges_body(share: Share) -> None:
    whole = share.request("/games/tiny.zip").body
    ranges = [(0, 9), (100, 199), (len(whole) - 5, len(whole) - 1)]
    spec = "bytes=" + ",".join(f"{a}-{b}" for a, b in ranges)
    answer = share.request("/games/tiny.zip", {"Range": spec})
    assert answer.status == 206
    kind, _, boundary = answer.headers["Content-Type"].partition("; boundary=")
    assert kind == "multipart/byteranges"
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    assert answer.body.endswith(f"\r\n--{boundary}--\r\n".encode())
    parts = answer.body.split(f"\r\n--{boundary}".encode())[1:-1]
    assert len(parts) == len(ranges)
    for part, (first, last) in zip(parts, ranges, strict=True):
        head, _, data = part.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {first}-{last}/{len(whole)}".encode() in head
        assert data == whole[first : last + 1]
    head = share.request("/games/tiny.zip", {"Range": spec}, method="HEAD")
    assert head.headers["Content-Length"] == answer.headers["Content-Length"]
    assert head.headers["Content-Type"] == answer.headers["Content-Type"]


def test_curl_resumes_a_cut_download_to_the_same_bytes(share: Share, tmp_path: Path) -> None:
    full, part = tmp_path / "full.zip", tmp_path / "part.zip"
    url = share.url + "games/tiny.zip"
    subprocess.run(["curl", "-sSf", "-o", str(full), url], check=True, timeout=60)
    part.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    resumed = subprocess.run(
        ["curl", "-sSf", "-C", "-", "-o", str(part), "-w", "%{http_code}", url],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert resumed.stdout == b"206"
    assert part.read_bytes() == full.read_bytes()
    assert _unzipped(full.read_bytes()) == _expected(share)


def test_four_parallel_curl_downloads_get_the_same_bytes(share: Share, tmp_path: Path) -> None:
    url = share.url + "games/tiny.zip"
    outs = [tmp_path / f"copy{i}.zip" for i in range(4)]  # the per-address cap: 4 at once
    # --retry: a 503 while an earlier test's download leaves the table is retried, as browsers do
    curls = [
        subprocess.Popen(["curl", "-sSf", "--retry", "3", "-o", str(out), url]) for out in outs
    ]
    try:
        codes = [curl.wait(60) for curl in curls]
    finally:
        for curl in curls:
            if curl.poll() is None:
                curl.kill()
                curl.wait(5)
    assert codes == [0, 0, 0, 0]
    first = outs[0].read_bytes()
    assert all(out.read_bytes() == first for out in outs[1:])
    assert _unzipped(first) == _expected(share)


def test_head_answers_the_same_headers_without_a_body(share: Share) -> None:
    get = share.request("/games/tiny.zip", {"Range": "bytes=5-"})
    head = share.request("/games/tiny.zip", {"Range": "bytes=5-"}, method="HEAD")
    assert head.body == b""
    for name in ("Content-Length", "Content-Range", "ETag", "Accept-Ranges", "Content-Type"):
        assert head.headers[name] == get.headers[name], name
    assert head.status == get.status == 206


def test_a_range_past_the_end_gets_416(share: Share) -> None:
    size = int(share.request("/games/tiny.zip", method="HEAD").headers["Content-Length"])
    answer = share.request("/games/tiny.zip", {"Range": f"bytes={size}-"})
    assert answer.status == 416
    assert answer.headers["Content-Range"] == f"bytes */{size}"
    assert (
        share.request("/games/tiny.zip", {"Range": f"bytes={size + 10}-{size + 20}"}).status == 416
    )


def test_one_file_downloads_and_resumes_alone(share: Share) -> None:
    expected = (share.daemon.games / "tiny" / "data.bin").read_bytes()
    whole = share.request("/games/tiny/files/data.bin")
    assert (whole.status, whole.body) == (200, expected)
    part = share.request(
        "/games/tiny/files/data.bin", {"Range": "bytes=1000-", "If-Range": whole.headers["ETag"]}
    )
    assert (part.status, part.body) == (206, expected[1000:])
    nested = share.request("/games/tiny/files/sub/deeper/readme.txt")
    assert (nested.status, nested.body) == (200, b"hello\n")
    quoted = "/games/tiny/files/" + quote("sub/Ünïcode name #1.txt")
    unicode = share.request(quoted)
    assert (unicode.status, unicode.body) == (200, b"unicode\n")
    assert (
        "filename*=UTF-8''%C3%9Cn%C3%AFcode%20name%20%231.txt"
        in unicode.headers["Content-Disposition"]
    )
    assert quoted in share.request("/games/tiny/").body.decode()  # the files page links it


def test_the_page_lists_downloaded_catalog_games_with_links(share: Share) -> None:
    page = share.request("/")
    text = page.body.decode()
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/games/tiny.zip" in text
    assert "/games/tiny/" in text
    assert "1.0" in text
    assert "hidden" not in text  # not in the catalog
    size = sum(len(data) for data in served_tree(share.daemon.games / "tiny").values())
    assert human_size(size) in text
    files = share.request("/games/tiny/").body.decode()
    assert "/games/tiny/files/sub/deeper/readme.txt" in files
    assert "save.dat" not in files
    assert "link" not in files.replace("<link", "")


@pytest.mark.parametrize(
    "path",
    [
        "/games/hidden.zip",  # not in the catalog
        "/games/hidden/files/secret.bin",
        "/games/nosuch.zip",
        "/games/tiny/files/local/save.dat",  # local/ is never served
        "/games/tiny/files/.softlan_game_installed",  # reserved name
        "/games/tiny/files/link",  # symlink
        "/games/tiny/files/sub/outside/secret.bin",  # through a symlinked dir
        "/games/tiny/files/../hidden/files/secret.bin",
        "/games/tiny/files/sub/../../../../etc/passwd",
        "/games/tiny/files/%2e%2e/%2e%2e/etc/passwd",
        "/games/tiny/files/sub%2f..%2f..%2flocal%2fsave.dat",
        "/games/tiny/files//etc/passwd",
        "/games/tiny/files/sub%5c..%5cdata.bin",
        "/games/tiny/files/data.bin%00.txt",
        "/games/..%2fhidden.zip",
        "/games/TINY.zip",
        "/games/tiny/files/",
    ],
)
def test_what_is_not_served_gets_404(share: Share, path: str) -> None:
    answer = share.request(path)
    assert answer.status == 404, (path, answer.status, answer.body[:200])
    assert b"private save game" not in answer.body
    assert b"not in the catalog" not in answer.body
    assert b"reserved: never served" not in answer.body


def test_share_command_shows_the_url_and_who_is_downloading(share: Share) -> None:
    host, port = share.host_port
    with socket.create_connection((host, port), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"GET /games/tiny.zip HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        doc = share_doc(share)  # the reader stalls: its download is in the table meanwhile
        uploads = share.daemon.cli("uploads").doc  # and among the host's uploads
    assert doc["url"] == share.url
    downloads = doc["downloads"]
    assert isinstance(downloads, list)
    # An earlier test's finished download may still be leaving the table: only ours is unfinished.
    (entry,) = [d for d in downloads if d["bytes_sent"] < d["bytes_total"]]
    assert entry["client"] == "127.0.0.1"
    assert entry["game_id"] == "tiny"
    assert entry["item"] == "tiny.zip"
    assert 0 < entry["bytes_sent"] < entry["bytes_total"]
    (upload,) = [u for u in uploads if u["via"] == "http" and u["bytes"] < entry["bytes_total"]]
    assert (upload["peer_id"], upload["game_id"]) == ("127.0.0.1", "tiny")
    human = share.daemon.cli("share", json_output=False)
    assert human.rc == 0
    assert share.url in human.out


def test_a_daemon_without_the_flag_shares_nothing(share: Share) -> None:
    from tests.daemon.harness import Lanpeerd

    plain = Lanpeerd(share.daemon.home.parent / "plain")
    plain.start()
    try:
        assert plain.cli("share").doc == {
            "enabled": False,
            "url": None,
            "link": None,
            "downloads": [],
        }
        assert "HTTP share" not in plain.log_text()
    finally:
        plain.kill()


def test_downloads_follow_each_other_on_one_keep_alive_connection(share: Share) -> None:
    import http.client

    host, port = share.host_port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        bodies = []
        for request_range in ("bytes=0-", "bytes=10-20", "bytes=0-"):
            connection.request("GET", "/games/tiny.zip", headers={"Range": request_range})
            response = connection.getresponse()
            bodies.append(response.read())
            assert not response.will_close
    finally:
        connection.close()
    assert bodies[0] == bodies[2]
    assert bodies[1] == bodies[0][10:21]


def test_the_daemon_logged_no_traceback(share: Share) -> None:
    """Last in this module: every request above was answered without an unhandled error."""
    log = share.daemon.log_text()
    assert "Traceback" not in log
    assert "Error handling request" not in log
