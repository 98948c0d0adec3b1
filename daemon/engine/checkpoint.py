"""Model directories in the official layout (spec §1): ``config.yml`` + ``latest.ckpt``
(or the ``model.safetensors`` written by ``convert``).

Never unpickles arbitrary objects: ``torch.load(weights_only=True)`` or safetensors. The network
is built on the meta device and loaded with ``strict=True, assign=True`` after every tensor's
name and shape has been checked, so a wrong file fails with the names of what is wrong.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from .errors import CheckpointError
from .mmdit import HYMotionWeights, MMDiTConfig

CONFIG_FILE = "config.yml"
CKPT_FILE = "latest.ckpt"
SAFETENSORS_FILE = "model.safetensors"
STATE_KEY = "model_state_dict"
NETWORK = "hymotion/network/hymotion_mmdit.HunyuanMotionMMDiT"
# code defaults of the official constructors that a config may override (spec §1.3)
SUPPORTED_DEFAULTS: dict[str, Any] = {
    "apply_rope_to_single_branch": False,
    "insert_start_token": False,
    "with_long_skip_connection": False,
    "qkv_bias": True,
    "qk_norm_type": "rms",
    "mlp_act_type": "gelu_tanh",
    "dropout": 0.0,
    "uncondition_mode": False,
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything config.yml decides: the network and the sampler defaults."""

    network: MMDiTConfig
    steps: int  # infer_noise_scheduler_cfg.validation_steps
    guidance: float  # test_cfg.text_guidance_scale
    #: Lite draws noise on the model's device, Standard on the CPU (§4.2).
    generator_on_device: bool
    enable_ctxt_null_feat: bool
    text_slots: int  # text_encoder_cfg.max_length_llm
    fps: int


def parse_config(path: Path) -> ModelConfig:
    """Read config.yml (safe YAML) and map it to our constructors, code defaults for absent keys
    (spec §1.3–1.4); anything we do not implement or cannot decode is refused by name."""
    data = _read_yaml(path)
    net = _section(data, "network_module_args", path)
    pipe = _section(data, "train_pipeline_args", path)
    if not net:
        raise CheckpointError(path, "has no network_module_args", "the HY-Motion network settings")
    for key, default in SUPPORTED_DEFAULTS.items():
        value = net.get(key, pipe.get(key, default))
        if value != default:
            raise CheckpointError(path, f"{key}={value!r} is not supported", f"{key}={default!r}")
    try:
        config = _model_config(net, pipe)
    except KeyError as exc:
        raise CheckpointError(
            path,
            f"network_module_args lacks {exc.args[0]!r}",
            "input_dim, feat_dim, num_layers, num_heads",
        ) from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"a setting has the wrong type or value: {exc}") from exc
    net_cfg = config.network
    if net_cfg.input_dim != 201 or config.text_slots != 128 or net_cfg.train_frames != 360:
        raise CheckpointError(
            path,
            "input_dim/max_length_llm/train_frames differ from the official decoder",
            "201 / 128 / 360",
        )
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of config.yml, read with the safe loader (plain data only)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(
            path, f"cannot read: {exc.strerror}", "the model's config.yml"
        ) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(path, "top level is not a mapping", "keys network_module_args, ...")
    if data.get("network_module", NETWORK) != NETWORK:
        raise CheckpointError(
            path, f"unsupported network_module {data['network_module']!r}", NETWORK
        )
    return data


