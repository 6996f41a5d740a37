"""peer-cli's entry point: global options anywhere, --version, and the quick road for --json
documents (same output as the full CLI, without loading typer, rich or pydantic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lanpeer_cli.entry import MAX_ANSWER_LINE, hoist_global_options
from lanpeer_proto.control import MAX_SERVER_LINE

from tests.daemon.harness import PEER_CLI, Lanpeerd

pytestmark = pytest.mark.process


def _run(*argv: str, quick: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANPEER_CLI_QUICK": "1" if quick else "0"}
    return subprocess.run(
        [PEER_CLI, *argv], capture_output=True, text=True, timeout=30, check=False, env=env
    )


@pytest.mark.parametrize("command", ["status", "peers", "games", "ops", "doctor"])
def test_quick_road_prints_what_the_full_cli_prints(shared_daemon: Lanpeerd, command: str) -> None:
    sock = str(shared_daemon.socket)
    quick = _run("--json", "--socket", sock, command)
    full = _run("--json", "--socket", sock, command, quick=False)
    assert (quick.returncode, quick.stderr) == (full.returncode, full.stderr)
    quick_doc, full_doc = json.loads(quick.stdout), json.loads(full.stdout)
    if command == "status":  # uptime-like counters may move between the two calls
        quick_doc.pop("subscribers"), full_doc.pop("subscribers")
    if command == "doctor":  # checks measure live things (rates, ages): compare their names
        quick_doc = [check["name"] for check in quick_doc]
        full_doc = [check["name"] for check in full_doc]
    assert quick_doc == full_doc


def test_quick_road_loads_neither_typer_nor_pydantic(shared_daemon: Lanpeerd) -> None:
    code = (
        "import sys\n"
        "from lanpeer_cli.entry import main\n"
        "try:\n"
        f"    main(['--json', '--socket', {str(shared_daemon.socket)!r}, 'status'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "heavy = sorted({'typer', 'pydantic', 'rich', 'click'} & set(sys.modules))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert json.loads(done.stdout)["name"] == shared_daemon.name


@pytest.mark.parametrize(
    "argv",
    [
        ("games", "--json"),  # once: "No such option: --json" (exit 2)
        ("games", "--socket", "{sock}", "--json"),
        ("--socket={sock}", "games", "--json"),
    ],
)
def test_global_options_are_accepted_anywhere(shared_daemon: Lanpeerd, argv: tuple) -> None:
    sock = str(shared_daemon.socket)
    args = [a.format(sock=sock) for a in argv]
    if "--socket" not in " ".join(args):
        args += ["--socket", sock]
    for quick in (True, False):
        done = _run(*args, quick=quick)
        assert done.returncode == 0, done.stderr
        assert isinstance(json.loads(done.stdout), list)


def test_global_options_after_the_command_on_an_operation(shared_daemon: Lanpeerd) -> None:
    done = _run("install", "no-such-game", "--json", "--socket", str(shared_daemon.socket))
    assert done.returncode == 4, done.stderr
    assert json.loads(done.stdout)["error"] == "unknown_game"


def test_hoisting_stops_at_double_dash() -> None:
    argv = ["download", "g", "--json", "--socket", "/s", "--", "--json"]
    assert hoist_global_options(argv) == [
        "--json",
        "--socket",
        "/s",
        "download",
        "g",
        "--",
        "--json",
    ]


def test_both_tools_have_version() -> None:
    cli = _run("--version")
    assert cli.returncode == 0
    assert cli.stdout.startswith("peer-cli 0.")
    full = _run("--version", "status", quick=False)  # eager: answered before any command
    assert full.returncode == 0
    assert full.stdout.startswith("peer-cli 0.")
    daemon = subprocess.run(
        [sys.executable, "-m", "lanpeer.main", "--version"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert daemon.returncode == 0
    assert daemon.stdout.startswith("lanpeerd 0.")


def test_the_quick_road_bounds_answers_like_the_full_client() -> None:
    assert MAX_ANSWER_LINE == MAX_SERVER_LINE
