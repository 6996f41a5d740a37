"""peer-cli start-up: ``peer-cli --json status`` against ``python -c pass``, same run.

Starts one lanpeerd on loopback (mDNS off, empty library), then interleaves runs of: a bare
interpreter, the quick road (``lanpeer_cli.entry``, stdlib only), the full CLI
(``LANPEER_CLI_QUICK=0``: typer + pydantic models), ``peer-cli --version`` and TAB completion
of a game id in bash, zsh and fish, quick road and typer. Reports median,
best and p90 wall time of each, and each minus the bare interpreter. Wall time on a shared
machine is noisy: read the columns side by side, not alone. Writes JSON under bench/out/.

    uv run python bench/bench_cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
OUT = Path(__file__).parent / "out"


def start_daemon(home: Path) -> subprocess.Popen[bytes]:
    sock = home / "control.sock"
    argv = [sys.executable, "-m", "lanpeer.main", "--games", str(home / "games"),
            "--state", str(home / "state"), "--socket", str(sock), "--port", "0",
            "--bind", "127.0.0.1", "--no-mdns", "--name", "bench"]  # fmt: skip
    (home / "games").mkdir(parents=True)
    for game_id in ("bench-alpha", "bench-beta", "other-game"):  # ids for TAB to complete
        (home / "games" / game_id).mkdir()
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock))
                return proc
        except OSError:
            time.sleep(0.05)  # readiness poll, bounded by the deadline
    proc.kill()
    raise SystemExit("lanpeerd did not start in 30 s")


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanpeer-bench-cli-") as tmp:
        home = Path(tmp)
        daemon = start_daemon(home)
        try:
            rows = measure(home / "control.sock", args.runs)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(15)
    report(rows, args.runs)


def measure(sock: Path, runs: int) -> dict[str, list[float]]:
    cli = str(BIN / "peer-cli")
    env = dict(os.environ)
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "peer-cli --json status": ([cli, "--json", "--socket", str(sock), "status"], env),
        "same, full CLI (no quick road)": (
            [cli, "--json", "--socket", str(sock), "status"],
            {**env, "LANPEER_CLI_QUICK": "0"},
        ),
        "peer-cli --version": ([cli, "--version"], env),
    }
    # TAB after `install ` (game ids from `games`), as each shell's typer script asks it.
    line = f"peer-cli --socket {sock} install "
    bash = {"COMP_WORDS": line, "COMP_CWORD": "4"}
    typer_line = {"_TYPER_COMPLETE_ARGS": line}
    fish = {**typer_line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    for shell, asked in (("bash", bash), ("zsh", typer_line), ("fish", fish)):
        shell_env = {**env, **asked, "_PEER_CLI_COMPLETE": f"complete_{shell}"}
        cases[f"TAB {shell} (quick road)"] = ([cli], shell_env)
        cases[f"TAB {shell}, typer (no quick road)"] = (
            [cli],
            {**shell_env, "LANPEER_CLI_QUICK": "0"},
        )
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        order = list(cases.items())
        random.shuffle(order)  # interleaved: machine load hits every case alike
        for name, (argv, case_env) in order:
            times[name].append(timed(argv, case_env))
    return times


def report(times: dict[str, list[float]], runs: int) -> None:
    base = statistics.median(times["python -c pass"])
    print(f"{'case':36} {'median':>8} {'best':>8} {'p90':>8} {'- python':>9}   ({runs} runs)")
    results = {}
    for name, values in times.items():
        values.sort()
        median = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(
            f"{name:36} {median * 1000:6.0f}ms {values[0] * 1000:6.0f}ms {p90 * 1000:6.0f}ms "
            f"{(median - base) * 1000:7.0f}ms"
        )
        results[name] = {"median_s": median, "best_s": values[0], "p90_s": p90}
    OUT.mkdir(exist_ok=True)
    (OUT / "cli_startup.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
