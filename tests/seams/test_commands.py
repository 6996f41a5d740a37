"""``ControlCommands`` over recorder fakes: the exact part calls each command makes, and the
checks it makes before anything starts. No daemon process, no socket."""

from __future__ import annotations

import pytest
from lanpeer_proto.control import (
    AddPeerRequest,
    CancelRequest,
    DownloadRequest,
    GamesRequest,
    InstallRequest,
    RemoveRequest,
    RescanRequest,
    ShutdownRequest,
    StatusRequest,
    UninstallRequest,
    UpdateRequest,
)

from lanpeer.control import offers
from lanpeer.download.operations import OpKind
from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError
from tests.seams.recorders import build, local_game, peer, summary


@pytest.mark.asyncio
async def test_download_fetches_the_newest_offer_then_queues_it() -> None:
    d = build([], [peer("A", summary("doom", "1.9")), peer("B", summary("doom", "1.10"))])
    answer = await d.commands.answer(DownloadRequest(game_id="doom"))
    assert d.rec.actions == [
        "node.fetch_manifest B doom",
        "downloads.submit doom 1.10 install=True",
    ]
    result = answer.result  # type: ignore[union-attr]
    assert result.message == "download of doom 1.10 queued"
    assert (result.operation.kind, result.operation.state) == ("download", "queued")


@pytest.mark.asyncio
async def test_download_asked_again_follows_the_running_one() -> None:
    d = build([], [peer("A", summary("doom", "1.9"))])
    d.downloads.running["doom"] = d.rec.op("doom", OpKind.DOWNLOAD)
    answer = await d.commands.answer(DownloadRequest(game_id="doom", install=False))
    assert d.rec.actions == []  # nothing fetched, nothing queued
    assert "following it" in answer.result.message  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_download_of_a_busy_or_unknown_game_starts_nothing() -> None:
    d = build([local_game("doom")], [peer("A", summary("doom", "1.9"))])
    d.downloads.running["doom"] = d.rec.op("doom", OpKind.INSTALL)
    with pytest.raises(ConflictError, match="already has an operation"):
        await d.commands.answer(DownloadRequest(game_id="doom"))
    with pytest.raises(UnknownGameError, match="no connected peer offers quake"):
        await d.commands.answer(DownloadRequest(game_id="quake"))
    d.downloads.running.clear()
    with pytest.raises(UnknownGameError, match=r"version 2\.0"):
        await d.commands.answer(DownloadRequest(game_id="doom", version="2.0", install=False))
    assert d.rec.actions == []


@pytest.mark.asyncio
async def test_download_waits_while_the_peers_are_still_hashing() -> None:
    d = build([], [peer("A", summary("doom", "1.9", manifest_hash=None))])
    d.node.after_wait = [peer("A", summary("doom", "1.9"))]
    await d.commands.answer(DownloadRequest(game_id="doom", install=False))
    assert d.rec.actions == [
        "node.wait_sources_changed",
        "node.fetch_manifest A doom",
        "downloads.submit doom 1.9 install=False",
    ]


