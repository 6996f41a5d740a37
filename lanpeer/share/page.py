"""The share's two HTML pages: the downloadable games, and one game's files.

Owns markup only: every name is escaped, every link is quoted and carries the link token when a
party key protects the share. Never looks anything up: callers pass the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from lanpeer_proto.messages import GameSummary, ManifestFile

_HEAD = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
    "<style>body{{font-family:sans-serif;margin:2em}}td{{padding:.2em 1em}}</style></head>"
    "<body><h1>{title}</h1>"
)
_TAIL = "</body></html>"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def link(path: str, token: str | None) -> str:
    """A same-origin link to ``path`` (already quoted), with the token when one is needed."""
    return escape(f"{path}?token={token}" if token else path, quote=True)


def games_page(host_name: str, games: Iterable[GameSummary], token: str | None) -> str:
    rows = []
    for game in sorted(games, key=lambda g: g.name.lower()):
        zip_link = link(f"/games/{quote(game.id)}.zip", token)
        files_link = link(f"/games/{quote(game.id)}/", token)
        rows.append(
            f"<tr><td>{escape(game.name)}</td><td>{escape(game.version)}</td>"
            f"<td>{human_size(game.size)}</td><td><a href='{zip_link}'>{escape(game.id)}.zip</a>"
            f"</td><td><a href='{files_link}'>files</a></td></tr>"
        )
    body = "".join(rows) or "<tr><td>No downloaded catalog games yet.</td></tr>"
    title = escape(f"Games shared by {host_name}")
    return (
        _HEAD.format(title=title)
        + "<p>Each game is one ZIP (stored, resumable). Unpack it anywhere.</p>"
        + "<table><tr><th>Game</th><th>Version</th><th>Size</th><th>Download</th><th></th></tr>"
        + body
        + "</table>"
        + _TAIL
    )


def files_page(game: GameSummary, files: Iterable[ManifestFile], token: str | None) -> str:
    rows = [
        f"<tr><td><a href='{link(f'/games/{quote(game.id)}/files/{quote(f.path)}', token)}'>"
        f"{escape(f.path)}</a></td><td>{human_size(f.size)}</td></tr>"
        for f in files
    ]
    title = escape(f"{game.name} {game.version}")
    zip_link = link(f"/games/{quote(game.id)}.zip", token)
    return (
        _HEAD.format(title=title)
        + f"<p><a href='{zip_link}'>The whole game as one ZIP</a> · <a href='{link('/', token)}'>"
        + "all games</a></p><table>"
        + "".join(rows)
        + "</table>"
        + _TAIL
    )
