"""How peer-cli shows things to people: rich tables, progress bars, event lines.

Owns formatting only (sizes, rates, ETAs, tables). Never talks to the daemon and never decides
exit codes; ``main`` does both.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any

from lanpeer_proto.control import (
    DoctorResult,
    Event,
    FinishedEvent,
    GamesResult,
    LibraryChangedEvent,
    OperationInfo,
    PeerDownEvent,
    PeersResult,
    PeerUpEvent,
    ProgressEvent,
    StatusResult,
)
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

_MARK = {
    "ok": "[green]ok[/]",
    "warn": "[yellow]warn[/]",
    "fail": "[red]FAIL[/]",
    "info": "[blue]info[/]",
}


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def rate(bytes_per_s: float) -> str:
    return f"{size(bytes_per_s)}/s"


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
    if doc.operations:
        ops(console, doc.operations)
    else:
        console.print("no active operations")


def peers(console: Console, doc: PeersResult) -> None:
    table = Table("peer", "name", "address", "proto", "rev", "last seen", "games")
    for p in doc.peers:
        table.add_row(
            short(p.peer_id),
            p.name,
            p.address,
            p.proto_ver,
            str(p.library_rev),
            ago(p.last_seen),
            str(p.games),
        )
    console.print(table if doc.peers else "no peers known yet (see `peer-cli doctor`)")


def games(console: Console, doc: GamesResult) -> None:
    table = Table("game", "name", "version", "state", "size", "peers", "newest")
    for g in doc.games:
        newest = g.newest_version or "-"
        if g.update_available:
            newest = f"[yellow]{newest} (update)[/]"
        table.add_row(
            g.id, g.name, g.version or "-", g.state, size(g.size), str(len(g.peers)), newest
        )
    console.print(table if doc.games else "no games here or on any peer")
    keep_notes(console, doc)


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
    table = Table("game", "kind", "lane", "state", "progress", "speed", "eta", "sources")
    for op in operations:
        state = op.state if op.queue_position is None else f"queued #{op.queue_position}"
        done = f"{size(op.bytes_done)} / {size(op.bytes_total)}" if op.bytes_total else "-"
        sources = ", ".join(short(s) for s in op.sources) or "-"
        table.add_row(
            op.game_id, op.kind, op.lane, state, done, rate(op.rate), eta(op.eta), sources
        )
    console.print(table if operations else "no operations")
    for op in operations:
        if op.error:
            console.print(f"{op.game_id} {op.kind}: {op.error}", markup=False, highlight=False)


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
        done = f"{size(event.bytes_done)}/{size(event.bytes_total)}"
        return f"progress   {event.game_id} {event.kind} {event.state} {done} {rate(event.rate)}"
    return finished_line(event)


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
        DownloadColumn(binary_units=True),
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
    if event.game_id not in tasks:
        tasks[event.game_id] = bars.add_task(f"{event.game_id} {event.kind}", total=None, **fields)
    bars.update(
        tasks[event.game_id],
        completed=event.bytes_done,
        total=event.bytes_total or None,
        **fields,
    )
