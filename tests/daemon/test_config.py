"""Configuration: precedence, files, typed refusals; keygen; the operations guide is complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import keygen
from daemon.config import OPTIONS, ConfigError, DaemonConfig, env_name, load_config
from shared_protocol.addresses import is_loopback
from shared_protocol.keys import KeyFileError, load_keypair

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    return path


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, 'max_queue = 10\nmax_per_artist = 3\nadmins = ["a"]\n')
    env = {env_name("max_queue"): "20", env_name("admins"): "b, c"}
    config = load_config(path, env, {"max_queue": "30"})
    assert config.max_queue == 30  # flag
    assert config.admins == ("b", "c")  # environment over file
    assert config.max_per_artist == 3  # file over default
    assert config.heartbeat_s == DaemonConfig().heartbeat_s  # default
    assert load_config(path, env, {"max_queue": None}).max_queue == 20


def test_file_tables_and_relative_paths(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'data_dir = "data"\n[quotas.default]\njobs_per_hour = 5\n'
        '[quotas.artists.vip]\n[engine]\nmodel = "tiny"\n',
    )
    config = load_config(path, {}, {})
    assert config.data_dir == tmp_path / "data" and config.state_path == tmp_path / "data/state"
    assert config.quota_for("anyone").jobs_per_hour == 5
    assert config.quota_for("vip").jobs_per_hour is None
    assert dict(config.engine) == {"model": "tiny"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("max_qeue = 1\n", "max_qeue"),
        ('max_queue = "ten"\n', "max_queue"),
        ("max_queue = 0\n", "max_queue"),
        ("[quotas.default]\njobs_per_hour = -1\n", "quotas.default.jobs_per_hour"),
        ("[quotas.default]\njobs_per_week = 1\n", "quotas.default.jobs_per_week"),
        ("[quotas.defualt]\njobs_per_hour = 1\n", "quotas.defualt"),  # a typo is not unlimited
        ("[quotas.default]\ngpu_seconds_per_hour = inf\n", "quotas.default.gpu_seconds_per_hour"),
        ("[quotas.default]\ngpu_seconds_per_day = nan\n", "quotas.default.gpu_seconds_per_day"),
        ("grace_period_s = 1e308\n", "grace_period_s"),  # its retry hint could not be sent
        ("result_retention_s = 86401\n", "result_retention_s"),
        ('log_level = "loud"\n', "log_level"),
        ('server_secret_key = "k"\n', "allowed_keys_dir"),
        ('metrics_bind = "9108"\n', "metrics_bind"),
        ("max_timeline_s = 11.9\n", "max_timeline_s"),  # shorter than one plain clip
        ("max_timeline_s = 380.1\n", "max_timeline_s"),  # longer than 32 rows can reach
        ('max_timeline_s = "long"\n', "max_timeline_s"),
        ("max_timeline_s = 380\nmax_candidates = 16\n", "max_timeline_s"),  # over 96 MiB
        ("not toml [", None),
    ],
)
def test_bad_config_is_a_typed_error_naming_the_option(
    tmp_path: Path, text: str, field: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), {}, {})
    if field is not None:
        assert field in caught.value.details["field"]


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HYMOTION_LOG_STDERR"):
        load_config(None, {"HYMOTION_LOG_STDERR": "maybe", "HOME": str(tmp_path)}, {})


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:7878", True),
        ("tcp://127.0.0.2:7878", True),
        ("tcp://[::1]:7878", True),
        ("tcp://localhost:7878", True),
        ("tcp://LocalHost:7878", True),
        ("ipc:///tmp/hy.sock", True),
        ("tcp://0.0.0.0:7878", False),
        ("tcp://*:7878", False),
        ("tcp://eth0:7878", False),
        ("tcp://10.0.0.5:7878", False),
    ],
)
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def test_keygen_writes_usable_keys_and_never_overwrites(tmp_path: Path) -> None:
    text = keygen("artist", "alice", tmp_path)
    assert "allowed_keys_dir" in text and "SHA256:" in text
    pair = load_keypair(tmp_path / "alice.key_secret")
    assert len(pair.public) == 40
    assert (tmp_path / "alice.key_secret").stat().st_mode & 0o077 == 0
    with pytest.raises(KeyFileError):
        keygen("artist", "alice", tmp_path)
    with pytest.raises(ConfigError):
        keygen("artist", None, tmp_path)
    assert "server_secret_key" in keygen("server", None, tmp_path)


def test_example_config_loads_and_the_guide_documents_every_option() -> None:
    config = load_config(REPO / "daemon" / "example-config.toml", {}, {})
    assert config.quota_for("intern").jobs_per_day == 100
    guide = (REPO / "docs" / "operations.md").read_text()
    for option in OPTIONS:
        assert f"`{option.name}`" in guide and env_name(option.name) in guide


def test_max_timeline_s_comes_from_flag_environment_or_file_within_its_range(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "max_timeline_s = 60\n")
    assert load_config(path, {}, {}).max_timeline_s == 60.0
    env = {env_name("max_timeline_s"): "90"}
    assert load_config(path, env, {}).max_timeline_s == 90.0
    assert load_config(path, env, {"max_timeline_s": "380"}).max_timeline_s == 380.0
    assert load_config(None, {"HOME": str(tmp_path)}, {}).max_timeline_s == 120.0
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"HOME": str(tmp_path)}, {"max_timeline_s": "400"})
    assert caught.value.message == "max_timeline_s 400 is outside 12 to 380 s"
    assert caught.value.details["allowed"] == "12-380 s"
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"HOME": str(tmp_path)}, {"max_timeline_s": "300",
                                                    "max_candidates": "20"})  # fmt: skip
    assert caught.value.message == (
        "max_timeline_s 300 with max_candidates 20: the longest result would be 108 MiB, over "
        "the 96 MiB a client accepts; lower one of them"
    )