@pytest.mark.asyncio
async def test_still_hashing_after_the_hash_wait_queues_a_waiting_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once: it failed after a fixed 30 s, and a cold 20 GiB game always takes longer."""
    monkeypatch.setattr(offers, "HASH_WAIT", 0.0)
    d = build([], [peer("A", summary("doom", "1.9", manifest_hash=None))])
    answer = await d.commands.answer(DownloadRequest(game_id="doom"))
    assert d.rec.actions == ["downloads.submit_when_offered doom install=True"]
    assert "waiting for the peers offering it to finish hashing" in answer.result.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("request_", "game", "error", "message"),
    [
        (InstallRequest(game_id="doom"), local_game("doom", downloaded=False), LanpeerError,
         "not downloaded"),
        (InstallRequest(game_id="doom"), local_game("doom", installed=True), ConflictError,
         "use `peer-cli update`"),
        (UpdateRequest(game_id="doom"), local_game("doom"), ConflictError, "not installed"),
        (UninstallRequest(game_id="doom"), local_game("doom"), ConflictError, "not installed"),
        (RemoveRequest(game_id="doom"), local_game("doom", installed=True), ConflictError,
         "`peer-cli uninstall` first"),
        (InstallRequest(game_id="quake"), local_game("doom"), UnknownGameError, "not in this"),
    ],
)  # fmt: skip
@pytest.mark.asyncio
async def test_transactions_are_checked_before_anything_is_queued(
    request_: InstallRequest, game: object, error: type[Exception], message: str
) -> None:
    d = build([game], [])  # type: ignore[list-item]
    with pytest.raises(error, match=message):
        await d.commands.answer(request_)
    assert d.rec.actions == []


@pytest.mark.parametrize(
    ("request_", "kind", "installed"),
    [(InstallRequest(game_id="doom"), OpKind.INSTALL, False),
     (UninstallRequest(game_id="doom"), OpKind.UNINSTALL, True),
     (RemoveRequest(game_id="doom", yes=True), OpKind.REMOVE, False)],
)  # fmt: skip
@pytest.mark.asyncio
async def test_a_valid_transaction_goes_to_the_install_runner(
    request_: InstallRequest, kind: OpKind, installed: bool
) -> None:
    d = build([local_game("doom", installed=installed)], [])
    answer = await d.commands.answer(request_)
    assert d.rec.actions == [f"installs.submit {kind} doom"]
    assert answer.result.operation.kind == kind.value  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_remove_of_the_last_copy_on_the_lan_needs_yes() -> None:
    d = build([local_game("doom")], [peer("A", summary("quake", "1.0"))])
    with pytest.raises(ConflictError, match="last copy on the LAN"):
        await d.commands.answer(RemoveRequest(game_id="doom"))
    assert d.rec.actions == []
    d = build([local_game("doom")], [peer("A", summary("doom", "1.0"))])  # a peer has it
    await d.commands.answer(RemoveRequest(game_id="doom"))
    assert d.rec.actions == ["installs.submit remove doom"]


@pytest.mark.asyncio
async def test_update_fetches_a_newer_offer_or_says_it_is_up_to_date() -> None:
    """``local_game`` is at 1.0; its install is unrecorded (taken as the downloaded one)."""
    d = build([local_game("doom", installed=True)], [peer("A", summary("doom", "1.0"))])
    answer = await d.commands.answer(UpdateRequest(game_id="doom"))
    assert d.rec.actions == []  # nothing newer: nothing queued
    assert answer.result.operation is None  # type: ignore[union-attr]
    assert "up to date (1.0)" in answer.result.message  # type: ignore[union-attr]
    d = build([local_game("doom", installed=True)], [peer("A", summary("doom", "1.1"))])
    answer = await d.commands.answer(UpdateRequest(game_id="doom"))
    assert d.rec.actions == [
        "node.fetch_manifest A doom",
        "downloads.submit doom 1.1 install=True",  # its install step updates local/
    ]
    assert answer.result.operation.kind == "download"  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_cancel_rescan_add_peer_and_shutdown_call_exactly_their_part() -> None:
    d = build([local_game("doom")], [])
    with pytest.raises(UnknownGameError, match="no queued or running operation"):
        await d.commands.answer(CancelRequest(game_id="doom"))
    with pytest.raises(UnknownGameError):
        await d.commands.answer(RescanRequest(game_id="quake"))  # checked: no rescan
    await d.commands.answer(RescanRequest(game_id="doom"))
    await d.commands.answer(RescanRequest())
    await d.commands.answer(AddPeerRequest(host="10.0.0.9", port=47600))
    await d.commands.answer(ShutdownRequest())
    assert d.rec.actions == [
        "downloads.cancel doom",
        "library.rescan doom",
        "library.rescan None",
        "node.add_static_peer 10.0.0.9 47600",
        "node.wait_static_outcome 10.0.0.9 47600",
    ]
    assert d.stops == ["stop"]


@pytest.mark.asyncio
async def test_status_and_games_are_built_from_the_parts() -> None:
    d = build([local_game("doom")], [peer("A", summary("doom", "1.10"), summary("quake", "2"))])
    d.downloads.running["doom"] = d.rec.op("doom", OpKind.UPDATE)
    status = (await d.commands.answer(StatusRequest())).result  # type: ignore[union-attr]
    assert (status.peer_id, status.name, status.listen, status.library_rev) == (
        "ME", "alpha", "0.0.0.0:47600", 7
    )  # fmt: skip
    assert (status.games, status.peers, [o.game_id for o in status.operations]) == (1, 1, ["doom"])
    assert status.parts == {"library": True, "node": True, "downloads": True, "install": True}
    games = (await d.commands.answer(GamesRequest())).result.games  # type: ignore[union-attr]
    assert [(g.id, g.state, g.update_available) for g in games] == [
        ("doom", "busy", True),
        ("quake", "remote", False),
    ]
    assert d.rec.actions == []  # read-only documents call nothing that acts


@pytest.mark.asyncio
async def test_a_waiting_download_says_why_until_the_hash_is_there() -> None:
    d = build([], [peer("A", summary("doom", "1.9", manifest_hash=None))])
    d.node.after_wait = [peer("A", summary("doom", "1.9"))]
    op = d.rec.op("doom", OpKind.DOWNLOAD)
    reasons: list[str | None] = []
    real_wait = d.node.wait_sources_changed

    async def wait_and_note(timeout: float) -> None:  # noqa: ASYNC109 - the node's seam
        reasons.append(op.reason)
        await real_wait(timeout)

    d.node.wait_sources_changed = wait_and_note  # type: ignore[method-assign]
    manifest, offer = await offers.wait_hashed_offer(d.node, "doom", None, op)  # type: ignore[arg-type]
    assert reasons == ["waiting for host-A (A) to finish hashing it (that peer cannot say how far)"]
    assert (manifest.game_id, offer.version) == ("doom", "1.9")
    assert d.rec.actions == [
        "node.fetch_hash_status A doom",
        "node.wait_sources_changed",
        "node.fetch_manifest A doom",
    ]
