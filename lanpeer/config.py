"""Configuration of ``lanpeerd``: embedded defaults, the TOML config file, then flags (SPEC §10).

Owns parsing of rates (``50MB/s``) and ``host:port`` values and the default paths. Never starts
anything and never writes files: it only turns text into a ``DaemonConfig``.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from socket import gethostname
from typing import Any

import platformdirs
from lanpeer_proto.control import default_socket_path

DEFAULT_PORT = 47600
DEFAULT_CONFIG_FILE = Path(platformdirs.user_config_dir("lanpeer")) / "lanpeerd.toml"

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b|bit|bps)?(?:/s)?\s*$", re.IGNORECASE)


class ConfigError(ValueError):
    """A config file or flag value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class DaemonConfig:
    games: list[Path] = field(default_factory=lambda: [Path.home() / "Games"])
    state: Path = field(default_factory=lambda: Path(platformdirs.user_state_dir("lanpeer")))
    socket: Path = field(default_factory=lambda: default_socket())
    bind: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    name: str = field(default_factory=gethostname)
    peers: list[tuple[str, int]] = field(default_factory=list)
    mdns: bool = True
    party_key: str | None = None
    max_upload: int | None = None  # bytes/s
    max_download: int | None = None  # bytes/s
    catalog: Path | None = None
    bulk: str = "auto"
    download_lanes: int = 2
    swarm: bool = True  # SPEC §7a: serve verified chunks of downloads in progress


def default_socket() -> Path:
    """The control socket path shared with peer-cli (which computes the same thing)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and not _private_dir(runtime):
        runtime = None
    return Path(default_socket_path(runtime, os.getuid(), tempfile.gettempdir()))


def _private_dir(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700


def parse_rate(text: str | int | None) -> int | None:
    """``50MB/s`` -> 50_000_000 bytes/s; ``100Mbit`` -> 12_500_000; ``4MiB`` -> 4_194_304."""
    if text is None or isinstance(text, int):
        return text
    match = _RATE_RE.match(text)
    if match is None:
        raise ConfigError(f"rate {text!r} is not understood; write e.g. 50MB/s, 4MiB/s or 100Mbit")
    number, prefix, binary, unit = match.groups()
    scale = _UNITS[prefix.lower()]
    if binary:
        scale = 1024 ** list(_UNITS).index(prefix.lower())
    value = float(number) * scale
    if unit and unit.lower() in ("bit", "bps"):
        value /= 8
    if value <= 0:
        raise ConfigError(f"rate {text!r} must be above zero")
    return int(value)


def parse_host_port(text: str) -> tuple[str, int]:
    """``10.0.0.5:47600`` or ``[fe80::1]:47600`` -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"peer {text!r} is not HOST:PORT (e.g. 192.168.1.20:{DEFAULT_PORT})")
    return host, int(port)


def load_config_file(path: Path) -> dict[str, Any]:
    """The TOML config as a dict of ``DaemonConfig`` field values (still raw)."""
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    data = {key.replace("-", "_"): value for key, value in data.items()}
    known = {f.name for f in fields(DaemonConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {unknown}; known: {sorted(known)}")
    return data


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> DaemonConfig:
    """Defaults, overridden by the config file, overridden by flags (``None`` = not given)."""
    merged = {**file_values, **{k: v for k, v in flag_values.items() if v not in (None, [])}}
    try:
        return _coerce(replace(DaemonConfig(), **merged))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad configuration value: {exc}") from exc


def _coerce(config: DaemonConfig) -> DaemonConfig:
    if config.bulk not in ("auto", "quic"):
        raise ConfigError(f"bulk must be 'auto' or 'quic', not {config.bulk!r}")
    if not isinstance(config.swarm, bool):
        raise ConfigError(f"swarm must be true or false, not {config.swarm!r}")
    if not 0 <= int(config.port) < 65536:
        raise ConfigError(f"port {config.port} is outside 0-65535")
    peers = [p if isinstance(p, tuple) else parse_host_port(str(p)) for p in config.peers]
    return replace(
        config,
        games=[Path(g).expanduser().absolute() for g in config.games],
        state=Path(config.state).expanduser().absolute(),
        socket=Path(config.socket).expanduser().absolute(),
        catalog=Path(config.catalog).expanduser().absolute() if config.catalog else None,
        port=int(config.port),
        peers=peers,
        max_upload=parse_rate(config.max_upload),
        max_download=parse_rate(config.max_download),
    )
