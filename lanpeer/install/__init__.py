"""Installs: safe archive extraction, crash-safe install/update/uninstall/remove and download
commits recorded in a per-game intent log, and the startup recovery that converges them.

Everything here is sync and blocking: the daemon runs it in worker threads, one per game.
"""

from lanpeer.install.archive import ExtractLimits, ExtractStats, extract_archive
from lanpeer.install.commit import commit_download
from lanpeer.install.recovery import RecoveryResult, recover_game_dir, recover_root
from lanpeer.install.transactions import install_game, remove_game, uninstall_game, update_game

__all__ = [
    "ExtractLimits",
    "ExtractStats",
    "RecoveryResult",
    "commit_download",
    "extract_archive",
    "install_game",
    "recover_game_dir",
    "recover_root",
    "remove_game",
    "uninstall_game",
    "update_game",
]
