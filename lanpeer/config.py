"""Settings of ``lanpeerd``: one validated model for embedded defaults, the TOML file and flags.

Owns the ``DaemonConfig`` model (SPEC §10), parsing of rates (``50MB/s``) and ``host:port``
values, the default paths, and error messages that name the file or flag, the key, the value and
what is expected. Never starts anything and never writes files: it only turns text into settings.

Adding a setting is one field on ``DaemonConfig`` (its type says what is accepted) plus, when it
has a flag, one ``add(...)`` line in ``lanpeer.main``.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
import tomllib
from pathlib import Path
from socket import gethostname
from typing import Annotated, Any, Literal

import platformdirs
from lanpeer_proto.paths import default_socket_path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

DEFAULT_PORT = 47600
DEFAULT_CONFIG_FILE = Path(platformdirs.user_config_dir("lanpeer")) / "lanpeerd.toml"

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
# A unit is required: "20" meaning 20 bytes/s made a host that nobody could download from.
_RATE_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b|bit|bps|byte|bytes)(?:/s|ps)?\s*$", re.IGNORECASE
)
RATE_EXAMPLE = "a number with a unit, e.g. 50MB/s, 4MiB/s or 100Mbit"


class ConfigError(ValueError):
    """A config file or flag value that cannot be used; the message says which and why."""


def parse_rate(text: object) -> int | None:
    """``50MB/s`` -> 50_000_000 bytes/s; ``100Mbit`` -> 12_500_000; ``4MiB/s`` -> 4_194_304."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"expected {RATE_EXAMPLE} (a bare number has no unit)")  # noqa: TRY004 - pydantic wants ValueError
    match = _RATE_RE.match(text)
    if match is None:
        hint = " (a bare number has no unit)" if text.strip().replace(".", "").isdigit() else ""
        raise ValueError(f"expected {RATE_EXAMPLE}{hint}")
    number, prefix, binary, unit = match.groups()
    scale = _UNITS[prefix.lower()]
    if binary:
        scale = 1024 ** list(_UNITS).index(prefix.lower())
    value = float(number) * scale
    if unit.lower() in ("bit", "bps"):
        value /= 8
    if value < 1:
        raise ValueError(f"expected a rate above zero, {RATE_EXAMPLE}")
    return int(value)


def parse_host_port(text: object) -> tuple[str, int]:
    """``10.0.0.5:47600`` or ``[fe80::1]:47600`` -> (host, port)."""
    if isinstance(text, tuple):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected HOST:PORT text, e.g. 192.168.1.20:{DEFAULT_PORT}")  # noqa: TRY004 - pydantic wants ValueError
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, e.g. 192.168.1.20:{DEFAULT_PORT}")
    return host, int(port)


def parse_share_address(text: object) -> tuple[str, int] | None:
    """``0.0.0.0:8080`` -> ("0.0.0.0", 8080) for ``--http-share``; port 0 picks a free port."""
    if text is None or isinstance(text, tuple):
        return text
    if not isinstance(text, str):
        raise ValueError("expected ADDR:PORT text, e.g. 0.0.0.0:8080")  # noqa: TRY004 - pydantic wants ValueError
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected ADDR:PORT, e.g. 0.0.0.0:8080 (port 0: any free port)")
    return host, int(port)


def _path(value: object) -> Path:
    if isinstance(value, Path):
        return value.expanduser().absolute()
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a path (text)")
    return Path(value).expanduser().absolute()


def _list(what: str) -> Any:
    def check(value: object) -> object:
        # A string is a sequence too: "games = '/srv'" once became one root per character.
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of {what}, e.g. [{_EXAMPLES[what]}]")  # noqa: TRY004 - pydantic wants ValueError
        return list(value)

    return BeforeValidator(check)


_EXAMPLES = {"directories": '"/srv/games"', "HOST:PORT peers": '"192.168.1.20:47600"'}

FilePath = Annotated[Path, BeforeValidator(_path)]
Rate = Annotated[int | None, BeforeValidator(parse_rate)]  # bytes/s
HostPort = Annotated[tuple[str, int], BeforeValidator(parse_host_port)]
ShareAddress = Annotated[tuple[str, int] | None, BeforeValidator(parse_share_address)]


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected non-empty text")
    return value


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


class DaemonConfig(BaseModel):
    """Every setting of one daemon; TOML keys are these names (``-`` or ``_``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    games: Annotated[list[FilePath], _list("directories")] = Field(
        default_factory=lambda: [Path.home() / "Games"]
    )
    state: FilePath = Field(default_factory=lambda: Path(platformdirs.user_state_dir("lanpeer")))
    socket: FilePath = Field(default_factory=default_socket)
    bind: Annotated[StrictStr, AfterValidator(_non_empty)] = "0.0.0.0"
    port: Annotated[StrictInt, Field(ge=0, le=65535)] = DEFAULT_PORT  # 0: any free port
    name: Annotated[StrictStr, AfterValidator(_non_empty), Field(max_length=64)] = Field(
        default_factory=gethostname
    )
    peers: Annotated[list[HostPort], _list("HOST:PORT peers")] = Field(default_factory=list)
    mdns: StrictBool = True
    party_key: Annotated[StrictStr, AfterValidator(_non_empty)] | None = None
    max_upload: Rate = None
    max_download: Rate = None
    catalog: FilePath | None = None
    bulk: Literal["auto", "quic"] = "auto"
    # Two at once keeps a LAN link busy; more only split the same bandwidth (SPEC §7).
    download_lanes: Annotated[StrictInt, Field(ge=1, le=16)] = 2
    # Off unless asked for: it serves the catalog to the whole LAN over HTTP (SPEC §9c).
    http_share: ShareAddress = None


KNOWN_KEYS = tuple(DaemonConfig.model_fields)


def load_config_file(path: Path) -> dict[str, Any]:
    """The TOML config as a dict of ``DaemonConfig`` field values (still raw)."""
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    values = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(key for key in data if key.replace("-", "_") not in KNOWN_KEYS)
    if unknown:
        raise ConfigError(_unknown_message(path, unknown))
    return values


def _unknown_message(path: Path, unknown: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key.replace("-", "_"), KNOWN_KEYS, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"config file {path}: unknown key {', '.join(parts)}; known keys: {', '.join(KNOWN_KEYS)}"
    )


def build_config(
    file_values: dict[str, Any],
    flag_values: dict[str, Any],
    config_file: Path | None = None,
) -> DaemonConfig:
    """Defaults, overridden by the config file, overridden by flags (``None`` = not given)."""
    flags = {k: v for k, v in flag_values.items() if v not in (None, [])}
    where = str(config_file) if config_file else "the config file"
    try:
        DaemonConfig.model_validate(file_values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, lambda key: f"config file {where}: key {key!r}")) from exc
    try:
        return DaemonConfig.model_validate({**file_values, **flags})
    except ValidationError as exc:

        def source(key: str) -> str:
            if key in flags:
                return f"flag --{key.replace('_', '-')}"
            return f"config file {where}: key {key!r}"

        raise ConfigError(_explain(exc, source)) from exc


_EXPECTED = {
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "string_type": "expected text in quotes",
    "extra_forbidden": "unknown key",
}


def _explain(exc: ValidationError, source: Any) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        key = str(error["loc"][0]) if error["loc"] else "?"
        value = error.get("input")
        expected = _EXPECTED.get(error["type"]) or str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{source(key)} = {value!r}: {expected}")
    return "; ".join(dict.fromkeys(lines))
