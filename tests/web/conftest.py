"""Real daemons with their web UI on loopback, and one real headless Chromium for the module.

The seeder offers games; the leecher's web UI (on a free TCP port, never the default 47680,
which is one per machine) is what the browser drives. Chromium is the Debian package, driven
by Selenium through the Debian chromedriver: nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import Lanpeerd, ask_json, wait_until

MIB = 1 << 20
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).parents[1] / "out" / "web"


def tcp_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def games_of(daemon: Lanpeerd) -> dict[str, Any]:
    return {g["id"]: g for g in ask_json(daemon, cmd="games")["result"]["games"]}


def seed_games(games: Path) -> None:
    from lanpeer.library.samples import generate_game, write_catalog, write_version_ini

    games.mkdir(parents=True, exist_ok=True)
    generate_game(games, "space-race", 12 * MIB, seed=1, archives=2)
    generate_game(games, "slow-game", 96 * MIB, seed=2, archives=1, cover=False)
    generate_game(games, "tiny-tanks", MIB, seed=3, archives=1)
    broken = games / "broken-game"
    broken.mkdir()
    (broken / "data00.eti").write_bytes(os.urandom(256 << 10))  # no archive: install fails
    write_version_ini(broken, "broken-game", "1.0")
    write_catalog(games / "catalog.toml", ["space-race", "slow-game", "tiny-tanks", "broken-game"])


def browser_missing() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        reason = "Debian chromium + chromium-driver are not installed (.ci/run installs them)"
        print(f"SKIP: {reason}")
        return reason
    return None


@pytest.fixture(scope="package")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A seeder and a leecher (web UI on, download capped so progress can be watched)."""
    home = tmp_path_factory.mktemp("web")
    seed_games(home / "seeder" / "games")
    seeder = Lanpeerd(home / "seeder", name="seeder").start()
    # 4 MiB/s keeps slow-game (96 MiB) running ~24 s: time to see it and cancel it.
    leecher = Lanpeerd(
        home / "leecher",
        name="leecher",
        web=f"127.0.0.1:{tcp_free_port()}",
        # Updates by the page's button only: auto-update (on by default) would race the test.
        extra=["--max-download", "4MiB/s", "--auto-update", "off"],
    )
    try:
        leecher.start()
        assert leecher.cli("add-peer", f"127.0.0.1:{seeder.port}").rc == 0
        wait_until(
            "every game hashed and offered",
            lambda: len([g for g in games_of(leecher).values() if g["ready_peers"]]) == 4,
        )
        url = leecher.cli("ui", "--print-url", json_output=False).out.strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield {"seeder": seeder, "leecher": leecher, "url": url, "home": home}
    finally:
        seeder.kill()
        leecher.kill()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for every browser test (a start costs about a second)."""
    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lanpeer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # we run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",  # no traffic but to our loopback daemons
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=MediaRouter,OptimizationHints,Translate",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
