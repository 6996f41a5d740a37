"""The web UI in a real headless Chromium against real daemons (SPEC §9b).

One browser and one seeder/leecher pair serve the whole module; each test waits on what the
page shows (WebDriverWait on a condition), never on a fixed sleep. The last test writes a
screenshot of every page at 1280x800 and 360x740 to tests/out/web/ for a reviewer.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.daemon.harness import Lanpeerd, ask_json, wait_until
from tests.web.conftest import SCREENSHOTS, browser_missing, games_of

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing())),
]

WAIT = 30.0


def _wait(driver: Any, what: str, condition: Any, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page replaces rows as state changes: an element found a moment ago may be gone.
    ignored = [StaleElementReferenceException]
    wait = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=ignored)
    return wait.until(condition, message=what)


def _css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _one(driver: Any, selector: str) -> Any:
    found = _css(driver, selector)
    return found[0] if found else None


def _open(driver: Any, lan: dict[str, Any], page: str) -> None:
    """Load the UI on ``page`` (the token URL once; the cookie afterwards) and wait for data."""
    if "lanpeer" not in driver.title:
        driver.get(lan["url"])
    driver.get(lan["url"].split("?")[0] + f"#{page}")
    _wait(driver, "the live channel", lambda d: _one(d, '#live[data-state="live"]'))


def _card(driver: Any, game_id: str) -> Any:
    return _one(driver, f'article[data-game="{game_id}"]')


def _click_action(driver: Any, game_id: str, action: str) -> None:
    def find_and_click(d: Any) -> bool:
        # Found and clicked in one step: a row re-rendered in between (a stale button) is
        # looked up again by the wait instead of failing the click.
        button = _one(d, f'article[data-game="{game_id}"] button[data-action="{action}"]')
        if button is None:
            return False
        button.click()
        return True

    _wait(driver, f"{action} button of {game_id}", find_and_click)


def test_library_lists_the_peers_games(browser: Any, lan: dict[str, Any]) -> None:
    _open(browser, lan, "library")
    card = _wait(browser, "space-race card", lambda d: _card(d, "space-race"))
    _wait(browser, "its name", lambda d: "Space Race" in _card(d, "space-race").text)
    text = card.text
    assert "1 peer" in text
    assert "v1.0" in text
    assert _one(browser, 'article[data-game="space-race"] button[data-action="download"]')
    assert {c.get_attribute("data-game") for c in _css(browser, "article[data-game]")} >= {
        "space-race",
        "slow-game",
        "tiny-tanks",
        "broken-game",
    }


def test_download_click_shows_a_moving_bar_that_ends_installed(
    browser: Any, lan: dict[str, Any]
) -> None:
    _open(browser, lan, "library")
    _click_action(browser, "space-race", "download")
    selector = 'article[data-game="space-race"] .progress:not([hidden]) [role="progressbar"]'
    first = float(
        _wait(
            browser,
            "a progress bar with bytes",
            lambda d: (
                (bar := _one(d, selector))
                and float(bar.get_attribute("aria-valuenow")) > 0
                and bar.get_attribute("aria-valuenow")
            ),
        )
    )
    _wait(
        browser,
        "the bar to move",
        lambda d: (
            (bar := _one(d, selector)) is None or float(bar.get_attribute("aria-valuenow")) > first
        ),
    )
    _wait(
        browser,
        "space-race installed",
        lambda d: _one(d, 'article[data-game="space-race"] .state[data-state="installed"]'),
    )
    assert games_of(lan["leecher"])["space-race"]["installed"] is True
    assert _one(browser, 'article[data-game="space-race"] button[data-action="uninstall"]')


def _state_is(driver: Any, game_id: str, state: str) -> Any:
    return _one(driver, f'article[data-game="{game_id}"] .state[data-state="{state}"]')


def _confirm(driver: Any, choice: str) -> None:
    dialog = _wait(driver, "the confirmation", lambda d: _one(d, "dialog#confirm[open]"))
    dialog.find_element("css selector", f'button[value="{choice}"]').click()
    _wait(driver, "the dialog closed", lambda d: _one(d, "dialog#confirm[open]") is None)


def test_install_uninstall_remove_buttons_with_confirmations(
    browser: Any, lan: dict[str, Any]
) -> None:
    leecher: Lanpeerd = lan["leecher"]
    if not games_of(leecher)["space-race"]["installed"]:
        assert leecher.cli("download", "space-race", "--wait", timeout=60).rc == 0
    _open(browser, lan, "library")
    _wait(browser, "space-race installed", lambda d: _state_is(d, "space-race", "installed"))
    _click_action(browser, "space-race", "uninstall")
    _confirm(browser, "cancel")  # "Keep it": nothing is asked of the daemon
    assert games_of(leecher)["space-race"]["installed"] is True
    title = browser.find_element("id", "confirm-title").get_attribute("textContent")
    assert title == "Uninstall Space Race?"
    _click_action(browser, "space-race", "uninstall")
    _confirm(browser, "ok")
    _wait(browser, "uninstalled", lambda d: _state_is(d, "space-race", "downloaded"))
    _click_action(browser, "space-race", "install")  # no question: nothing is lost
    _wait(browser, "installed again", lambda d: _state_is(d, "space-race", "installed"))
    assert (leecher.games / "space-race" / "local").is_dir()
    _click_action(browser, "space-race", "uninstall")
    _confirm(browser, "ok")
    _wait(browser, "uninstalled again", lambda d: _state_is(d, "space-race", "downloaded"))
    _click_action(browser, "space-race", "remove")
    _confirm(browser, "ok")
    _wait(browser, "removed: only the peer has it", lambda d: _state_is(d, "space-race", "remote"))
    assert not (leecher.games / "space-race").exists()
    assert _one(browser, 'article[data-game="space-race"] button[data-action="download"]')


def test_update_button_installs_the_newer_version_a_peer_offers(
    browser: Any, lan: dict[str, Any]
) -> None:
    from lanpeer.library.samples import generate_game

    leecher: Lanpeerd = lan["leecher"]
    seeder: Lanpeerd = lan["seeder"]
    if not games_of(leecher)["tiny-tanks"]["installed"]:
        assert leecher.cli("download", "tiny-tanks", "--wait", timeout=60).rc == 0
    generate_game(seeder.games, "tiny-tanks", 1 << 20, seed=4, archives=1, version="1.1")
    assert seeder.cli("rescan", "tiny-tanks").rc == 0
    wait_until(
        "the leecher sees 1.1 offered",
        lambda: (
            games_of(leecher)["tiny-tanks"]["update_available"]
            and games_of(leecher)["tiny-tanks"]["ready_peers"]
        ),
    )
    _open(browser, lan, "library")
    _wait(
        browser,
        "the update tag",
        lambda d: "update 1.1" in (_card(d, "tiny-tanks").text if _card(d, "tiny-tanks") else ""),
    )
    _click_action(browser, "tiny-tanks", "update")
    _wait(
        browser,
        "1.1 installed",
        lambda d: (
            "installed 1.1" in _card(d, "tiny-tanks").text
            and _state_is(d, "tiny-tanks", "installed")
        ),
        timeout=60,
    )
    assert games_of(leecher)["tiny-tanks"]["installed_version"] == "1.1"


def test_cancel_from_the_task_center_stops_the_download_within_a_second(
    browser: Any, lan: dict[str, Any]
) -> None:
    leecher: Lanpeerd = lan["leecher"]
    _open(browser, lan, "library")
    _click_action(browser, "slow-game", "download")
    browser.find_element("css selector", 'a[data-page="tasks"]').click()
    row = '#ops [data-op="slow-game"]'
    _wait(
        browser,
        "slow-game downloading in the task center",
        lambda d: (
            _one(d, row)
            and float(_one(d, f"{row} [role=progressbar]").get_attribute("aria-valuenow")) > 0
        ),
    )
    assert "download" in _one(browser, row).text
    _wait(  # the host's throughput graph follows the download
        browser,
        "a download rate in the graph's legend",
        lambda d: d.find_element("id", "rate-down").text not in ("", "0 B/s"),
    )
    browser.refresh()  # a reopened tab shows the running download with its first message
    _wait(browser, "the live channel again", lambda d: _one(d, '#live[data-state="live"]'))
    assert _one(browser, row) is not None
    assert float(_one(browser, f"{row} [role=progressbar]").get_attribute("aria-valuenow")) > 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "tasks-downloading.png"))  # for the reviewer
    cancel = _one(browser, f'{row} button[data-action="cancel"]')
    clicked = time.monotonic()
    cancel.click()
    _wait(
        browser,
        "the row to say cancelled",
        lambda d: _one(d, '#finished [data-finished="slow-game"] .outcome[data-cancelled="true"]'),
        timeout=WAIT,
    )
    shown = time.monotonic() - clicked
    print(f"cancel shown after {shown:.3f}s")
    assert _one(browser, row) is None
    assert ask_json(leecher, cmd="ops")["result"]["ops"] == []
    # The bound: the download stops within 1 s of the click (seen by the person).
    assert shown < 1.0, f"cancel took {shown:.2f}s to show"
    assert games_of(leecher)["slow-game"]["downloaded"] is False


def test_a_failed_download_shows_its_error(browser: Any, lan: dict[str, Any]) -> None:
    _open(browser, lan, "library")
    _click_action(browser, "broken-game", "download")
    browser.find_element("css selector", 'a[data-page="tasks"]').click()
    failed = _wait(
        browser,
        "broken-game failed with an error",
        lambda d: _one(d, '#finished [data-finished="broken-game"]'),
    )
    outcome = failed.find_element("css selector", ".outcome")
    assert outcome.get_attribute("data-ok") == "false"
    assert outcome.get_attribute("data-cancelled") == "false"
    assert "failed" in outcome.text
    (standing,) = ask_json(lan["leecher"], cmd="ops")["result"]["ops"]  # stays until a success
    assert standing["state"] == "failed"
    assert failed.find_element("css selector", ".error").text == standing["error"]
    hint = failed.find_element("css selector", ".hint").get_attribute("textContent")
    assert hint == (standing["hint"] or "")  # the daemon's hint, when it knows the cause
    assert _one(browser, '#ops [data-op="broken-game"]') is None  # not shown as running


def test_a_new_peer_appears_on_the_peers_page_without_a_reload(
    browser: Any, lan: dict[str, Any]
) -> None:
    _open(browser, lan, "peers")
    _wait(browser, "the seeder row", lambda d: "seeder" in d.find_element("id", "peers").text)
    browser.execute_script("window.__same_page = 'yes'")
    late = Lanpeerd(lan["home"] / "late", name="latecomer").start()
    try:
        assert lan["leecher"].cli("add-peer", f"127.0.0.1:{late.port}").rc == 0
        _wait(
            browser,
            "the latecomer row, connected",
            lambda d: any(
                "latecomer" in row.text and _one(row, '.conn[data-connected="true"]')
                for row in _css(d, "#peers .peer.row")
            ),
        )
        assert browser.execute_script("return window.__same_page") == "yes"  # no reload
        # The latecomer pulls a game from the leecher: the leecher's page shows the upload.
        wait_until(
            "the leecher's copy of broken-game offered to the latecomer",
            lambda: games_of(late).get("broken-game", {}).get("ready_peers"),
        )
        assert late.cli("download", "broken-game", "--no-install", "--wait", timeout=60).rc == 0
        upload = _wait(
            browser,
            "the upload to the latecomer",
            lambda d: _one(d, '#peers .peer.row [data-upload="broken-game"]'),
        )
        assert "uploading Broken Game" in upload.text
    finally:
        late.kill()


def test_search_and_filters(browser: Any, lan: dict[str, Any]) -> None:
    _open(browser, lan, "library")
    _wait(browser, "the cards", lambda d: len(_css(d, "article[data-game]")) >= 4)

    def shown(d: Any) -> set[str]:
        return {c.get_attribute("data-game") for c in _css(d, "#games article[data-game]")}

    search = browser.find_element("id", "search")
    search.send_keys("tiny")
    _wait(browser, "only tiny-tanks", lambda d: shown(d) == {"tiny-tanks"})
    search.send_keys("\b" * 4)  # backspaces, as a person does (clear() sends no input event)
    _wait(browser, "every game again", lambda d: len(shown(d)) >= 4)
    here = {g for g, entry in games_of(lan["leecher"]).items() if entry["downloaded"]}
    browser.find_element("css selector", '.chip[data-filter="downloaded"]').click()
    _wait(browser, "only games on this host", lambda d: shown(d) == here)
    browser.find_element("css selector", '.chip[data-filter="remote"]').click()
    remote = {g for g, entry in games_of(lan["leecher"]).items() if not entry["downloaded"]}
    _wait(browser, "only games on peers", lambda d: shown(d) == remote)
    browser.find_element("css selector", '.chip[data-filter="all"]').click()
    _wait(browser, "all games", lambda d: len(shown(d)) >= 4)


def test_doctor_page_shows_the_checks_peer_cli_shows(browser: Any, lan: dict[str, Any]) -> None:
    _open(browser, lan, "doctor")
    _wait(browser, "doctor checks", lambda d: _one(d, "#checks [data-check]"))
    checks = lan["leecher"].cli("doctor").doc
    on_page = {
        row.get_attribute("data-check"): row for row in _css(browser, "#checks [data-check]")
    }
    assert set(on_page) == {check["name"] for check in checks}
    for check in checks:
        row = on_page[check["name"]]
        assert (
            row.find_element("css selector", ".badge").get_attribute("data-status")
            == (check["status"])
        )
        if check["hint"]:
            assert row.find_element("css selector", ".hint").text == check["hint"]


def test_screenshots_of_every_page(browser: Any, lan: dict[str, Any]) -> None:
    """Not an assertion of looks: files a reviewer opens (tests/out/web/, not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    wait_until(
        "nothing running",
        lambda: all(
            op["finished_at"] for op in ask_json(lan["leecher"], cmd="ops")["result"]["ops"]
        ),
    )
    written = []
    for width, height in ((1280, 800), (360, 740), (1920, 1080)):
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        for page in ("library", "tasks", "peers", "doctor"):
            _open(browser, lan, page)
            browser.execute_script("document.getElementById('toasts').replaceChildren()")
            if page == "doctor":
                _wait(browser, "doctor checks", lambda d: _one(d, "#checks [data-check]"))
            else:
                _wait(browser, f"{page} rendered", lambda d: _one(d, "main .page:not([hidden])"))
            path = SCREENSHOTS / f"{page}-{width}x{height}.png"
            assert browser.save_screenshot(str(path))
            written.append(path)
            # Nothing may stick out sideways on a phone: the page is as wide as the window.
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{page} at {width}px scrolls sideways by {overflow}px"
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert all(p.stat().st_size > 10_000 for p in written)


def test_the_page_logged_no_script_error(browser: Any, lan: dict[str, Any]) -> None:
    """Runs last: whatever the tests above clicked, the page's own code never threw."""
    _open(browser, lan, "tasks")
    entries = browser.get_log("browser")
    errors = [
        e["message"]
        for e in entries
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]  # a 404 for a game without a cover is expected and not a script error
    assert errors == []
