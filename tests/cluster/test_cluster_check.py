"""``python -m daemon check`` with ``[cluster] backend = "ray"``: a memory plan per deployment
instead of a verdict on this machine's devices (no Ray needed: nothing is deployed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from daemon.cli import main
from daemon.engine.checkpoint import CONFIG_FILE
from daemon.engine.mmdit import CONFIGS
from daemon.engine.tiny import ensure_tiny, tiny_config_yaml


@pytest.fixture(scope="module")
def standard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Standard-size model directory with its config.yml only: the plan needs no weights."""
    model_dir = tmp_path_factory.mktemp("standard")
    config = tiny_config_yaml()
    del config["untrained"]
    net = CONFIGS["standard"]
    args = config["network_module_args"]
    assert isinstance(args, dict)
    for key in args:
        if hasattr(net, key):  # every size of the official Standard network
            args[key] = getattr(net, key)
    (model_dir / CONFIG_FILE).write_text(yaml.safe_dump(config))
    return model_dir


def check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, *flags: str
) -> tuple[int, list[str]]:
    config_file = tmp_path / "daemon.toml"
    config_file.write_text(toml)
    code = main(["check", "--config", str(config_file), *flags])
    return code, capsys.readouterr().out.splitlines()


def test_the_ray_backend_plans_replicas_instead_of_probing_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A device this machine lacks: the local backend's check exits 2 on it (tests/daemon).
    monkeypatch.setenv("HYMOTION_DEVICES", "cuda:3")
    tiny = ensure_tiny(tmp_path / "tiny")
    code, lines = check(
        tmp_path,
        capsys,
        f'[engine]\ntiny_dir = "{tiny}"\n[cluster]\nbackend = "ray"\n'
        'address = "10.0.0.10:6379"\nreplicas = 2\ngpus_per_replica = 0.5\n'
        'text_encoders = "shared"\nencoder_gpus_per_replica = 0.25\n',
    )
    assert code == 0, lines
    assert "devices:" not in lines
    assert lines[0] == (
        "cluster: Ray backend at 10.0.0.10:6379, app 'hymotion'; this machine's devices are "
        "not checked (the replicas run on the cluster's nodes)"
    )
    assert lines[1].startswith("memory plan per replica (fp32, text encoders shared,")
    assert lines[2].startswith("  engine: 2 replica(s), 0.5 GPU each, 2 share a GPU: DiT weights")
    assert lines[3].startswith("  text_encoders: 1 replica(s), 0.25 GPU each, 4 share a GPU:")
    assert lines[4] == "  GPUs reserved: 1.25"
    assert any("loaded" in line for line in lines)  # the models themselves are still checked
    assert lines[-1] == "OK"


def test_standard_model_plans_by_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], standard_dir: Path
) -> None:
    engine = f'[engine]\nmodels = {{standard = "{standard_dir}"}}\n'
    cluster = '[cluster]\nbackend = "ray"\nreplicas = 4\n'
    code, lines = check(tmp_path, capsys, engine + cluster, "--vram-gb", "24")
    assert lines[2] == (
        "  engine: 4 replica(s), 1 GPU each: DiT weights 3.89 GiB + text encoders 15.74 GiB + "
        "one 12 s candidate 0.17 GiB + CUDA context 0.56 GiB = 20.35 GiB per replica, "
        "20.35 GiB per GPU"
    )
    assert lines[3] == "  GPUs reserved: 4"
    assert code == 1  # fits 24 GiB; only the model (no weights here) is a problem

    shared = cluster + 'text_encoders = "shared"\n'
    code, lines = check(tmp_path, capsys, engine + shared, "--vram-gb", "12")
    assert lines[2] == (
        "  engine: 4 replica(s), 1 GPU each: DiT weights 3.89 GiB + one 12 s candidate "
        "0.17 GiB + CUDA context 0.56 GiB = 4.61 GiB per replica, 4.61 GiB per GPU"
    )
    assert lines[3] == (
        "  text_encoders: 1 replica(s), 1 GPU each: text encoders 15.74 GiB + CUDA context "
        "0.56 GiB = 16.30 GiB per replica, 16.30 GiB per GPU"
    )
    assert lines[4] == "  FAILED: text_encoders: 16.30 GiB per GPU does not fit --vram-gb 12"
    assert lines[5] == "  GPUs reserved: 5"
    assert code == 2 and lines[-1] == "2 problem(s)"
