"""The sans-IO Planner on a fake clock: plain numbers for ``now``, no sockets, no sleeps.

Covers SPEC §7 timing (backoff 1/2/4 s, the 4th failure dropping a peer, endgame after 1 s, the
stall clock) and §7a selection (rarest first over have-sets, random tie-break, full seeders
preferring chunks no partial source holds, partial sources asked only for what they hold, the
nearest holder asked first).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from lanpeer.download.plan import ChunkRef
from lanpeer.download.planner import HaveSet, Outcome, Planner, SchedulerSettings, rtt_tiers

CHUNK = 1 << 20


def chunks(n: int) -> list[ChunkRef]:
    return [ChunkRef("data", i, i * CHUNK, CHUNK, bytes([i % 256]) * 32) for i in range(n)]


def planner(n: int, seed: int = 1, **settings: float) -> tuple[Planner, list[ChunkRef]]:
    refs = chunks(n)
    return Planner(refs, SchedulerSettings(**settings), random.Random(seed)), refs  # type: ignore[arg-type]


def picks(p: Planner, now: float) -> list[tuple[str, ChunkRef]]:
    return [(lane.peer_id, chunk) for lane, chunk in p.next_requests(now)]


def finish(p: Planner, peer: str, chunk: ChunkRef, outcome: Outcome, now: float) -> None:
    p.done(p.lanes[peer], chunk, outcome, now)


def test_rarest_first_over_have_sets_and_the_seeder_takes_what_no_partial_holds() -> None:
    p, c = planner(4)
    # Four partial sources: c0 held by 3, c1 by 2, c2 by 1, c3 by none; one full seeder.
    p.set_sources({
        "seed": None,
        "a": HaveSet([c[0], c[1], c[2]]),
        "b": HaveSet([c[0], c[1]]),
        "d": HaveSet([c[0]]),
    })  # fmt: skip
    assert [p.holders(x) for x in c] == [3, 2, 1, 0]
    got = dict(picks(p, 0.0))  # each new lane gets one request until it proved itself
    assert got["seed"] == c[3]
    assert got["a"] == c[2]
    assert got["b"] == c[1]
    assert got["d"] == c[0]


def test_partial_sources_are_asked_only_for_what_they_hold() -> None:
    p, c = planner(8)
    p.set_sources({"a": HaveSet([c[5]])})
    assert picks(p, 0.0) == [("a", c[5])]
    finish(p, "a", c[5], Outcome.VERIFIED, 0.1)
    assert picks(p, 0.2) == []  # a holds nothing else we need
    p.lanes["a"].haves.add(c[6])  # type: ignore[union-attr]  # an increment arrives
    p.sync_haves()
    assert picks(p, 0.3) == [("a", c[6])]


def test_increments_are_counted_once_and_a_left_source_is_uncounted() -> None:
    p, c = planner(3)
    haves = HaveSet([c[0]])
    p.set_sources({"a": haves})
    haves.add(c[1])
    p.sync_haves()
    p.sync_haves()
    assert [p.holders(x) for x in c] == [1, 1, 0]
    p.set_sources({})
    assert [p.holders(x) for x in c] == [0, 0, 0]


def test_random_tie_break_spreads_first_requests() -> None:
    first = set()
    for seed in range(20):
        p, _c = planner(16, seed=seed)
        p.set_sources({"seed": None})
        [(_, chunk)] = picks(p, 0.0)
        first.add(chunk.index)
    assert len(first) > 4  # leechers with the same view still ask for different chunks


def test_same_seed_same_choice() -> None:
    runs = []
    for _ in range(2):
        p, _c = planner(16, seed=7)
        p.set_sources({"seed": None})
        runs.append(picks(p, 0.0))
    assert runs[0] == runs[1]


def test_backoff_1_2_4_then_the_4th_failure_drops_the_peer() -> None:
    p, _c = planner(4)
    p.set_sources({"a": None})
    now = 0.0
    for wait in (1.0, 2.0, 4.0):
        [(peer, chunk)] = picks(p, now)
        finish(p, peer, chunk, Outcome.FAILED, now)
        assert p.lanes["a"].retry_at == pytest.approx(now + wait)
        assert picks(p, now + wait - 0.01) == []  # still backing off
        now += wait
    [(peer, chunk)] = picks(p, now)
    finish(p, peer, chunk, Outcome.FAILED, now)
    assert p.lanes["a"].gone
    assert picks(p, now + 100) == []
    p.set_sources({"a": None}, fresh=["a"])  # a new session: another chance
    assert len(picks(p, now + 100)) == 1


def test_failures_of_one_outage_count_once() -> None:
    p, _c = planner(4)
    p.set_sources({"a": None})
    [(peer, chunk)] = picks(p, 0.0)
    finish(p, peer, chunk, Outcome.VERIFIED, 0.0)
    requests = picks(p, 0.1)  # proven: a deeper pipeline
    assert len(requests) >= 2
    for peer, chunk in requests:
        finish(p, peer, chunk, Outcome.FAILED, 0.2)
    assert p.lanes["a"].failures == 1


def test_endgame_copy_only_after_one_second_and_at_most_two() -> None:
    p, _c = planner(1, endgame_after=1.0)
    p.set_sources({"a": None, "b": None, "d": None})
    [(first, chunk)] = picks(p, 0.0)
    p.asked(chunk, 0.0)
    assert picks(p, 0.99) == []
    assert p.deadline(0.5) == pytest.approx(0.5)  # wake at the endgame time
    copies = picks(p, 1.0)
    assert len(copies) == 1  # endgame_copies = 2 in all
    assert copies[0][0] != first
    finish(p, copies[0][0], chunk, Outcome.VERIFIED, 1.1)
    finish(p, first, chunk, Outcome.CANCELLED, 1.1)
    assert not p.remaining


def test_stall_clock_and_its_deadline() -> None:
    p, c = planner(2, stall_timeout=30.0)
    p.set_sources({})
    assert p.stalled(10.0)
    assert p.stalled_for(25.0) == pytest.approx(15.0)
    assert p.deadline(25.0) == pytest.approx(5.0)
    p.set_sources({"a": HaveSet()})  # a partial source holding nothing useful: still stalled
    assert p.stalled(26.0)
    p.set_sources({"a": HaveSet([c[0]])})
    assert not p.stalled(27.0)
    assert p.stalled_for(27.0) == 0.0


def test_a_mismatch_bans_the_peer_and_requeues_the_chunk() -> None:
    p, c = planner(2)
    p.set_sources({"bad": HaveSet(c), "good": None})
    requests = dict(picks(p, 0.0))
    finish(p, "bad", requests["bad"], Outcome.MISMATCH, 0.1)
    assert p.lanes["bad"].banned
    assert [p.holders(x) for x in c if x in p.remaining] == [0, 0]
    finish(p, "good", requests["good"], Outcome.VERIFIED, 0.2)
    assert [peer for peer, _ in picks(p, 0.3)] == ["good"]


def test_pipeline_depth_follows_measured_throughput() -> None:
    p, _c = planner(64, target_latency=0.25, max_depth=16)
    p.set_sources({"fast": None})
    now = 0.0
    for _ in range(20):  # 20 chunks of 1 MiB in one second: ~20 MiB/s
        for peer, chunk in picks(p, now):
            finish(p, peer, chunk, Outcome.VERIFIED, now)
        now += 0.05
    lane = p.lanes["fast"]
    assert lane.depth(now, CHUNK, p.settings) >= 5  # ~20 MiB/s x 0.25 s / 1 MiB + 1


def test_a_chunk_another_downloader_fetches_counts_as_held() -> None:
    p, c = planner(3)
    other = HaveSet()
    other.fetching = frozenset([c[0], c[1]])
    p.set_sources({"seed": None, "b": other})
    assert picks(p, 0.0) == [("seed", c[2])]  # b holds nothing yet, but will hold c0 and c1
    other.fetching = frozenset()
    p.sync_haves()
    finish(p, "seed", c[2], Outcome.CANCELLED, 0.1)
    assert [p.holders(x) for x in c] == [0, 0, 0]


def test_no_endgame_copy_of_a_chunk_still_coming_at_its_sources_pace() -> None:
    p, c = planner(1, endgame_after=1.0)
    p.set_sources({"slow": None, "idle": None})
    p.lanes["slow"].window.add(3.0, CHUNK)  # measured: "slow" moves a chunk in ~1.5 s
    assert picks(p, 3.0) == [("slow", c[0])]  # the faster lane picks first
    p.asked(c[0], 3.0)
    # 1.5 s out: past endgame_after, but not past twice the time "slow" needs per chunk.
    assert picks(p, 4.5) == []
    assert [peer for peer, _ in picks(p, 9.0)] == ["idle"]  # "slow" went quiet: a copy


def test_a_lane_that_had_nothing_to_give_is_asked_again_after_a_requeue_or_news() -> None:
    p, c = planner(3)
    a_haves, b_haves = HaveSet([c[0]]), HaveSet([c[0]])
    p.set_sources({"a": a_haves, "b": b_haves})
    [(first, chunk)] = picks(p, 0.0)  # one lane takes c0; the other holds nothing else
    other = "b" if first == "a" else "a"
    assert chunk == c[0]
    assert picks(p, 0.1) == []
    finish(p, first, c[0], Outcome.FAILED, 0.2)  # c0 back in the queue, its lane backs off
    assert picks(p, 0.3) == [(other, c[0])]
    (a_haves if other == "a" else b_haves).add(c[1])  # news: the busy lane now holds c1
    p.sync_haves()
    finish(p, other, c[0], Outcome.VERIFIED, 0.4)
    assert picks(p, 0.5) == [(other, c[1])]


def test_a_busy_full_seeder_is_asked_only_for_chunks_no_partial_source_holds_or_fetches() -> None:
    p, c = planner(6)
    fetcher = HaveSet()
    fetcher.fetching = frozenset([c[3]])  # b is fetching c3 (from the seeder, say)
    p.set_sources({"seed": None, "a": HaveSet(c[:3]), "b": fetcher})
    seed = p.lanes["seed"]
    seed.verified = 1
    seed.window.add(0.0, 64 * CHUNK)  # proven and fast: a deep pipeline (up to 16)
    got = picks(p, 0.0)
    assert sorted(x.index for peer, x in got if peer == "seed") == [4, 5]
    assert [peer for peer, _ in got].count("a") == 1  # a new lane: one request, a held chunk
    for peer, x in got:
        if peer == "seed":
            finish(p, peer, x, Outcome.VERIFIED, 0.1)
    # Idle, and everything left is held or on its way elsewhere: one request, no more, so a
    # slow partial holder cannot hold the download up.
    again = [x for peer, x in picks(p, 0.2) if peer == "seed"]
    assert len(again) == 1
    assert all(peer != "seed" for peer, _ in picks(p, 0.3))


def test_a_partial_source_dropped_or_gone_no_longer_counts_as_a_holder() -> None:
    p, c = planner(2)
    p.set_sources({"a": HaveSet([c[0]]), "b": HaveSet([c[1]])})
    assert sorted(picks(p, 0.0)) == [("a", c[0]), ("b", c[1])]
    now = 0.0
    for _ in range(4):  # the 4th failure in a row drops a
        finish(p, "a", c[0], Outcome.FAILED, now)
        now += 10.0
        assert picks(p, now) == ([("a", c[0])] if not p.lanes["a"].gone else [])
    assert p.lanes["a"].gone
    assert p.holders(c[0]) == 0  # so a seeder may be asked for it again
    finish(p, "b", c[1], Outcome.GONE, now)  # a typed refusal: b stopped serving
    assert p.holders(c[1]) == 0


def two_holders(rtt_near: float | None, rtt_far: float | None) -> tuple[Planner, list[ChunkRef]]:
    """Partial sources "near" and "far" both holding c0 and c1 (c0 the rarer: "x" holds c1
    too); "far" is measured faster, so by rate alone it would choose first."""
    p, c = planner(2)
    p.set_sources({"near": HaveSet(c), "far": HaveSet(c), "x": HaveSet([c[1]])})
    p.lanes["x"].listed = False  # counted as a holder of c1, never asked
    for peer, mib in (("near", 1), ("far", 8)):
        lane = p.lanes[peer]
        lane.window.add(0.0, mib * CHUNK)
        lane.verified = 1
    p.set_rtt("near", rtt_near)
    p.set_rtt("far", rtt_far)
    return p, c


def test_the_nearest_holder_of_a_rare_chunk_is_asked_for_it() -> None:
    p, c = two_holders(0.0004, 0.012)  # same switch vs across the uplinks
    p.settings.max_depth = p.settings.min_depth = 1  # one request each
    assert picks(p, 1.0) == [("near", c[0]), ("far", c[1])]


def test_a_far_holder_gets_work_when_the_near_one_is_saturated() -> None:
    p, c = two_holders(0.0004, 0.012)
    p.settings.max_depth = p.settings.min_depth = 1
    p.lanes["near"].in_flight = 1  # its pipeline is full
    assert picks(p, 1.0) == [("far", c[0])]


def test_a_far_full_seeder_that_is_the_only_holder_is_not_starved() -> None:
    p, c = planner(2)
    p.set_sources({"near": HaveSet([c[0]]), "seed": None})
    p.set_rtt("near", 0.0003)
    p.set_rtt("seed", 0.05)
    assert dict(picks(p, 0.0)) == {"near": c[0], "seed": c[1]}


def test_rtts_in_one_tier_leave_the_rate_order_unchanged() -> None:
    p, c = two_holders(0.0009, 0.0004)  # LAN noise: both under 2 ms
    p.settings.max_depth = p.settings.min_depth = 1
    assert picks(p, 1.0) == [("far", c[0]), ("near", c[1])]  # the faster chooses first


def test_no_rtt_known_or_lan_noise_chooses_exactly_as_before() -> None:
    def run(rtts: str) -> list[tuple[str, ChunkRef]]:
        noise = random.Random(3)
        p, _ = planner(40, seed=7)
        sources = {f"p{i}": HaveSet(_[i::3]) for i in range(3)} | {"seed": None}
        p.set_sources(sources)  # type: ignore[arg-type]
        out = []
        for step in range(30):
            now = step * 0.1
            for peer in sources:
                if rtts == "unknown":
                    p.set_rtt(peer, None)
                elif rtts == "noise":  # one LAN: 0.1-2 ms, a new sample every turn
                    p.set_rtt(peer, noise.uniform(0.0001, 0.002))
            for peer, chunk in picks(p, now):
                out.append((peer, chunk))
                finish(p, peer, chunk, Outcome.VERIFIED, now + 0.05)
        return out

    p, _ = two_holders(None, None)
    p.settings.max_depth = p.settings.min_depth = 1
    assert picks(p, 1.0)[0][0] == "far"  # unknown RTT: rate alone decides
    assert run("unknown") == run("never set") == run("noise")


def test_rtt_tiers_are_coarse() -> None:
    assert rtt_tiers([]) == {}
    assert rtt_tiers([0.0002, 0.0019]) == {0.0002: 0, 0.0019: 0}  # one switch, noise
    assert rtt_tiers([0.003, 0.0059, 0.0061, 0.013]) == {0.003: 0, 0.0059: 0, 0.0061: 1, 0.013: 2}
    assert rtt_tiers([None, 0.01]) == {0.01: 0}


def test_chunk_ref_keeps_field_equality_with_its_cached_hash() -> None:
    """The hash is computed once (a speed-up measured in bench/swarm_sim.py); equality, repr
    and ``replace`` stay the five fields' and the hash follows ``replace``."""
    a = ChunkRef("data", 0, 0, CHUNK, bytes(32))
    same = ChunkRef("data", 0, 0, CHUNK, bytes(32))
    other_digest = ChunkRef("data", 0, 0, CHUNK, bytes([1]) * 32)
    assert a == same
    assert hash(a) == hash(same) == hash(("data", 0))
    assert a != other_digest
    assert hash(a) == hash(other_digest)
    assert "_hash" not in repr(a)
    assert repr(a).startswith("ChunkRef(path='data', index=0,")
    moved = dataclasses.replace(a, offset=CHUNK)
    assert hash(moved) == hash(("data", CHUNK))
    assert moved != a
    assert {a: 1}[same] == 1
    assert len({a, same, moved}) == 2
