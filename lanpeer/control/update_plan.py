"""What ``peer-cli update GAME`` does, decided from what is installed, downloaded and offered.

Once ``update`` only re-extracted the downloaded version and said ``done`` while a peer offered
a newer one. The plan: fetch the newer (or named) version a peer offers, then the download's
install step updates ``local/``; else install a downloaded version newer than ``local/``; else
say it is up to date. Pure: facts in, a plan out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lanpeer.control.views import newest
from lanpeer.download.resolve import version_key

UpdateKind = Literal["fetch", "reinstall", "up_to_date"]


@dataclass(frozen=True)
class UpdatePlan:
    kind: UpdateKind
    version: str | None  # the version fetched, or installed from the download
    message: str


def plan_update(
    game_id: str,
    installed: str | None,
    downloaded: str | None,
    offered: list[str],
    requested: str | None,
) -> UpdatePlan:
    """``installed`` None: local/ holds an unrecorded version (treated as the downloaded one)."""
    in_use = installed or downloaded
    target = requested or newest(offered)
    if (
        target is not None
        and target != downloaded
        and (
            requested is not None
            or downloaded is None
            or version_key(target) > version_key(downloaded)
        )
    ):
        return UpdatePlan("fetch", target, f"update of {game_id} to {target}: downloading it")
    if downloaded is not None and installed is not None and installed != downloaded:
        return UpdatePlan(
            "reinstall", downloaded, f"update of {game_id} to the downloaded {downloaded}"
        )
    if requested is not None and requested == downloaded and installed is None:
        return UpdatePlan("reinstall", downloaded, f"update of {game_id} to {downloaded}")
    return UpdatePlan(
        "up_to_date",
        in_use,
        f"{game_id} is up to date ({in_use or 'unknown version'}): no peer offers a newer one",
    )
