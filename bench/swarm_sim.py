"""A swarm simulator that drives the real ``Planner`` (lanpeer/download/planner.py).

Hosts have link capacities (up and down); one or more seeders hold the whole game; leechers join
at given times, may leave, may be slow. Each leecher runs its own Planner with its own random
tie-break; a request is a flow from source to downloader, and the flows sharing a link share it
by max-min fairness (recomputed at every event). A verified chunk reaches the other downloaders'
have-sets ``have_delay`` seconds later (the debounce plus a round trip). Prints the efficiency:
ideal time (``size / link``) over the time of the last leecher.

    uv run python -m bench.swarm_sim                    # 10, 50, 200 hosts, 20 GiB, 1 GbE
    uv run python -m bench.swarm_sim --hosts 10 --chunk-mib 4 --slow 1 --vanish 1

Not a test: a model. It has no TCP slow start, no disk and no CPU; it shows what the planner's
choices cost when links are the only limit.
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from dataclasses import dataclass, field

from lanpeer.download.plan import ChunkRef
from lanpeer.download.planner import HaveSet, Lane, Outcome, Planner, SchedulerSettings

GiB = 1 << 30
MiB = 1 << 20


@dataclass(eq=False)
class Host:
    name: str
    up: float  # bytes/s
    down: float
    seeder: bool = False
    join: float = 0.0
    leave: float | None = None  # vanishes at this time (a crash: its flows fail)
    planner: Planner | None = None
    holds: HaveSet = field(default_factory=HaveSet)
    views: dict[str, HaveSet] = field(default_factory=dict)  # what it knows others hold
    done_at: float | None = None
    fetching: frozenset[ChunkRef] = frozenset()
    from_partial: int = 0
    received: int = 0
    sent: int = 0  # verified bytes others received from this host


@dataclass(eq=False)
class Flow:
    src: Host
    dst: Host
    lane: Lane
    chunk: ChunkRef
    left: float
    rate: float = 0.0


class Sim:
    def __init__(self, hosts: list[Host], chunks: list[ChunkRef], have_delay: float,
                 settings: SchedulerSettings, seed: int,
                 upload_slots: int = 1 << 30, announce_fetching: bool = True) -> None:  # fmt: skip
        self.hosts, self.chunks, self.have_delay = hosts, chunks, have_delay
        self.settings, self.rng = settings, random.Random(seed)
        self.now = 0.0
        self.upload_slots = upload_slots
        self.announce_fetching = announce_fetching
        self.flows: list[Flow] = []
        self.pending_haves: list[tuple[float, int, str, ChunkRef]] = []  # (at, seq, holder, c)
        self._seq = 0
        for h in hosts:
            if h.seeder:
                h.holds = HaveSet(chunks)
        self.by_name = {h.name: h for h in hosts}

    def alive(self, h: Host) -> bool:
        return self.now >= h.join and (h.leave is None or self.now < h.leave)

    def start(self, h: Host) -> None:
        h.planner = Planner(self.chunks, self.settings, random.Random(self.rng.random()))
        for other in self.hosts:
            if other is not h and not other.seeder:
                h.views[other.name] = HaveSet(other.holds.order)  # what it learns on joining

    def sources(self, h: Host) -> dict[str, HaveSet | None]:
        out: dict[str, HaveSet | None] = {}
        for other in self.hosts:
            if other is h or not self.alive(other):
                continue
            if other.seeder or other.done_at is not None:
                out[other.name] = None
            elif len(h.views.get(other.name, ())):
                out[other.name] = h.views[other.name]
        return out

    def refresh(self, h: Host) -> None:
        assert h.planner is not None
        if self.announce_fetching:
            for other in self.hosts:
                if other is not h and other.name in h.views:
                    h.views[other.name].fetching = other.fetching
        h.planner.set_sources(self.sources(h))
        for lane, chunk in h.planner.next_requests(self.now):
            h.planner.asked(chunk, self.now)
            src = self.by_name[lane.peer_id]
            self.flows.append(Flow(src, h, lane, chunk, float(chunk.length)))

    def share(self) -> None:
        """Each flow gets the smaller of its source's up and its downloader's down link split
        evenly among the flows on that link, then spare capacity goes to flows with room at
        both ends for a few rounds (close to max-min fairness, which TCP flows approach)."""
        ups: dict[str, int] = {}
        downs: dict[str, int] = {}
        sending = []
        for f in self.flows:  # oldest first: a source sends at most ``upload_slots`` at once
            if ups.get(f.src.name, 0) < self.upload_slots:
                ups[f.src.name] = ups.get(f.src.name, 0) + 1
                downs[f.dst.name] = downs.get(f.dst.name, 0) + 1
                sending.append(f)
            else:
                f.rate = 0.0
        for f in sending:
            f.rate = min(f.src.up / ups[f.src.name], f.dst.down / downs[f.dst.name])
        for _ in range(4):  # hand spare capacity to flows with room at both ends (~max-min)
            used: dict[tuple[str, str], float] = {}
            for f in sending:
                used[(f.src.name, "up")] = used.get((f.src.name, "up"), 0.0) + f.rate
                used[(f.dst.name, "down")] = used.get((f.dst.name, "down"), 0.0) + f.rate
            spare = {k: (self.by_name[k[0]].up if k[1] == "up" else self.by_name[k[0]].down) - v
                     for k, v in used.items()}  # fmt: skip
            open_ = [f for f in sending if spare[(f.src.name, "up")] > 1.0
                     and spare[(f.dst.name, "down")] > 1.0]  # fmt: skip
            if not open_:
                break
            count: dict[tuple[str, str], int] = {}
            for f in open_:
                for k in ((f.src.name, "up"), (f.dst.name, "down")):
                    count[k] = count.get(k, 0) + 1
            for f in open_:
                up, down = (f.src.name, "up"), (f.dst.name, "down")
                f.rate += min(spare[up] / count[up], spare[down] / count[down])

    def run(self, tick: float, limit: float = 1e6) -> None:
        """Events: a flow ends (its downloader plans again) and a tick every ``tick`` seconds
        (haves announced since the last tick arrive, every downloader plans: timers)."""
        waiting = sorted((h for h in self.hosts if not h.seeder), key=lambda h: h.join)
        started: list[Host] = []
        dirty: set[Host] = set()
        next_tick = 0.0
        while self.now < limit:
            if self.now >= next_tick:
                next_tick = self.now + tick
                for h in waiting[:]:
                    if h.join <= self.now:
                        waiting.remove(h)
                        self.start(h)
                        started.append(h)
                self.deliver_haves()
                for h in started:  # what each is fetching, as of this tick (the have delay)
                    h.fetching = frozenset(f.chunk for f in self.flows if f.dst is h)
                dirty.update(started)
            active = [h for h in started if h.done_at is None and self.alive(h)]
            if not active and not waiting:
                break
            for h in dirty:
                if h.done_at is None and self.alive(h):
                    self.refresh(h)
            dirty.clear()
            self.share()
            ends = [self.now + f.left / f.rate for f in self.flows if f.rate > 0]
            step_to = min([next_tick, *ends])
            dt = step_to - self.now
            for f in self.flows:
                f.left -= f.rate * dt
            self.now = step_to
            dirty.update(self.settle())

    def settle(self) -> set[Host]:
        still, touched = [], set()
        for f in self.flows:
            planner = f.dst.planner
            assert planner is not None
            if not self.alive(f.src) or not self.alive(f.dst):
                if self.alive(f.dst):
                    planner.done(f.lane, f.chunk, Outcome.FAILED, self.now)
                    touched.add(f.dst)
                continue
            if f.left > 1e-3:
                still.append(f)
                continue
            touched.add(f.dst)
            fresh = planner.wanted(f.chunk)
            planner.done(f.lane, f.chunk, Outcome.VERIFIED if fresh else Outcome.REDUNDANT,
                         self.now)  # fmt: skip
            if fresh:
                f.src.sent += f.chunk.length
                f.dst.received += f.chunk.length
                if not (f.src.seeder or f.src.done_at is not None):
                    f.dst.from_partial += f.chunk.length
                f.dst.holds.add(f.chunk)
                self._seq += 1
                heapq.heappush(
                    self.pending_haves, (self.now + self.have_delay, self._seq, f.dst.name, f.chunk)
                )
                if not planner.remaining:
                    f.dst.done_at = self.now
        # The scheduler cancels the other copies of a verified chunk (endgame).
        live = []
        for f in still:
            planner = f.dst.planner
            assert planner is not None
            if f.dst.done_at is not None:
                continue
            if not planner.wanted(f.chunk):
                planner.done(f.lane, f.chunk, Outcome.CANCELLED, self.now)
                continue
            live.append(f)
        self.flows = live
        return touched

    def deliver_haves(self) -> None:
        while self.pending_haves and self.pending_haves[0][0] <= self.now:
            _, _, holder, chunk = heapq.heappop(self.pending_haves)
            for h in self.hosts:
                if h.name != holder and h.planner is not None:
                    h.views.setdefault(holder, HaveSet()).add(chunk)


def scenario(hosts: int, size: int, chunk: int, link: float, *, seeders: int = 1, slow: int = 0,
             vanish: int = 0, late: int = 0, have_delay: float = 0.3,
             seed: int = 1, upload_slots: int = 1 << 30,
             announce_fetching: bool = True) -> dict[str, float]:  # fmt: skip
    chunks = [ChunkRef("game.bin", i, i * chunk, min(chunk, size - i * chunk),
                       i.to_bytes(32, "big")) for i in range(-(-size // chunk))]  # fmt: skip
    ideal = size / link
    rng = random.Random(seed)
    all_hosts = [Host(f"s{i}", link, link, seeder=True) for i in range(seeders)]
    leechers = []
    for i in range(hosts - seeders):
        h = Host(f"l{i}", link, link)
        if i < slow:
            h.up = h.down = link / 10  # a host on a 100 Mbit port
        elif i < slow + vanish:
            h.leave = ideal * 0.5  # disappears half-way
        elif i < slow + vanish + late:
            h.join = ideal * rng.uniform(0.3, 0.6)  # a late joiner
        leechers.append(h)
    all_hosts += leechers
    sim = Sim(
        all_hosts, chunks, have_delay, SchedulerSettings(), seed, upload_slots, announce_fetching
    )
    started = time.process_time()
    sim.run(tick=have_delay / 2)
    normal = [h for h in leechers if h.leave is None and h.up == link]
    last = max((h.done_at or float("inf")) - h.join for h in normal)
    partial = sum(h.from_partial for h in normal) / max(1, sum(h.received for h in normal))
    copies = sum(h.sent for h in all_hosts if h.seeder) / size
    return {"hosts": hosts, "ideal": ideal, "last": last, "efficiency": ideal / last,
            "seeder_copies": copies,
            "from_partial": partial, "cpu": time.process_time() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[10, 50, 200])
    parser.add_argument("--size-gib", type=float, default=20.0)
    parser.add_argument(
        "--chunk-mib",
        type=int,
        default=64,
        help="chunk size (the daemon uses 4; larger keeps 200 hosts fast)",
    )
    parser.add_argument("--link-mbit", type=float, default=1000.0)
    parser.add_argument("--seeders", type=int, default=1)
    parser.add_argument("--slow", type=int, default=0, help="leechers on a 10x slower link")
    parser.add_argument("--vanish", type=int, default=0, help="leechers gone half-way")
    parser.add_argument("--late", type=int, default=0, help="leechers joining 30-60 %% in")
    parser.add_argument("--have-delay", type=float, default=0.3)
    parser.add_argument("--no-fetching", dest="fetching", action="store_false",
                        help="have-sets without the chunks each host is fetching")  # fmt: skip
    parser.add_argument(
        "--upload-slots",
        type=int,
        default=1 << 30,
        help="chunks a host sends at once (more wait their turn)",
    )
    args = parser.parse_args()
    link = args.link_mbit * 1e6 / 8
    size = int(args.size_gib * GiB)
    print(f"{args.size_gib:g} GiB game, {args.chunk_mib} MiB chunks, {args.link_mbit:g} Mbit/s "
          f"links, {args.seeders} seeder(s), slow={args.slow} vanish={args.vanish} "
          f"late={args.late}, have delay {args.have_delay} s")  # fmt: skip
    print(f"{'hosts':>6} {'ideal s':>8} {'last s':>8} {'efficiency':>10} {'from partial':>12} "
          f"{'seeder copies':>13} {'sim cpu s':>9}")  # fmt: skip
    for n in args.hosts:
        r = scenario(n, size, args.chunk_mib * MiB, link, seeders=args.seeders, slow=args.slow,
                     vanish=args.vanish, late=args.late, have_delay=args.have_delay,
                     upload_slots=args.upload_slots, announce_fetching=args.fetching)  # fmt: skip
        print(f"{n:>6} {r['ideal']:>8.1f} {r['last']:>8.1f} {r['efficiency']:>10.2f} "
              f"{r['from_partial']:>11.0%} {r['seeder_copies']:>13.1f} "
              f"{r['cpu']:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
