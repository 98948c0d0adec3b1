"""The ``[cluster]`` table: defaults, and a refusal naming the key for every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cluster.config import ClusterConfig
from daemon.config import ConfigError, load_config


def load(tmp_path: Path, table: str) -> ClusterConfig:
    path = tmp_path / "daemon.toml"
    path.write_text("[cluster]\n" + table)
    return load_config(path, {}, {}).cluster


def test_defaults_keep_the_local_backend(tmp_path: Path) -> None:
    cluster = load(tmp_path, "")
    assert (cluster.backend, cluster.replicas, cluster.auth, cluster.autoscaling) == (
        "local",
        1,
        "token",
        False,
    )


def test_shared_text_encoders_are_a_layout_of_their_own(tmp_path: Path) -> None:
    cluster = load(tmp_path, 'text_encoders = "shared"\nencoder_gpus_per_replica = 0.5\n')
    assert cluster.shared_encoders and cluster.encoder_gpus_per_replica == 0.5
    assert not load(tmp_path, "").shared_encoders


def test_autoscaling_bounds_set_the_dispatch_slots(tmp_path: Path) -> None:
    cluster = load(tmp_path, 'backend = "ray"\nmin_replicas = 1\nmax_replicas = 3\n')
    assert cluster.autoscaling and cluster.slots == 3
    assert (cluster.upscale_delay_s, cluster.downscale_delay_s) == (30.0, 600.0)
    assert load(tmp_path, "replicas = 2\ngpus_per_replica = 0.5\n").slots == 2


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('backend = "k8s"\n', "cluster.backend"),
        ('auth = "password"\n', "cluster.auth"),
        ("replicas = 0\n", "cluster.replicas"),
        ("min_replicas = 2\nmax_replicas = 1\n", "cluster.max_replicas"),
        ("gpus_per_replica = -1\n", "cluster.gpus_per_replica"),
        ('replicas = "two"\n', "cluster.replicas"),
        ("deploy = 1\n", "cluster.deploy"),
        ("step_timeout_s = 0\n", "cluster.step_timeout_s"),
        ("adress = 1\n", "cluster.adress"),
        ('text_encoders = "resident"\n', "cluster.text_encoders"),
        ("encoder_replicas = 0\n", "cluster.encoder_replicas"),
        ("encoder_gpus_per_replica = -0.5\n", "cluster.encoder_gpus_per_replica"),
        ("encoder_cpus_per_replica = -1\n", "cluster.encoder_cpus_per_replica"),
        ("upscale_delay_s = -1\n", "cluster.upscale_delay_s"),
        ("downscale_delay_s = 1e9\n", "cluster.downscale_delay_s"),
        ("upscale_delay_s = inf\n", "cluster.upscale_delay_s"),
        ("step_timeout_s = nan\n", "cluster.step_timeout_s"),
        ("encode_timeout_s = 0\n", "cluster.encode_timeout_s"),
    ],
)
def test_bad_values_are_refused_by_name(tmp_path: Path, table: str, field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, table)
    assert refused.value.details["field"] == field


def test_the_kuberay_builder_refuses_an_unknown_arg_by_name() -> None:
    from daemon.cluster.app import build

    with pytest.raises(ConfigError) as refused:
        build({"engine": {}, "replica": 4})  # misspelt: would deploy one replica unnoticed
    assert refused.value.details["field"] == "args.replica"
    with pytest.raises(ConfigError) as refused:
        build({"replicas": 0})
    assert refused.value.details["field"] == "cluster.replicas"


def test_the_kuberay_builder_takes_the_shared_encoders_timeouts() -> None:
    from ray.serve import Application

    from daemon.cluster.app import build

    args = {"text_encoders": "shared", "ready_timeout_s": 120, "encode_timeout_s": 10}
    assert isinstance(build({"engine": {}, **args, "step_timeout_s": 30}), Application)
    with pytest.raises(ConfigError) as refused:
        build({**args, "step_timeout_s": 0})
    assert refused.value.details["field"] == "cluster.step_timeout_s"
    with pytest.raises(ConfigError) as refused:
        build({**args, "step_timeout_s": 29})  # two 10 s attempts would reach the step timeout
    assert refused.value.details["field"] == "cluster.encode_timeout_s"


def test_an_encode_timeout_beyond_a_third_of_the_step_timeout_is_refused(tmp_path: Path) -> None:
    """Both attempts of an encoding must end before the daemon's step timeout, so a hung
    encoder gets its own typed error, never a re-run of the batch on another engine replica."""
    shared = 'text_encoders = "shared"\n'
    assert load(tmp_path, shared).encode_timeout_s == 20.0  # a third of the default 60 s
    assert load(tmp_path, shared + "step_timeout_s = 30\nencode_timeout_s = 10\n")
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, shared + "step_timeout_s = 30\n")
    assert refused.value.details["field"] == "cluster.encode_timeout_s"
    assert refused.value.details["allowed"] == "> 0 and <= 10"
    assert "at most a third of cluster.step_timeout_s (30 s)" in refused.value.message
    # per_replica layouts never call shared encoders: the key does not bind them
    assert load(tmp_path, "step_timeout_s = 30\n").step_timeout_s == 30


def test_the_shared_encoders_timeouts_are_part_of_the_deployed_app(tmp_path: Path) -> None:
    """The engine replicas get them at deploy: a change must redeploy (a new fingerprint)."""
    from daemon.cluster.backend import RayBackend

    def fingerprint(table: str) -> str:
        path = tmp_path / "daemon.toml"
        path.write_text('[cluster]\nbackend = "ray"\n' + table)
        return RayBackend(load_config(path, {}, {}))._fingerprint()

    shared = 'text_encoders = "shared"\n'
    assert fingerprint(shared) != fingerprint(shared + "encode_timeout_s = 10\n")
    assert fingerprint(shared) != fingerprint(shared + "ready_timeout_s = 30\n")
    # the daemon's own wait: the replicas do not use it
    assert fingerprint(shared) == fingerprint(shared + "step_timeout_s = 90\n")
    assert fingerprint("") == fingerprint("encode_timeout_s = 10\n")  # per_replica: not used


def test_the_operations_guide_documents_every_cluster_option_and_metric() -> None:
    """Outside checks are written from docs/operations.md: every key, builder arg and series."""
    from dataclasses import fields

    from daemon.cluster.app import BUILD_KEYS
    from daemon.cluster.metrics import ClusterMetrics
    from daemon.metrics import Metrics

    guide = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    section = guide.split("## A Ray Serve cluster behind the daemon")[1].split("\n## ")[0]
    table = section.split("### Options: the `[cluster]` table")[1].split("\n### ")[0]
    for option in fields(ClusterConfig):
        assert f"`{option.name}`" in table, option.name
    kuberay = section.split("### KubeRay `RayService`")[1].split("```yaml")[0]
    for key in BUILD_KEYS:
        assert f"`{key}`" in kuberay, key
    metrics = Metrics(())
    daemon_families = len(metrics.families)
    ClusterMetrics(metrics)
    assert metrics.families[daemon_families:]
    for family in metrics.families[daemon_families:]:
        assert f"| `{family.name}` |" in section, family.name
