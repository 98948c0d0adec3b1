"""``create_engine(options, device)``: the daemon config's ``[engine]`` table -> an Engine.

Keys (all optional; see docs/engine.md):

- ``models``: {name: model_dir}. A directory in the official layout (config.yml + latest.ckpt
  or model.safetensors); the value "tiny" names the built-in untrained model. Absent or empty:
  the daemon serves only ``tiny``.
- ``default_model``: a name from ``models`` (default: the first).
- ``clip``, ``qwen``: local directory or hub id of the text encoders of real models
  (default ``openai/clip-vit-large-patch14`` and ``Qwen/Qwen3-8B``); shared by all models.
- ``system_prompt_file``: file holding the official Qwen3 system prompt (sha256-checked).
- ``mesh_dir``: directory with the wooden mesh .bin files for exact grounding.
- ``precision``: fp32 (official) | tf32 | bf16, for the DiT.
- ``text_encoders``: resident | offload (host memory between encodings) | cpu.
- ``qwen_quantization``: none | 8bit | 4bit (needs bitsandbytes and CUDA).
- ``compile``: bool, torch.compile the motion forward (unverified on GPU).
- ``solver``: euler (official) | heun | the diffusers solvers of ``solvers.SOLVERS``.
- ``max_batch_candidates``: candidates summed over the jobs of one batch (default 16).
- ``memory_limit_gb``: device memory jobs may plan for (default: the device's size).
- ``tiny_dir``: where the tiny model is created (default ``<data_dir>/tiny`` or
  ``~/.cache/hy-motion/tiny``); ``data_dir``: the daemon's data directory.

Model-load failures never raise out of ``create_engine``: the model is listed unavailable with
the reason. Invalid option values raise InvalidArgument naming the ``engine.<key>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from shared_protocol import InvalidArgument, ModelInfo, ModelUnavailable

from .checkpoint import CONFIG_FILE, ModelConfig, load_weights, parse_config
from .engine import HYMotionEngine, ServedModel
from .grounding import Grounding, JointGrounding, MeshGrounding
from .memory import plan
from .pipeline import MotionPipeline
from .prompt import resolve_system_prompt
from .solvers import check_solver
from .text import (
    PLACEMENTS,
    QUANTIZATIONS,
    ClipEncoder,
    PromptEncoder,
    QwenEncoder,
    TextEncoders,
)
from .tiny import LABEL as TINY_LABEL
from .tiny import ensure_tiny, tiny_paths

log = logging.getLogger(__name__)
TINY = "tiny"
PRECISIONS = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class EngineOptions:
    models: tuple[tuple[str, str], ...] = ()
    default_model: str | None = None
    clip: str = "openai/clip-vit-large-patch14"
    qwen: str = "Qwen/Qwen3-8B"
    system_prompt_file: str | None = None
    mesh_dir: str | None = None
    precision: str = "fp32"
    text_encoders: str = "resident"
    qwen_quantization: str = "none"
    compile: bool = False
    solver: str = "euler"
    max_batch_candidates: int = 16
    memory_limit_gb: float | None = None
    tiny_dir: str | None = None
    data_dir: str | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> EngineOptions:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InvalidArgument(
                f"engine.{unknown[0]}",
                f"unknown engine option {unknown[0]!r}",
                allowed=", ".join(known),
            )
        values: dict[str, Any] = dict(options)
        models = values.pop("models", None) or {}
        if not isinstance(models, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in models.items()
        ):
            raise InvalidArgument(
                "engine.models",
                "models must map names to directories",
                allowed='{name = "/path/to/HY-Motion-1.0"}',
            )
        _choice(values, "precision", tuple(PRECISIONS))
        _choice(values, "text_encoders", PLACEMENTS)
        _choice(values, "qwen_quantization", QUANTIZATIONS)
        if "solver" in values:
            check_solver(values["solver"])
        count = values.get("max_batch_candidates", 16)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidArgument(
                "engine.max_batch_candidates", "must be a positive integer", allowed=">= 1"
            )
        opts = cls(models=tuple(models.items()), **values)
        names = [n for n, _ in opts.models] or [TINY]
        if opts.default_model is not None and opts.default_model not in names:
            raise InvalidArgument(
                "engine.default_model",
                f"{opts.default_model!r} is not in engine.models",
                allowed=", ".join(names),
            )
        return opts

    def tiny_root(self) -> Path:
        if self.tiny_dir:
            return Path(self.tiny_dir).expanduser()
        if self.data_dir:
            return Path(self.data_dir).expanduser() / "tiny"
        return Path.home() / ".cache" / "hy-motion" / "tiny"


def _choice(values: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    if key in values and values[key] not in allowed:
        raise InvalidArgument(
            f"engine.{key}", f"{values[key]!r} is not a valid {key}", allowed=", ".join(allowed)
        )


@dataclass(frozen=True)
class EncoderKey:
    """The text encoders a model uses; models with equal keys share one loaded set."""

    clip: str
    qwen: str
    #: The official system prompt (real models) or the tiny model's own.
    official: bool


#: Text encoders for a key: loaded in this process (the default), or a client of an encoder
#: deployment shared by several engines (daemon/cluster/text_replica.py).
TextSource = Callable[[EncoderKey], PromptEncoder]


class ModelLoader:
    """Loads models one by one, sharing text encoders and the grounding between them."""

    def __init__(
        self, opts: EngineOptions, device: torch.device, text_source: TextSource | None = None
    ) -> None:
        self.opts = opts
        self.device = device
        self.dtype = PRECISIONS[opts.precision]
        self._text_source = text_source or self.load_encoders
        self._encoders: dict[EncoderKey, PromptEncoder] = {}
        self._grounding: Grounding | None = None

    def grounding(self) -> Grounding:
        if self._grounding is None:
            mesh = self.opts.mesh_dir
            self._grounding = MeshGrounding.load(Path(mesh)) if mesh else JointGrounding()
        return self._grounding

    def sources(self, source: str) -> tuple[Path, EncoderKey]:
        """A model source (directory or "tiny") -> its model directory and its encoders."""
        if source == TINY:
            model_dir, clip, qwen = tiny_paths(ensure_tiny(self.opts.tiny_root()))
            return model_dir, EncoderKey(str(clip), str(qwen), official=False)
        return Path(source).expanduser(), EncoderKey(self.opts.clip, self.opts.qwen, True)

    def encoders(self, key: EncoderKey) -> PromptEncoder:
        if key not in self._encoders:
            self._encoders[key] = self._text_source(key)
        return self._encoders[key]

    def load_encoders(self, key: EncoderKey) -> TextEncoders:
        """Both encoders of ``key`` in this process, placed as ``text_encoders`` says."""
        prompt_file = self.opts.system_prompt_file
        prompt = resolve_system_prompt(
            Path(prompt_file).expanduser() if prompt_file else None, official=key.official
        )
        placement = self.opts.text_encoders
        quantization = self.opts.qwen_quantization
        # load straight to where the weights rest: offloaded encoders never visit the GPU
        # at load time; bitsandbytes weights can only live on the GPU
        host = self.device if placement == "resident" else torch.device("cpu")
        qwen_home = self.device if quantization != "none" and placement != "cpu" else host
        return TextEncoders(
            ClipEncoder(key.clip, host),
            QwenEncoder(key.qwen, qwen_home, prompt, quantization),
            self.device,
            placement,
        )

    def load(self, name: str, source: str) -> ServedModel:
        tiny = source == TINY
        path, key = self.sources(source)
        config = parse_config(path / CONFIG_FILE)
        weights = load_weights(path, config, self.dtype)
        text = self.encoders(key)
        grounding = self.grounding()
        pipeline = MotionPipeline(
            weights, config, text, grounding, self.device, self.opts.solver, self.opts.compile
        )
        parameters = sum(t.numel() for t in weights.state_dict().values())
        local = isinstance(text, TextEncoders)
        text_bytes = None
        if tiny and isinstance(text, TextEncoders):
            text_bytes = float(
                sum(
                    p.numel() * p.element_size()
                    for p in (*text.clip.model.parameters(), *text.qwen.model.parameters())
                )
            )
        model_plan = plan(
            parameters,
            self.dtype,
            # encoders elsewhere put nothing on this device: plan them as "cpu"
            self.opts.text_encoders if local else "cpu",
            self.opts.qwen_quantization,
            self.device,
            text_bytes,
        )
        info = ModelInfo(
            name=name,
            label=_label(name, config, tiny, self.opts.precision, grounding),
            available=True,
            untrained=tiny,
            device=str(self.device),
            dtype=self.opts.precision,
            parameters=parameters,
        )
        return ServedModel(info, pipeline, model_plan)


def _label(name: str, config: ModelConfig, tiny: bool, precision: str, g: Grounding) -> str:
    size = {1280: "HY-Motion-1.0 Standard", 1024: "HY-Motion-1.0-Lite"}.get(
        config.network.feat_dim, f"HY-Motion (D={config.network.feat_dim})"
    )
    base = TINY_LABEL if tiny else f"{size} ({name})"
    return f"{base}, {precision}, {g.label}"


def create_engine(
    options: Mapping[str, Any], device: str, text_source: TextSource | None = None
) -> HYMotionEngine:
    """The engine for ``device`` ("cpu", "cuda", "cuda:1"); never raises for a bad model.

    ``text_source`` supplies the text encoders (default: loaded here, on ``device``)."""
    opts = EngineOptions.from_mapping(options)
    torch_device = torch.device(device)
    if opts.precision == "tf32" and torch_device.type == "cuda":
        # process-wide switches: TF32 matmuls/convolutions on Ampere and newer
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    loader = ModelLoader(opts, torch_device, text_source)
    served: dict[str, ServedModel] = {}
    for name, source in opts.models or ((TINY, TINY),):
        try:
            served[name] = loader.load(name, source)
            log.info("model %s loaded: %s", name, served[name].info.label)
        except ModelUnavailable as exc:
            served[name] = _unavailable(name, source, exc.message)
        except (OSError, RuntimeError, ValueError) as exc:  # torch/transformers failures
            served[name] = _unavailable(name, source, f"{type(exc).__name__}: {exc}")
    default = opts.default_model or next(iter(served))
    return HYMotionEngine(
        served, default, torch_device, opts.max_batch_candidates, opts.memory_limit_gb
    )


def _unavailable(name: str, source: str, reason: str) -> ServedModel:
    log.error("model %s (%s) is unavailable: %s", name, source, reason)
    label = TINY_LABEL if source == TINY else f"{name} ({source})"
    return ServedModel(
        ModelInfo(name=name, label=label, available=False, untrained=source == TINY, error=reason)
    )
