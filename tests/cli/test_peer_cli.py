"""peer-cli as a subprocess against a real lanpeerd: documents, exit codes, streams."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from lanpeer_cli.main import app
from typer.testing import CliRunner

from tests.daemon.harness import PEER_CLI, Lanpeerd, ask_json, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

STATUS_FIELDS = {"peer_id", "name", "listen", "roots", "library_rev", "operations"}
OP_FIELDS = {"game_id", "kind", "state", "lane", "queue_position", "bytes_done", "bytes_total",
             "rate", "eta", "sources"}  # fmt: skip


def test_status_json_carries_the_stable_fields(shared_daemon: Lanpeerd) -> None:
    result = shared_daemon.cli("status")
    assert result.rc == 0, result.err
    doc = result.doc
    assert set(doc) >= STATUS_FIELDS
    assert doc["name"] == "alpha"
    assert doc["listen"] == f"127.0.0.1:{shared_daemon.port}"
    assert doc["roots"] == [str(shared_daemon.games)]
    assert doc["operations"] == []


def test_status_for_people_is_a_readable_summary(shared_daemon: Lanpeerd) -> None:
    result = shared_daemon.cli("status", json_output=False)
    assert result.rc == 0
    assert "alpha" in result.out
    assert f"127.0.0.1:{shared_daemon.port}" in result.out


def test_ops_json_is_a_list(shared_daemon: Lanpeerd) -> None:
    result = shared_daemon.cli("ops")
    assert result.rc == 0
    assert isinstance(result.doc, list)
    for op in result.doc:
        assert set(op) >= OP_FIELDS


def test_status_lists_which_parts_run(shared_daemon: Lanpeerd) -> None:
    parts = shared_daemon.cli("status").doc["parts"]
    assert set(parts) == {"library", "node", "downloads", "install"}


def test_doctor_reports_checks_with_hints(shared_daemon: Lanpeerd) -> None:
    result = shared_daemon.cli("doctor")
    checks = {check["name"]: check for check in result.doc}
    assert checks["daemon"]["status"] == "ok"
    assert f"root {shared_daemon.games}" in checks
    assert "interfaces" in checks
    assert checks["ports"]["status"] == "ok", checks["ports"]
    assert f"UDP {shared_daemon.port}" in checks["ports"]["summary"]
    assert result.rc in (0, 1)
    assert (result.rc == 1) == any(c["status"] == "fail" for c in result.doc)
    human = shared_daemon.cli("doctor", json_output=False)
    assert "daemon" in human.out


@pytest.mark.parametrize(
    "args",
    [("install", "Not A Game"), ("add-peer", "no-port"), ("no-such-command",), ("download",)],
    ids=str,
)
def test_usage_errors_exit_2(args: tuple) -> None:
    """Checked before any connection is made, so in-process (typer's runner) is faithful."""
    result = CliRunner().invoke(app, ["--socket", "/nonexistent", "--json", *args])
    assert result.exit_code == 2, result.output


def test_unknown_game_exits_4(shared_daemon: Lanpeerd) -> None:
    result = shared_daemon.cli("cancel", "no-such-game")
    assert result.rc == 4
    assert result.doc["error"] == "unknown_game"


def test_missing_daemon_exits_3_and_says_how_to_start_it(tmp_path: Path) -> None:
    result = Lanpeerd(tmp_path).cli("status")
    assert result.rc == 3
    assert result.doc["error"] == "unreachable"
    assert "lanpeerd" in result.err
    assert "systemctl --user start lanpeerd" in result.err


def test_watch_streams_until_the_daemon_shuts_down(daemon: Lanpeerd) -> None:
    watch = subprocess.Popen(
        [PEER_CLI, "--socket", str(daemon.socket), "--json", "watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_subscriber(daemon)
        assert daemon.cli("shutdown").rc == 0
        watch.communicate(timeout=20)
        assert watch.returncode == 0
    finally:
        watch.kill()
    assert daemon.proc is not None
    assert daemon.proc.wait(20) == 0
    assert not daemon.socket.exists()


def _wait_for_subscriber(daemon: Lanpeerd) -> None:
    """Bounded poll of status until the watch client is subscribed."""
    wait_until(
        "peer-cli watch to subscribe",
        lambda: ask_json(daemon, cmd="status")["result"]["subscribers"] >= 1,
        timeout=20,
    )


def test_shutdown_stops_the_daemon_with_exit_0(daemon: Lanpeerd) -> None:
    result = daemon.cli("shutdown")
    assert result.rc == 0
    assert result.doc["ok"] is True
    assert daemon.proc is not None
    assert daemon.proc.wait(20) == 0
    assert daemon.cli("status").rc == 3


def test_shell_completion_is_offered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.output


def test_rescan_then_a_refused_operation_exits_1(shared_daemon: Lanpeerd) -> None:
    """A game dir without version.ini is on this host but not downloaded: install fails (1)."""
    half = shared_daemon.games / "half-done"
    half.mkdir(exist_ok=True)
    (half / "data.eti").write_bytes(b"partial")
    rescan = shared_daemon.cli("rescan")
    assert rescan.rc == 0, rescan.err
    assert rescan.doc["ok"] is True
    result = shared_daemon.cli("install", "half-done")
    assert result.rc == 1, result.err
    assert result.doc["error"] == "failed"
    assert "not downloaded" in result.err


def test_a_failed_transaction_ends_its_stream_with_ok_false_and_exit_1(
    shared_daemon: Lanpeerd,
) -> None:
    broken = shared_daemon.games / "broken-game"
    broken.mkdir(exist_ok=True)
    (broken / "data.eti").write_bytes(b"this is not an archive" * 100)
    (broken / "version.ini").write_text("version=1.0\n")
    assert shared_daemon.cli("rescan").rc == 0
    result = shared_daemon.cli("install", "broken-game")
    assert result.rc == 1, result.out + result.err
    last = result.lines[-1]
    assert last["event"] == "finished"
    assert last["ok"] is False
    assert last["error"]
    assert not (broken / "local").exists()


def test_a_tar_with_zeroed_head_fails_to_install_instead_of_installing_nothing(
    shared_daemon: Lanpeerd,
) -> None:
    """Its first 4 KiB of zeros read as "end of archive": once an empty local/ and exit 0."""
    game = shared_daemon.games / "zeroed-tar"
    game.mkdir(exist_ok=True)
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        for n in range(8):
            data = bytes([n + 1]) * 3000
            info = tarfile.TarInfo(f"file{n}.dat")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    damaged = b"\0" * 4096 + payload.getvalue()[4096:]
    (game / "data.eti").write_bytes(damaged)
    (game / "version.ini").write_text("version=1.0\n")
    assert shared_daemon.cli("rescan").rc == 0
    result = shared_daemon.cli("install", "zeroed-tar")
    assert result.rc == 1, result.out + result.err
    assert "holds no files" in result.lines[-1]["error"]
    assert not (game / "local").exists()


def test_a_bad_game_id_gets_words_and_a_guess_not_a_regex() -> None:
    result = CliRunner().invoke(app, ["--socket", "/nonexistent", "install", "Neon Racer"])
    assert result.exit_code == 2
    assert "did you mean neon-racer?" in result.output
    assert "pattern" not in result.output


@pytest.mark.process
def test_tab_completes_game_ids_from_the_daemon(shared_daemon: Lanpeerd) -> None:
    for game_id in ("comp-alpha", "comp-beta", "other-game"):
        (shared_daemon.games / game_id).mkdir(exist_ok=True)
    assert shared_daemon.cli("rescan").rc == 0
    env = {
        **os.environ,
        "_PEER_CLI_COMPLETE": "complete_bash",
        "COMP_WORDS": f"peer-cli --socket {shared_daemon.socket} install comp",
        "COMP_CWORD": "4",
        "LANPEER_SOCKET": str(shared_daemon.socket),
    }
    done = subprocess.run([PEER_CLI], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["comp-alpha", "comp-beta"]
    # answered without typer (the quick road): the same ids, for --json anywhere too
    code = (
        "import sys\n"
        "from lanpeer_cli.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TYPER' if 'typer' in sys.modules else 'QUICK', file=sys.stderr)\n"
    )
    env["COMP_WORDS"] = f"peer-cli --json --socket {shared_daemon.socket} game comp"
    env["COMP_CWORD"] = "5"
    quick = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
    assert quick.stdout.split() == ["comp-alpha", "comp-beta"]
    assert "QUICK" in quick.stderr


_QUICK_OR_TYPER = (
    "import sys\n"
    "from lanpeer_cli.entry import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exit:\n"
    "    code = exit.code\n"
    "print('TYPER' if 'typer' in sys.modules else 'QUICK', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@pytest.mark.process
@pytest.mark.parametrize(
    ("shell", "action", "typed"),
    [
        ("zsh", None, "install comp"),
        ("zsh", None, "game zzz"),  # nothing matches: zsh completes files
        ("fish", "get-args", "--json remove comp"),
        ("fish", "is-args", "download zzz"),  # nothing matches: exit 1, fish completes files
    ],
)
def test_zsh_and_fish_tab_complete_game_ids_without_typer_as_typer_does(
    shared_daemon: Lanpeerd, shell: str, action: str | None, typed: str
) -> None:
    """Once: zsh and fish completion went through typer (~0.5 s); bash alone took the quick
    road. The quick answer is byte for byte what typer answers (LANPEER_CLI_QUICK=0)."""
    for game_id in ("comp-alpha", "comp-beta", "other-game"):
        (shared_daemon.games / game_id).mkdir(exist_ok=True)
    assert shared_daemon.cli("rescan").rc == 0
    env = {
        **os.environ,
        "_PEER_CLI_COMPLETE": f"complete_{shell}",
        "_TYPER_COMPLETE_ARGS": f"peer-cli --socket {shared_daemon.socket} {typed}",
        **({"_TYPER_COMPLETE_FISH_ACTION": action} if action else {}),
    }
    quick = subprocess.run([sys.executable, "-c", _QUICK_OR_TYPER], env=env,
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    full = subprocess.run([PEER_CLI], env={**env, "LANPEER_CLI_QUICK": "0"},
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "QUICK" in quick.stderr
    assert (quick.returncode, quick.stdout) == (full.returncode, full.stdout)
    if "comp" in typed:
        assert "comp-alpha" in quick.stdout
        assert "comp-beta" in quick.stdout
        assert "other-game" not in quick.stdout


@pytest.mark.process
def test_install_reports_progress_in_bytes_of_the_total(shared_daemon: Lanpeerd) -> None:
    """Once: installs showed `0 B/0 B` and a bar frozen at 100 %."""
    from lanpeer.library.samples import generate_game

    game = generate_game(shared_daemon.games, "progress-game", 24 << 20, seed=11, archives=2)
    total = sum(p.stat().st_size for p in game.glob("*.eti"))
    assert shared_daemon.cli("rescan").rc == 0
    result = shared_daemon.cli("install", "progress-game")
    assert result.rc == 0, result.err
    progress = [e for e in result.lines if e["event"] == "progress" and e["bytes_total"]]
    assert progress, result.out
    assert {(e["kind"], e["state"]) for e in progress} == {("install", "installing")}
    assert {e["bytes_total"] for e in progress} == {total}
    done = [e["bytes_done"] for e in progress]
    assert done == sorted(done)
    assert 0 < done[-1] <= total
    assert any(e["rate"] > 0 for e in progress)
    finished = result.lines[-1]
    assert (finished["event"], finished["bytes"]) == ("finished", total)  # all of it
    local = sum(p.stat().st_size for p in (game / "local").rglob("*") if p.is_file())
    removed = shared_daemon.cli("uninstall", "progress-game")
    assert removed.rc == 0, removed.err
    deleting = [e for e in removed.lines if e["event"] == "progress" and e["bytes_total"]]
    assert {(e["kind"], e["bytes_total"]) for e in deleting} <= {("uninstall", local)}
    assert (removed.lines[-1]["event"], removed.lines[-1]["bytes"]) == ("finished", local)
