"""The swarm simulator (bench/swarm_sim.py) on a small party: it drives the real Planner to the
end, its shortcuts (shared have-sets, a time quantum) keep its figures, and it stays fast."""

from __future__ import annotations

from bench.swarm_sim import MiB, scenario

LINK = 125e6  # 1 GbE in bytes/s


def test_every_leecher_finishes_and_most_bytes_come_from_partial_sources() -> None:
    r = scenario(6, 96 * MiB, 4 * MiB, LINK)
    assert 0.3 < r["efficiency"] <= 1.0
    assert r["from_partial"] > 0.5  # five leechers trade what the seeder sent each
    assert r["seeder_copies"] >= 1.0  # every chunk left the seeder at least once


def test_a_quantum_batches_events_and_moves_the_last_leecher_little() -> None:
    exact = scenario(6, 96 * MiB, 4 * MiB, LINK)
    coarse = scenario(6, 96 * MiB, 4 * MiB, LINK, quantum=0.005)
    assert coarse["events"] < exact["events"]
    assert abs(coarse["last"] - exact["last"]) <= 0.05 * exact["last"]