def _section(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CheckpointError(path, f"{key!r} is not a mapping", f"{key}: {{...}}")
    return value


def _model_config(net: dict[str, Any], pipe: dict[str, Any]) -> ModelConfig:
    """``network_module_args`` and ``train_pipeline_args`` -> ModelConfig; KeyError for a missing
    required network key, TypeError/ValueError for a value of the wrong kind."""
    network = MMDiTConfig(
        input_dim=int(net["input_dim"]),
        feat_dim=int(net["feat_dim"]),
        num_layers=int(net["num_layers"]),
        num_heads=int(net["num_heads"]),
        mlp_ratio=float(net.get("mlp_ratio", 4.0)),
        ctxt_input_dim=int(net.get("ctxt_input_dim", 4096)),
        vtxt_input_dim=int(net.get("vtxt_input_dim", 768)),
        time_factor=float(net.get("time_factor", 1000.0)),
        mask_mode=str(net.get("mask_mode") or "none"),
        narrowband_length=float(net.get("narrowband_length", 2.0)),
        train_frames=int(pipe.get("train_frames", 360)),
    )
    sched = pipe.get("infer_noise_scheduler_cfg") or {}
    test = pipe.get("test_cfg") or {}
    text = pipe.get("text_encoder_cfg") or {}
    return ModelConfig(
        network=network,
        steps=int(sched.get("validation_steps", 50)),
        guidance=float(test.get("text_guidance_scale", 1.0)),  # §1.4: 1 (no CFG) if absent
        generator_on_device=bool(pipe.get("random_generator_on_gpu", True)),
        enable_ctxt_null_feat=bool(pipe.get("enable_ctxt_null_feat", False)),
        text_slots=int(text.get("max_length_llm", 128)),
        fps=int(pipe.get("output_mesh_fps", 30)),
    )


def weights_file(model_dir: Path) -> Path:
    """The converted safetensors file if present (faster, no pickle at all), else latest.ckpt."""
    converted = model_dir / SAFETENSORS_FILE
    return converted if converted.is_file() else model_dir / CKPT_FILE


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of ``model_state_dict`` from latest.ckpt (weights_only) or a safetensors file."""
    if not path.is_file():
        raise CheckpointError(path, "not found", f"{CKPT_FILE} (or {SAFETENSORS_FILE})")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(path, f"unreadable safetensors file ({exc}); truncated?") from exc
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its index is at the end
        raise CheckpointError(
            path,
            "unreadable or truncated: not a complete torch.save zip archive",
            "the full latest.ckpt download",
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            path,
            "contains objects other than tensors and plain containers, which are never "
            f"unpickled here ({str(exc).splitlines()[0]})",
            "a torch.save file of tensors",
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            path,
            f"unreadable or truncated ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            "a complete torch.save zip file",
        ) from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get(STATE_KEY), dict):
        raise CheckpointError(
            path, f"has no {STATE_KEY!r} dictionary", "the official training checkpoint layout"
        )
    state = ckpt[STATE_KEY]
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(path, f"non-tensor entries {bad[:5]}", "tensors only")
    return state


def expected_shapes(config: MMDiTConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the weights file must hold (meta device, no memory)."""
    with torch.device("meta"):
        module = HYMotionWeights(config)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def check_state_dict(state: dict[str, Tensor], config: MMDiTConfig, path: Path) -> None:
    """Raise CheckpointError naming missing, unexpected and mis-shaped tensors."""
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} instead of {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (first: {', '.join(missing[:5])})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected tensors (first: {', '.join(unexpected[:5])})"
        )
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes (first: {'; '.join(wrong[:3])})")
    if problems:
        raise CheckpointError(
            path, "; ".join(problems), f"{len(expected)} tensors matching config.yml"
        )


def load_weights(model_dir: Path, config: ModelConfig, dtype: torch.dtype) -> HYMotionWeights:
    """Build on the meta device and assign the checked tensors (no double allocation)."""
    path = weights_file(model_dir)
    state = read_state_dict(path)
    check_state_dict(state, config.network, path)
    with torch.device("meta"):
        module = HYMotionWeights(config.network)
    module.load_state_dict(state, strict=True, assign=True)
    # only the network changes dtype: mean/std and the null features stay float32
    module.motion_transformer.to(dtype)
    return module.eval().requires_grad_(False)


def convert(model_dir: Path, out: Path | None = None) -> Path:
    """latest.ckpt -> model.safetensors (checked against config.yml first)."""
    from safetensors.torch import save_file

    config = parse_config(model_dir / CONFIG_FILE)
    source = model_dir / CKPT_FILE
    state = read_state_dict(source)
    check_state_dict(state, config.network, source)
    target = out or model_dir / SAFETENSORS_FILE
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        target,
        metadata={"format": "pt", "source": CKPT_FILE},
    )
    return target


def save_checkpoint(module: HYMotionWeights, model_dir: Path) -> Path:
    """Write ``latest.ckpt`` in the official layout (used for the tiny model and tests)."""
    path = model_dir / CKPT_FILE
    torch.save({STATE_KEY: module.state_dict()}, path)
    return path
