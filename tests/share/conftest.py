"""A real lanpeerd with ``--http-share 127.0.0.1:0``, its games, and a plain HTTP client.

The share's address comes from ``peer-cli share --json``; readiness of a game is its ZIP
answering 200 to HEAD (hashed, CRCs known), polled with a deadline like the daemon harness.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lanpeer.library.samples import write_catalog
from tests.daemon.harness import Lanpeerd

DEADLINE = 60.0
MIB = 1 << 20


def write_game(root: Path, game_id: str, files: dict[str, bytes], version: str = "1.0") -> Path:
    game_dir = root / game_id
    for rel, data in files.items():
        (game_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (game_dir / rel).write_bytes(data)
    (game_dir / "version.ini").write_text(f"[game]\nversion={version}\n")
    return game_dir


def served_tree(game_dir: Path) -> dict[str, bytes]:
    """What the share must serve of a game dir: files, no local/, reserved names or symlinks."""
    tree: dict[str, bytes] = {}
    for path in sorted(game_dir.rglob("*")):
        rel = path.relative_to(game_dir).as_posix()
        top = rel.split("/")[0]
        if top in ("local", ".softlan_game_installed") or path.is_symlink() or not path.is_file():
            continue
        tree[rel] = path.read_bytes()
    return tree


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@dataclass
class Share:
    daemon: Lanpeerd
    url: str

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port

    def request(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        timeout: float = 30.0,
    ) -> Answer:
        """One request with the path sent exactly as given (no client-side normalisation)."""
        host, port = self.host_port
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def wait_served(self, game_id: str, headers: dict[str, str] | None = None) -> Answer:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            answer = self.request(f"/games/{game_id}.zip", headers, method="HEAD")
            if answer.status == 200:
                return answer
            time.sleep(0.05)  # poll interval; the deadline bounds the loop
        raise AssertionError(f"{game_id} not served within {DEADLINE}s:\n{self.daemon.log_text()}")


def basic(key: str, user: str = "guest") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def start_share(home: Path, extra: list[str] | None = None) -> Share:
    daemon = Lanpeerd(home, extra=["--http-share", "127.0.0.1:0", *(extra or [])])
    daemon.start()
    doc = daemon.cli("share").doc
    assert doc["enabled"] is True, doc
    return Share(daemon, doc["url"])


def standard_games(games: Path) -> dict[str, Path]:
    """tiny (several files, nested, plus things never served) and hidden (not in the catalog)."""
    tiny = write_game(
        games,
        "tiny",
        {
            "data.bin": os.urandom(3 * MIB + 17),
            "sub/deeper/readme.txt": b"hello\n",
            "sub/empty.dat": b"",
            "sub/Ünïcode name #1.txt": b"unicode\n",
            "big.bin": os.urandom(24 * MIB),
        },
    )
    (tiny / "local").mkdir()
    (tiny / "local" / "save.dat").write_bytes(b"private save game")
    (tiny / ".softlan_game_installed").write_text("reserved: never served")  # recovery leaves it
    (tiny / "link").symlink_to("/etc/hostname")
    (tiny / "sub" / "outside").symlink_to(games / "hidden")
    hidden = write_game(games, "hidden", {"secret.bin": b"not in the catalog"})
    write_catalog(games / "catalog.toml", ["tiny"])
    return {"tiny": tiny, "hidden": hidden}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fails a test that leaves a share or library worker thread running after it closed."""
    before = {t for t in threading.enumerate() if t.name.startswith("lanpeer-")}
    yield
    leaked = {t for t in threading.enumerate() if t.name.startswith("lanpeer-")} - before
    for thread in leaked:
        thread.join(5)
    assert not [t.name for t in leaked if t.is_alive()]


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Share]:
    """One share daemon for the read-only tests of a module."""
    home = tmp_path_factory.mktemp("share")
    standard_games(home / "games")
    running = start_share(home)
    try:
        running.wait_served("tiny")
        yield running
    finally:
        running.daemon.kill()


def share_doc(share: Share) -> dict[str, object]:
    return json.loads(share.daemon.cli("share").out)
