"""Model directories: config parsing, strict loading, and loading failures with clear errors."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from daemon.engine.checkpoint import (
    CKPT_FILE,
    SAFETENSORS_FILE,
    convert,
    load_weights,
    parse_config,
    read_state_dict,
)
from daemon.engine.errors import CheckpointError
from daemon.engine.mmdit import CONFIGS
from daemon.engine.tiny import MODEL_DIR

OFFICIAL_YAML = """
network_module: hymotion/network/hymotion_mmdit.HunyuanMotionMMDiT
network_module_args:
  input_dim: 201
  feat_dim: {feat_dim}
  num_layers: {layers}
  num_heads: {heads}
  mlp_ratio: 4.0
  ctxt_input_dim: 4096
  vtxt_input_dim: 768
  mask_mode: narrowband
  apply_rope_to_single_branch: false
  time_factor: 1000.0
  dropout: 0.0
train_pipeline: hymotion/pipeline/motion_diffusion.MotionFlowMatching
train_pipeline_args:
  enable_ctxt_null_feat: true
  enable_special_game_feat: true
  infer_noise_scheduler_cfg: {{validation_steps: 50}}
  noise_scheduler_cfg: {{method: euler}}
  losses_cfg: {{recons: {{name: SmoothL1Loss, weight: 1.0}}}}
  output_mesh_fps: 30
  random_generator_on_gpu: {on_gpu}
  test_cfg: {{mean_std_dir: ./stats/, text_guidance_scale: 5.0}}
  text_encoder_cfg: {{llm_type: qwen3, max_length_llm: 128}}
  text_encoder_module: hymotion/network/text_encoders/text_encoder.HYTextModel
  train_cfg: {{cond_mask_prob: 0.1}}
  train_frames: 360
"""


@pytest.fixture
def model_dir(tiny_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_root / MODEL_DIR, tmp_path / "model"))


@pytest.mark.parametrize(
    ("size", "feat_dim", "layers", "heads", "on_gpu"),
    [("standard", 1280, 27, 20, "false"), ("lite", 1024, 18, 16, "true")],
)
def test_official_configs_map_to_the_presets(tmp_path: Path, size, feat_dim, layers, heads, on_gpu):
    path = tmp_path / "config.yml"
    path.write_text(OFFICIAL_YAML.format(feat_dim=feat_dim, layers=layers, heads=heads,
                                         on_gpu=on_gpu))  # fmt: skip
    config = parse_config(path)
    assert config.network == CONFIGS[size]
    assert (config.steps, config.guidance, config.text_slots) == (50, 5.0, 128)
    assert config.generator_on_device == (on_gpu == "true")
    assert config.enable_ctxt_null_feat and config.network.band == 60


def _edit_config(model_dir: Path, **changes) -> Path:
    path = model_dir / "config.yml"
    data = yaml.safe_load(path.read_text())
    data["network_module_args"].update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


def test_tiny_directory_loads_strictly(model_dir: Path) -> None:
    config = parse_config(model_dir / "config.yml")
    weights = load_weights(model_dir, config, torch.float32)
    assert len(weights.state_dict()) == len(read_state_dict(model_dir / CKPT_FILE))
    assert not any(p.is_meta for p in weights.parameters())
    assert weights.mean.dtype == torch.float32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("network_module_args: [1, 2", "not valid YAML"),
        ("- a list", "top level is not a mapping"),
        ("train_pipeline_args: {}", "has no network_module_args"),
        ("network_module_args: {input_dim: 201, feat_dim: 64}", "lacks 'num_layers'"),
        ("network_module: other/net.Model", "unsupported network_module"),
    ],
)
def test_bad_configs_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=message) as info:
        parse_config(path)
    assert str(path) in info.value.message


def test_unsupported_and_inconsistent_settings_are_refused(model_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="apply_rope_to_single_branch=True is not supported"):
        parse_config(_edit_config(model_dir, apply_rope_to_single_branch=True))
    _edit_config(model_dir, apply_rope_to_single_branch=False, num_layers=4)
    with pytest.raises(CheckpointError, match="num_layers 4 must be a positive multiple of 3"):
        parse_config(model_dir / "config.yml")
    with pytest.raises(CheckpointError, match="No such file"):
        parse_config(model_dir / "missing.yml")


def test_wrong_shapes_are_listed_by_name(model_dir: Path) -> None:
    config = parse_config(_edit_config(model_dir, feat_dim=96))
    with pytest.raises(CheckpointError, match="wrong shapes") as info:
        load_weights(model_dir, config, torch.float32)
    assert "motion_transformer.input_encoder.weight (64, 201) instead of (96, 201)" in str(
        info.value
    )


def test_missing_and_unexpected_tensors_are_listed_by_name(model_dir: Path) -> None:
    path = model_dir / CKPT_FILE
    state = read_state_dict(path)
    del state["null_ctxt_input"]
    state["body_model.v_template"] = torch.zeros(3)
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_weights(model_dir, parse_config(model_dir / "config.yml"), torch.float32)
    assert "1 missing tensors (first: null_ctxt_input)" in info.value.message
    assert "1 unexpected tensors (first: body_model.v_template)" in info.value.message


def test_truncated_checkpoint(model_dir: Path) -> None:
    path = model_dir / CKPT_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        read_state_dict(path)
    assert info.value.path == str(path)


def test_pickled_objects_are_never_unpickled(model_dir: Path) -> None:
    path = model_dir / CKPT_FILE
    torch.save({"model_state_dict": {}, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError, match="never unpickled"):
        read_state_dict(path)
    torch.save({"weights": {}}, path)
    with pytest.raises(CheckpointError, match="has no 'model_state_dict'"):
        read_state_dict(path)


def test_convert_writes_safetensors_that_load_identically(model_dir: Path) -> None:
    config = parse_config(model_dir / "config.yml")
    before = load_weights(model_dir, config, torch.float32).state_dict()
    target = convert(model_dir)
    assert target == model_dir / SAFETENSORS_FILE
    (model_dir / CKPT_FILE).unlink()  # the converted file alone is enough
    after = load_weights(model_dir, config, torch.float32).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        load_weights(model_dir, config, torch.float32)
