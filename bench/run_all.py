"""The whole benchmark suite in one command: earlier benches, then the namespace-link benches.

    uv run python bench/run_all.py [--size-mib 128] [--full] [--skip-earlier]

Runs bench_library, bench_transfer, bench_download and bench_extract as subprocesses (small
sizes by default, the issue sizes with --full; a missing one is noted, not fatal), then on a
1500-MTU veth link between two namespaces: lanpeer (1 peer, bulk path) vs a raw TCP sendfile
copy, the QUIC-only path (``--bulk quic``) vs the bulk path, and a race against Syncthing on the
same game. Prints one table and writes bench/out/run_all.json. Not run by tests; never times CI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bench_syncthing, lanlab  # noqa: E402

OUT = ROOT / "bench" / "out"
MiB = 1 << 20
#: name -> (small arguments, issue-size arguments)
EARLIER = {
    "bench_library": (["--hash-mib", "64", "--games", "200", "--game-kib", "16"], []),
    "bench_transfer": (["--size", "64"], []),
    "bench_download": (["--size", "64"], []),
    "bench_extract": (["--size-mib", "64", "--runs", "1"], []),
}
SIZE_FLAGS = ("--size-mib", "--size", "--mib")


def _size_flag(script: Path) -> list[str]:
    """Small-size arguments for a bench whose flags we do not know yet."""
    helptext = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                              text=True, timeout=60, check=False).stdout  # fmt: skip
    for flag in SIZE_FLAGS:
        if flag in helptext:
            return [flag, "64"]
    return []


def run_earlier(full: bool) -> list[dict[str, Any]]:
    rows = []
    for name, (small, big) in EARLIER.items():
        script = ROOT / "bench" / f"{name}.py"
        if not script.is_file():
            rows.append({"bench": name, "status": "missing", "note": f"{script.name} not in tree"})
            continue
        args = big if full else (small if small is not None else _size_flag(script))
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=3600, check=False)  # fmt: skip
        print(f"\n===== {name} {' '.join(args)} (exit {done.returncode})\n{done.stdout}")
        if done.returncode != 0:
            print(done.stderr[-2000:])
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
        rows.append({"bench": name, "args": args, "status": status,
                     "seconds": time.monotonic() - started})  # fmt: skip
    return rows


def _guarded(label: str, measure: Any, *args: Any) -> dict[str, Any]:
    print(f"measuring: {label} ...", flush=True)
    try:
        result = dict(measure(*args))
    except Exception as exc:  # a failed bench is a row in the table, not a crash
        result = {"failed": f"{type(exc).__name__}: {exc}"}
    return {"case": label, **result}


def run_link(size_mib: int, quic_mib: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="lpbench") as tmp:
        work = Path(tmp)
        game = lanlab.make_game(work / "big", "linkgame", size_mib)
        small = lanlab.make_game(work / "small", "quicgame", quic_mib)
        rows = [
            _guarded(
                f"raw TCP sendfile to /dev/null, {size_mib} MiB",
                lanlab.sendfile_copy,
                game,
                work,
                False,
            ),
            _guarded(f"raw TCP sendfile, {size_mib} MiB", lanlab.sendfile_copy, game, work),
            _guarded(f"lanpeer 1 peer (bulk), {size_mib} MiB", lanlab.lanpeer_copy, game, "auto"),
            _guarded(f"lanpeer bulk path, {quic_mib} MiB", lanlab.lanpeer_copy, small, "auto"),
            _guarded(f"lanpeer QUIC-only, {quic_mib} MiB", lanlab.lanpeer_copy, small, "quic"),
        ]
        reason = bench_syncthing.missing()
        lab, why = lanlab.lab_or_reason(2)
        if reason or lab is None:
            rows.append({"case": f"syncthing, {size_mib} MiB", "skipped": reason or why})
        else:
            with lab:
                rows.append(_guarded(f"syncthing, {size_mib} MiB", bench_syncthing.race,
                                     lab, game, work))  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'case':<38} {'MiB/s':>9} {'seconds':>9} {'CPU-s':>8} {'CPU-s/GiB':>10}  note"]
    for row in rows:
        if "seconds" not in row:
            note = row.get("skipped") or row.get("failed") or ""
            lines.append(f"{row['case']:<38} {'-':>9} {'-':>9} {'-':>8} {'-':>10}  {note}")
            continue
        mib = row["bytes"] / MiB
        rate = mib / row["seconds"] if row["seconds"] > 0 else float("inf")
        per_gib = row["cpu_s"] / (mib / 1024) if mib else 0.0
        lines.append(f"{row['case']:<38} {rate:>9.1f} {row['seconds']:>9.2f} "
                     f"{row['cpu_s']:>8.2f} {per_gib:>10.1f}  {row.get('note', '')}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="issue sizes (2 GiB game, etc.)")
    parser.add_argument("--size-mib", type=int, default=None, help="link game size (def. 128)")
    parser.add_argument("--quic-mib", type=int, default=None, help="QUIC vs bulk size (def. 32)")
    parser.add_argument("--skip-earlier", action="store_true", help="only the link benches")
    args = parser.parse_args()
    size = args.size_mib or (2048 if args.full else 128)
    quic = args.quic_mib or (256 if args.full else 32)
    earlier = [] if args.skip_earlier else run_earlier(args.full)
    link = run_link(size, quic)
    print("\n===== lanpeer vs baselines on a 1500-MTU veth link between two namespaces")
    print(table(link))
    for row in earlier:
        print(f"earlier bench {row['bench']}: {row['status']} {row.get('note', '')}")
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"size_mib": size, "quic_mib": quic, "earlier": earlier, "link": link}
    (OUT / "run_all.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {OUT / 'run_all.json'}")


if __name__ == "__main__":
    main()
