"""The one settings model of lanpeerd: defaults, the TOML file and flags (SPEC §10, issue 13).

Each misread of the old loader has a case here: a wrong type stops the daemon with the file or
flag, the key, the value and what is expected.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lanpeer.config import ConfigError, build_config, load_config_file, parse_host_port, parse_rate


def _file(tmp_path: Path, text: str) -> tuple[dict[str, object], Path]:
    path = tmp_path / "lanpeerd.toml"
    path.write_text(text)
    return load_config_file(path), path


@pytest.mark.parametrize(
    ("text", "rate"),
    [("50MB/s", 50_000_000), ("4MiB/s", 4 << 20), ("100Mbit", 12_500_000), ("512kB/s", 512_000),
     ("1GB", 10**9), ("2 MiB/s", 2 << 20), (None, None)],
)  # fmt: skip
def test_parse_rate(text: str | None, rate: int | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5MB/s", "0MB/s", "5 parsecs", "20", "512k", 20])
def test_a_rate_needs_a_number_and_a_unit(text: object) -> None:
    with pytest.raises(ValueError, match="with a unit"):
        parse_rate(text)


def test_parse_host_port() -> None:
    assert parse_host_port("10.0.0.5:47600") == ("10.0.0.5", 47600)
    assert parse_host_port("[fe80::1]:1") == ("fe80::1", 1)
    for bad in ("host", "host:0", "host:99999", ":5"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_host_port(bad)


def test_flags_override_config_file_override_defaults(tmp_path: Path) -> None:
    values, path = _file(
        tmp_path, 'name = "file"\nport = 5000\npeers = ["1.2.3.4:5"]\nmax-download = "1MB/s"\n'
    )
    config = build_config(values, {"name": "flag", "port": None, "peers": []}, path)
    assert config.name == "flag"
    assert config.port == 5000
    assert config.peers == [("1.2.3.4", 5)]
    assert config.max_download == 1_000_000
    assert config.bind == "0.0.0.0"


@pytest.mark.parametrize(
    ("toml", "key", "expected"),
    [
        # once split into one root per character, "/" included: watchdog watched everything
        ('games = "/srv/games"', "games", "expected a list of directories"),
        ('mdns = "no"', "mdns", "expected true or false"),  # once: mDNS on
        ('peers = "h:47600"', "peers", "expected a list of HOST:PORT"),  # once: characters
        ('port = "abc"', "port", "expected a whole number"),  # once: no key, no file named
        ("max-upload = 20", "max_upload", "with a unit"),  # once: 20 bytes/s
        ('max-download = "20"', "max_download", "no unit"),
        ('bulk = "carrier-pigeon"', "bulk", "'auto' or 'quic'"),
        ('peers = ["host"]', "peers", "expected HOST:PORT"),
        ("download-lanes = 0", "download_lanes", "greater than or equal to 1"),
        ('name = ""', "name", "non-empty"),
    ],
)
def test_a_wrong_value_names_file_key_value_and_expectation(
    tmp_path: Path, toml: str, key: str, expected: str
) -> None:
    values, path = _file(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as info:
        build_config(values, {}, path)
    message = str(info.value)
    assert f"config file {path}" in message
    assert f"key {key!r}" in message
    (written,) = tomllib.loads(toml).values()
    assert f" = {(written[0] if isinstance(written, list) else written)!r}: " in message
    assert expected in message


def test_a_flag_without_unit_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"flag --max-upload = '20': .*no unit"):
        build_config({}, {"max_upload": "20"})


def test_an_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'max_uplod' \(did you mean 'max_upload'"):
        _file(tmp_path, 'max_uplod = "5MB/s"\n')


def test_config_file_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("name = [unclosed\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "contrib" / "lanpeerd.toml"
    config = build_config(load_config_file(example), {}, example)
    assert config.port == 47600
    assert config.bulk == "auto"
    assert config.download_lanes == 2


@pytest.mark.process
def test_lanpeerd_stops_on_a_bad_config_file_with_status_2(tmp_path: Path) -> None:
    path = tmp_path / "lanpeerd.toml"
    path.write_text('games = "/"\n')
    argv = [sys.executable, "-m", "lanpeer.main", "--config", str(path), "--state",
            str(tmp_path / "state"), "--socket", str(tmp_path / "c.sock"), "--no-mdns"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert f"config file {path}: key 'games' = '/': expected a list of directories" in done.stderr
    assert not (tmp_path / "state").exists()  # nothing started
