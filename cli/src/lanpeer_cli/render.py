"""How peer-cli shows things to people: rich tables, progress bars, event lines.

Owns formatting only (sizes, rates, ETAs, tables). Never talks to the daemon and never decides
exit codes; ``main`` does both.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

from lanpeer_proto import units
from lanpeer_proto.control import (
    DoctorResult,
    Event,
    FinishedEvent,
    GameResult,
    GamesResult,
    HashingInfo,
    KeepEvent,
    LibraryChangedEvent,
    OperationInfo,
    PeerDownEvent,
    PeersResult,
    PeerUpEvent,
    ProgressEvent,
    ShareResult,
    SourceEntry,
    StatusResult,
    UploadEvent,
    UploadsResult,
)
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

_MARK = {
    "ok": "[green]ok[/]",
    "warn": "[yellow]warn[/]",
    "fail": "[red]FAIL[/]",
    "info": "[blue]info[/]",
}


size = units.size
rate = units.rate
eta = units.duration


def short(peer_id: str) -> str:
    return peer_id[:8]


def ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago"


def status(console: Console, doc: StatusResult) -> None:
    console.print(f"[bold]{doc.name}[/]  peer {doc.peer_id or '-'}  listening on {doc.listen}")
    console.print(f"roots: {', '.join(doc.roots)}")
    console.print(f"library rev {doc.library_rev}, {doc.games} local games, {doc.peers} peers")
    missing = [name for name, running in doc.parts.items() if not running]
    if missing:
        console.print(f"[yellow]not running: {', '.join(missing)}[/]")
    if doc.uploads:
        console.print(f"uploading: {doc.uploads} session(s) at {rate(doc.upload_rate)} "
                      "(see `peer-cli uploads`)")  # fmt: skip
    if doc.operations:
        ops(console, doc.operations)
    else:
        console.print("no active operations")


@dataclass(frozen=True)
class Col:
    """A table column: ``keep`` ranks it when the table is too wide (lowest dropped first)."""

    header: str
    keep: int = 0
    key: bool = False  # an id the user types next: never cut, never wrapped, never dropped


def fitted(console: Console, cols: list[Col], rows: list[list[str]]) -> Table:
    """The table with as many columns as fit ``console.width`` (80 in a pipe), keys whole."""
    shown = list(range(len(cols)))
    unbounded = console.options.update_width(1 << 16)  # the natural width, not the clamped one
    while True:
        table = _table(cols, rows, shown)
        width = Measurement.get(console, unbounded, table).maximum
        droppable = [i for i in shown if not cols[i].key]
        if width <= console.width or len(droppable) <= 1:
            return table
        shown.remove(min(droppable, key=lambda i: cols[i].keep))


def _table(cols: list[Col], rows: list[list[str]], shown: list[int]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i in shown:
        col = cols[i]
        if col.key:
            widest = max((cell_len(row[i]) for row in rows), default=0)
            table.add_column(col.header, no_wrap=True, min_width=max(widest, len(col.header)))
        else:
            table.add_column(col.header, overflow="fold")
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def peers(console: Console, doc: PeersResult) -> None:
    if not doc.peers:
        console.print("no peers known yet (see `peer-cli doctor`)")
        return
    cols = [Col("peer", key=True), Col("name", 9), Col("address", 8), Col("connected", 10),
            Col("up", 7), Col("down", 7), Col("games", 6), Col("rtt", 4), Col("last seen", 5),
            Col("rev", 2), Col("proto", 1)]  # fmt: skip
    rows = [
        [
            short(p.peer_id),
            escape(p.name),
            p.address,
            "yes" if p.connected else "[red]no[/]",
            rate(p.rate_up),
            rate(p.rate_down),
            str(p.games),
            "-" if p.rtt_ms is None else f"{p.rtt_ms:.1f} ms",
            ago(p.last_seen),
            str(p.library_rev),
            p.proto_ver,
        ]
        for p in doc.peers
    ]
    console.print(fitted(console, cols, rows))


def games(console: Console, doc: GamesResult) -> None:
    if not doc.games:
        console.print("no games here or on any peer")
        return
    cols = [Col("game", key=True), Col("installed", 9), Col("downloaded", 8), Col("state", 7),
            Col("newest", 6), Col("size", 5), Col("peers", 4), Col("name", 3)]  # fmt: skip
    rows = []
    for g in doc.games:
        newest = g.newest_version or "-"
        if g.update_available:
            newest = f"[yellow]{escape(newest)} (update)[/]"
        installed = (g.installed_version or "yes") if g.installed else "-"
        state = g.state
        if g.state == "hashing" and g.hash_total:
            state = f"hashing {100 * g.hashed_bytes // g.hash_total}%"
        rows.append([g.id, escape(installed), escape(g.version or "-"), state, newest,
                     size(g.size), str(len(g.peers)), escape(g.name)])  # fmt: skip
    console.print(fitted(console, cols, rows))
    console.print(games_totals(doc.games), highlight=False)
    keep_notes(console, doc)


def games_totals(games: list[Any]) -> str:
    """``12 games (5 here, 3 installed): 40.1 GB on disk, 93.0 GB offered by peers``."""
    here = [g for g in games if g.version is not None or g.installed]
    on_disk = sum(g.size for g in here)
    offered = sum(g.size for g in games if g.peers)
    installed = sum(1 for g in games if g.installed)
    return (
        f"{len(games)} games ({len(here)} here, {installed} installed): "
        f"{size(on_disk)} on disk, {size(offered)} offered by peers"
    )


def keep_notes(console: Console, doc: GamesResult) -> None:
    """Pins and version variants (two builds under one version string), below the table."""
    for g in doc.games:
        if g.pinned:
            console.print(f"{g.id} is pinned at {g.pinned}", markup=False, highlight=False)
        for v in g.variants:
            holders = ", ".join(short(p) for p in v.peers)
            console.print(
                f"{g.id} {v.version} variant {v.manifest_hash[:12]}: {size(v.size)}, "
                f"{len(v.peers)} source(s): {holders}",
                markup=False,
                highlight=False,
            )


def ops(console: Console, operations: list[OperationInfo]) -> None:
    if not operations:
        console.print("no operations")
        return
    cols = [Col("game", key=True), Col("kind", 6), Col("state", 9), Col("progress", 10),
            Col("speed", 7), Col("eta", 8), Col("sources", 2), Col("lane", 1)]  # fmt: skip
    rows = []
    for op in operations:
        state = op.state if op.queue_position is None else f"queued #{op.queue_position}"
        done = progress_text(op.bytes_done, op.bytes_total)
        sources = " ".join(short(s) for s in op.sources) or "-"
        speed, left = rate(op.rate), eta(op.eta)
        if op.finished_at is not None:
            state = f"{op.state} {ago(op.finished_at)}"
            done = size(op.bytes_done) if op.ok else "-"
        elif op.hashing is not None:  # waiting for a seeder's hash: how far it has got
            done, speed, left = f"hash {_percent(op.hashing)}%", "-", eta(None)
        rows.append([op.game_id, op.kind, state, done, speed, left, sources, op.lane])
    console.print(fitted(console, cols, rows))
    for op in operations:
        if op.reason and op.finished_at is None:
            console.print(f"{op.game_id}: {escape(op.reason)}", highlight=False)
        if op.ok is False or op.error:
            console.print(f"{op.game_id}: {escape(op.error or 'failed')}", highlight=False)
            if op.hint:
                console.print(f"  -> {escape(op.hint)}", highlight=False)


def _percent(hashing: HashingInfo) -> int:
    return 100 * hashing.hashed_bytes // hashing.total_bytes if hashing.total_bytes else 0


def game(console: Console, doc: GameResult) -> None:
    g = doc.game
    installed = (g.installed_version or "yes, version not recorded") if g.installed else "no"
    lines = [
        ("game", g.id),
        ("name", escape(g.name)),
        ("state", g.state),
        ("installed", installed),
        ("downloaded", g.version or "no"),
        ("newest offered", g.newest_version or "-"),
        ("update", "available" if g.update_available else "no"),
        ("size", size(g.size)),
        ("pin", doc.pin or "none (follows the newest)"),
        ("path", escape(doc.path or "-")),
    ]
    table = Table.grid(padding=(0, 2))
    for label, value in lines:
        table.add_row(label, value)
    console.print(table)
    if g.sources:
        cols = [Col("source", key=True), Col("version", 5), Col("manifest", 3), Col("partial", 1)]
        rows = [[short(s.peer_id), escape(s.version), (s.manifest_hash or "hashing")[:16],
                 _partial(s)] for s in g.sources]  # fmt: skip
        console.print(fitted(console, cols, rows))
    for v in g.variants:
        peers = ", ".join(short(p) for p in v.peers)
        console.print(f"[yellow]variant[/] {escape(v.version)} {v.manifest_hash[:16]}: {peers}")
    if doc.operation is not None:
        ops(console, [doc.operation])
    if doc.history:
        console.print("history:")
        ops(console, doc.history)


def uploads(console: Console, doc: UploadsResult) -> None:
    total = f"uploaded since start: {size(doc.total_bytes)}"
    if not doc.uploads:
        console.print(f"nobody is downloading from this host now ({total})")
        return
    cols = [Col("game", key=True), Col("peer", 9), Col("name", 8), Col("rate", 10),
            Col("sent", 9), Col("since", 5)]  # fmt: skip
    rows = [[u.game_id, u.peer_id if u.via == "http" else short(u.peer_id), escape(u.name),
             rate(u.rate), size(u.bytes), ago(u.since)] for u in doc.uploads]  # fmt: skip
    console.print(fitted(console, cols, rows))
    console.print(
        f"{len(doc.uploads)} upload(s), {rate(sum(u.rate for u in doc.uploads))}; {total}"
    )


def progress_text(done: int, total: int) -> str:
    """``1.2/3.4 GB 35%``; ``-`` while the total is not known (never a fake ``0 B/0 B``)."""
    if not total:
        return "-"
    return f"{size(done)}/{size(total)} {100 * done // total}%"


def share(console: Console, doc: ShareResult) -> None:
    if not doc.enabled:
        console.print("the HTTP share is off (start lanpeerd with --http-share ADDR:PORT)")
        return
    console.print(f"sharing downloaded catalog games at {escape(doc.url or '-')}")
    if doc.link and doc.link != doc.url:
        console.print(f"link with the party key's token: {escape(doc.link)}")
    table = Table("client", "game", "item", "progress", "speed", "started")
    for d in doc.downloads:
        done = f"{size(d.offset + d.bytes_sent)} / {size(d.offset + d.bytes_total)}"
        table.add_row(d.client, d.game_id, escape(d.item), done, rate(d.rate), ago(d.started))
    console.print(table if doc.downloads else "nobody is downloading")


def doctor(console: Console, doc: DoctorResult) -> None:
    table = Table.grid(padding=(0, 2))
    for check in doc.checks:
        hint = f"\n-> {check.hint}" if check.hint else ""
        table.add_row(_MARK[check.status], check.name, escape(check.summary) + escape(hint))
    console.print(table)


def event_line(event: Event) -> str:
    if isinstance(event, PeerUpEvent):
        return f"peer up    {short(event.peer_id)} {event.name} {event.address}"
    if isinstance(event, PeerDownEvent):
        return f"peer down  {short(event.peer_id)}"
    if isinstance(event, LibraryChangedEvent):
        who = short(event.peer_id) if event.peer_id else "local"
        return f"library    {who} rev {event.library_rev}"
    if isinstance(event, ProgressEvent):
        if event.reason:  # stalled: why, e.g. how far its seeder's hashing has got
            return f"progress   {event.game_id} {event.kind} {event.state}: {escape(event.reason)}"
        done = progress_text(event.bytes_done, event.bytes_total)
        return f"progress   {event.game_id} {event.kind} {event.state} {done} {rate(event.rate)}"
    if isinstance(event, UploadEvent):
        who = f"{escape(event.name) or short(event.peer_id)} ({short(event.peer_id)})"
        if event.state == "started":
            return f"upload     {event.game_id} to {who} started"
        speed = rate(event.bytes / event.seconds) if event.seconds > 0 else "-"
        took = f"{size(event.bytes)} in {event.seconds:.1f} s ({speed})"
        return f"upload     {event.game_id} to {who} finished: {took}"
    if isinstance(event, KeepEvent):
        return keep_line(event)
    return finished_line(event)


def keep_line(event: KeepEvent) -> str:
    version = escape(event.version or "?")
    if event.action == "pin":
        return f"keep       pinned {event.game_id} at {version}"
    if event.action == "unpin":
        return f"keep       unpinned {event.game_id} (was {version})"
    peer = short(event.peer_id or "")
    who = f"{escape(event.name)} ({peer})" if event.name else peer
    if event.action == "follow":
        then = "" if event.install is not False else ", download only"
        return f"keep       following {who}{then}"
    return f"keep       no longer following {who}"


def finished_line(event: FinishedEvent) -> str:
    if not event.ok:
        return f"failed     {event.game_id} {event.kind}: {event.error}"
    speed = event.bytes / event.seconds if event.seconds > 0 else 0.0
    peers = f" from {len(event.peers_used)} peer(s)" if event.peers_used else ""
    return (
        f"done       {event.game_id} {event.kind}: {size(event.bytes)} in {event.seconds:.1f} s"
        f" ({rate(speed)}){peers}"
    )


def progress_bars(console: Console, events: Iterable[Event]) -> Generator[Event, None, None]:
    """Show progress events as bars (speed, ETA) and others as lines; pass every event on."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=False),
        TextColumn("{task.fields[speed]}  eta {task.fields[eta]}  {task.fields[state]}"),
    )
    tasks: dict[str, TaskID] = {}
    with Progress(*columns, console=console, transient=False) as bars:
        for event in events:
            if isinstance(event, ProgressEvent):
                _update(bars, tasks, event)
            else:
                if isinstance(event, FinishedEvent) and event.game_id in tasks:
                    state = "done" if event.ok else "failed"
                    bars.update(tasks[event.game_id], state=state, eta=eta(0 if event.ok else None))
                bars.console.print(event_line(event))
            yield event


def _update(bars: Progress, tasks: dict[str, TaskID], event: ProgressEvent) -> None:
    fields: dict[str, Any] = {
        "speed": rate(event.rate),
        "eta": eta(event.eta),
        "state": event.state,
    }
    done, total = event.bytes_done, event.bytes_total
    if event.hashing is not None:  # the bar is the seeder's hashing until the download starts
        done, total = event.hashing.hashed_bytes, event.hashing.total_bytes
        who = escape(event.hashing.name) or short(event.hashing.peer_id)
        fields.update(speed="-", eta=eta(None), state=f"waiting for {who} to hash it")
    if event.game_id not in tasks:
        tasks[event.game_id] = bars.add_task(f"{event.game_id} {event.kind}", total=None, **fields)
    bars.update(tasks[event.game_id], completed=done, total=total or None, **fields)


def _partial(source: SourceEntry) -> str:
    """``no`` for a full copy; a partial source with what it holds, when known."""
    if not source.partial:
        return "no"
    return f"yes, {size(source.held_bytes)}" if source.held_bytes is not None else "yes"
