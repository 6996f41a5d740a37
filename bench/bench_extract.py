"""Extraction speed: lanpeer's safe extractor vs ``bsdtar -x`` on the same archive, same run.

Builds one archive (default 1 GiB tar: large incompressible files plus many small ones), then
interleaves runs of each extractor (shuffled, after a sync) into fresh directories on the same
disk and reports median and best wall time, throughput, CPU time and the ratio to bsdtar.
Writes JSON under bench/out/.

    uv run python bench/bench_extract.py [--size-mib 1024] [--format tar|tar.gz|zip] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from lanpeer.install import ExtractLimits, extract_archive

MiB = 1024 * 1024
SMALL_FILES = 2000
SMALL_SIZE = 8 * 1024
BIG_SIZE = 32 * MiB


def payload(total: int) -> list[tuple[str, int]]:
    """(name, size) pairs: many small files, the rest in large ones."""
    small = [(f"data/small/{i:05d}.cfg", SMALL_SIZE) for i in range(SMALL_FILES)]
    left = total - SMALL_FILES * SMALL_SIZE
    big = [
        (f"data/big/{i:03d}.pak", min(BIG_SIZE, left - i * BIG_SIZE))
        for i in range(-(-left // BIG_SIZE))
    ]
    return small + big


def build_archive(path: Path, total: int, fmt: str) -> None:
    files = payload(total)
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, size in files:
                archive.writestr(name, os.urandom(size))
        return
    with tarfile.open(path, "w:gz" if fmt == "tar.gz" else "w") as tar:
        for name, size in files:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))


def timed(run: Callable[[Path], None], scratch: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) for one extraction."""
    target = scratch / "out"
    target.mkdir()
    os.sync()  # start clean: no run pays for the previous run's writeback
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    run(target)
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    shutil.rmtree(target)
    return elapsed, cpu


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def extractors(archive: Path) -> dict[str, Callable[[Path], None]]:
    bsdtar = shutil.which("bsdtar")
    runs: dict[str, Callable[[Path], None]] = {
        "lanpeer": lambda out: _lanpeer(archive, out, durable=False),
        "lanpeer (fsync each file)": lambda out: _lanpeer(archive, out, durable=True),
    }
    if bsdtar:
        runs["bsdtar -x"] = lambda out: _run([bsdtar, "-x", "-f", str(archive), "-C", str(out)])
    return runs


def _lanpeer(archive: Path, out: Path, *, durable: bool) -> None:
    extract_archive(archive, out, ExtractLimits(durable=durable))


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--format", choices=["tar", "tar.gz", "zip"], default="tar")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a tmp dir)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-extract-", dir=args.dir))
    try:
        report = bench(scratch, args.size_mib * MiB, args.format, args.runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(report)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"extract-{int(time.time())}.json").write_text(json.dumps(report, indent=2))


def bench(scratch: Path, total: int, fmt: str, runs: int) -> dict[str, object]:
    archive = scratch / f"game.{fmt}"
    started = time.perf_counter()
    build_archive(archive, total, fmt)
    built = time.perf_counter() - started
    print(f"built {archive.stat().st_size / MiB:.0f} MiB {fmt} in {built:.1f} s")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in extractors(archive)}
    order = list(extractors(archive).items())
    for _ in range(runs):  # interleave, shuffled, so load drift hits every extractor alike
        random.shuffle(order)
        for name, run in order:
            times[name].append(timed(run, scratch))
    if "bsdtar -x" not in times:
        print("bsdtar not found (apt-get install libarchive-tools): no baseline", file=sys.stderr)
    return {
        "format": fmt,
        "unpacked_bytes": total,
        "archive_bytes": archive.stat().st_size,
        "files": len(payload(total)),
        "runs": runs,
        "cpus": os.cpu_count(),
        "results": {name: summarize(values, total) for name, values in times.items()},
    }


def summarize(values: list[tuple[float, float]], total: int) -> dict[str, float]:
    walls, cpus = [wall for wall, _ in values], [cpu for _, cpu in values]
    median = statistics.median(walls)
    return {
        "median_s": median,
        "min_s": min(walls),
        "median_cpu_s": statistics.median(cpus),
        "mib_per_s": total / MiB / median,
    }


def print_table(report: dict[str, object]) -> None:
    results = report["results"]
    assert isinstance(results, dict)
    base = results.get("bsdtar -x")
    print(
        f"\n{'extractor':<28}{'median s':>10}{'min s':>8}{'MiB/s':>8}{'CPU s':>8}{'vs bsdtar':>11}"
    )
    for name, row in results.items():
        ratio = f"{row['median_s'] / base['median_s']:.2f}x" if base else "-"
        print(
            f"{name:<28}{row['median_s']:>10.2f}{row['min_s']:>8.2f}{row['mib_per_s']:>8.0f}"
            f"{row['median_cpu_s']:>8.2f}{ratio:>11}"
        )


if __name__ == "__main__":
    main()
