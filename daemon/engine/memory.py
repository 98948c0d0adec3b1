"""Device-memory plan: what each component needs, so jobs that cannot fit are refused early.

Figures are estimates from parameter counts (spec §8.2) plus an activation model of the
shortcut sampler; ``check`` prints them and ``check_admissible`` compares them with the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shared_protocol import FPS, MAX_FRAMES

from .mmdit import MMDiTConfig
from .text import TEXT_SLOTS

GIB = 1024**3
#: Qwen3-8B text encoder bytes per mode (bf16 8.19 B params; bitsandbytes int8 / nf4 figures
#: from spec §8.3: ≈ 8.7 GB / ≈ 5.5 GB incl. the bf16 embeddings).
QWEN_BYTES = {"none": 16.4e9, "8bit": 8.7e9, "4bit": 5.5e9}
CLIP_BYTES = 0.5e9
CUDA_CONTEXT_BYTES = 0.6e9
#: Activation model: per motion row and token, about this many D-wide values are alive at the
#: peak of a block (qkv 3D, MLP hidden 4D, residual and norm copies), plus the attention scores.
LIVE_WIDTHS = 16


def bytes_per_value(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class MemoryPlan:
    dit_bytes: float
    text_bytes: float  # on the device at rest (0 when offloaded or on the CPU)
    text_peak_bytes: float  # on the device while encoding
    context_bytes: float

    @property
    def resident_bytes(self) -> float:
        return self.dit_bytes + self.text_bytes + self.context_bytes

    def peak_bytes(self, activations: float) -> float:
        """Highest device use: while encoding (offload brings the encoders in) or sampling."""
        encoding = self.dit_bytes + max(self.text_peak_bytes, self.text_bytes)
        sampling = self.dit_bytes + self.text_bytes + activations
        return max(encoding, sampling) + self.context_bytes

    def lines(self) -> list[str]:
        return [
            f"DiT weights          {self.dit_bytes / GIB:7.2f} GiB",
            f"text encoders (rest) {self.text_bytes / GIB:7.2f} GiB",
            f"text encoders (peak) {self.text_peak_bytes / GIB:7.2f} GiB",
            f"runtime context      {self.context_bytes / GIB:7.2f} GiB",
            f"resident total       {self.resident_bytes / GIB:7.2f} GiB",
        ]


def plan(
    parameters: int,
    dtype: torch.dtype,
    placement: str,
    quantization: str,
    device: torch.device,
    text_bytes: float | None = None,
) -> MemoryPlan:
    """Device bytes for one model; ``text_bytes`` overrides the Qwen3-8B + CLIP-L figure."""
    text = text_bytes if text_bytes is not None else QWEN_BYTES[quantization] + CLIP_BYTES
    on_device = placement == "resident" or (quantization != "none" and placement != "cpu")
    peak = text if placement != "cpu" else 0.0
    return MemoryPlan(
        dit_bytes=parameters * bytes_per_value(dtype),
        text_bytes=text if on_device else 0.0,
        text_peak_bytes=peak,
        context_bytes=CUDA_CONTEXT_BYTES if device.type == "cuda" else 0.0,
    )


def activation_bytes(
    cfg: MMDiTConfig, rows: int, frames: int, text_tokens: int, dtype: torch.dtype
) -> float:
    """Peak activations of one sampler step with ``rows`` motion rows (2 × candidates with CFG).

    Counts the cached text stream (keys/values of every block) and one block's live tensors.
    """
    width = bytes_per_value(dtype)
    tokens = frames + text_tokens
    blocks = cfg.double_blocks + cfg.single_blocks
    text_cache = 2 * blocks * rows * text_tokens * cfg.feat_dim * width
    live = rows * tokens * cfg.feat_dim * LIVE_WIDTHS * width
    scores = rows * cfg.num_heads * frames * tokens * 4  # float32 softmax in the math kernel
    return float(text_cache + live + scores)


@dataclass(frozen=True)
class ModelFootprint:
    """What one configured model will put on a device, known before anything is loaded."""

    name: str
    cfg: MMDiTConfig
    parameters: int
    #: Models with the same key share one set of text encoders (the loader caches them).
    text_key: str
    #: Bytes of its text encoders; None means the Qwen3-8B + CLIP-L figure.
    text_bytes: float | None = None


@dataclass(frozen=True)
class ServingNeed:
    """Device bytes the configured models need to serve the smallest full-length job."""

    weights_bytes: float  # every model's DiT
    text_bytes: float  # text encoders at rest on the device (each shared set once)
    job_bytes: float  # one candidate of MAX_FRAMES on top: activations + encoders brought in

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.text_bytes + self.job_bytes

    def summary(self) -> str:
        return (
            f"about {self.total_bytes / GIB:.1f} GiB (DiT weights {self.weights_bytes / GIB:.1f}"
            f" GiB, text encoders {self.text_bytes / GIB:.1f} GiB, one {MAX_FRAMES // FPS} s "
            f"candidate {self.job_bytes / GIB:.1f} GiB)"
        )


def serving_need(
    models: list[ModelFootprint], dtype: torch.dtype, placement: str, quantization: str
) -> ServingNeed:
    """Resident weights plus the peak of one 1-candidate, 12 s job (2 rows with CFG).

    The CUDA context is left out: it is compared with ``torch.cuda.mem_get_info``, which is
    measured after this process created its context.
    """
    cpu = torch.device("cpu")  # no context term; placement decides where the encoders rest
    weights = 0.0
    text_rest: dict[str, float] = {}
    job = 0.0
    for model in models:
        model_plan = plan(model.parameters, dtype, placement, quantization, cpu, model.text_bytes)
        weights += model_plan.dit_bytes
        text_rest[model.text_key] = model_plan.text_bytes
        brought_in = max(model_plan.text_peak_bytes - model_plan.text_bytes, 0.0)
        activations = activation_bytes(model.cfg, 2, MAX_FRAMES, TEXT_SLOTS, dtype)
        job = max(job, activations, brought_in)
    return ServingNeed(weights, sum(text_rest.values()), job)


# --- a Ray cluster: what one replica of each deployment needs ----------------------------------


@dataclass(frozen=True)
class ReplicaNeed:
    """Memory one replica of a Ray Serve deployment needs on its GPU (host memory when it
    reserves none), and how many replicas share one GPU."""

    deployment: str
    replicas: str  # "4", or "1-4" with autoscaling
    gpus: float  # GPUs each replica reserves
    parts: tuple[tuple[str, float], ...]

    @property
    def replica_bytes(self) -> float:
        return sum(size for _, size in self.parts)

    @property
    def sharing(self) -> int:
        """Replicas on one GPU: fractions pack (0.5 -> 2); a replica with more GPUs uses one."""
        return int(1 // self.gpus) if 0 < self.gpus < 1 else 1

    @property
    def gpu_bytes(self) -> float:
        return self.replica_bytes * self.sharing

    def line(self) -> str:
        parts = " + ".join(f"{what} {_size(size)}" for what, size in self.parts)
        where = f"{self.gpus:g} GPU each" if self.gpus else "no GPU (host memory)"
        if self.sharing > 1:
            where += f", {self.sharing} share a GPU"
        total = f"{_size(self.replica_bytes)} per replica"
        if self.gpus:
            total += f", {_size(self.gpu_bytes)} per GPU"
        return f"{self.deployment}: {self.replicas} replica(s), {where}: {parts} = {total}"


def replica_needs(
    models: list[ModelFootprint],
    dtype: torch.dtype,
    placement: str,
    quantization: str,
    engine: tuple[str, float],
    encoders: tuple[str, float] | None,
) -> list[ReplicaNeed]:
    """One ``ReplicaNeed`` per deployment: ``engine`` and ``encoders`` are (replicas, GPUs per
    replica); ``encoders`` None: every engine replica holds its own text encoders."""
    candidate = f"one {MAX_FRAMES // FPS} s candidate"

    def context(gpus: float) -> tuple[tuple[str, float], ...]:
        return (("CUDA context", CUDA_CONTEXT_BYTES),) if gpus else ()

    if encoders is None:
        need = serving_need(models, dtype, placement, quantization)
        parts = (
            ("DiT weights", need.weights_bytes),
            ("text encoders", need.text_bytes),
            (candidate, need.job_bytes),
        )
        return [ReplicaNeed("engine", engine[0], engine[1], parts + context(engine[1]))]
    # The engine replicas hold no encoders ("cpu": nothing of them on the device) ...
    motion = serving_need(models, dtype, "cpu", quantization)
    engine_parts = (("DiT weights", motion.weights_bytes), (candidate, motion.job_bytes))
    # ... and the encoder replicas hold every set at its placement, plus what an encoding
    # brings in (offload), but no motion model.
    text = serving_need(models, dtype, placement, quantization)
    brought_in = max(
        (
            max(p.text_peak_bytes - p.text_bytes, 0.0)
            for p in _text_plans(models, placement, quantization)
        ),
        default=0.0,
    )
    encoder_parts = (("text encoders", text.text_bytes + brought_in),)
    return [
        ReplicaNeed("engine", engine[0], engine[1], engine_parts + context(engine[1])),
        ReplicaNeed(
            "text_encoders", encoders[0], encoders[1], encoder_parts + context(encoders[1])
        ),
    ]


def _text_plans(
    models: list[ModelFootprint], placement: str, quantization: str
) -> list[MemoryPlan]:
    cpu = torch.device("cpu")
    return [plan(0, torch.float32, placement, quantization, cpu, m.text_bytes) for m in models]


def _size(size: float) -> str:
    """GiB with two decimals; MiB below 0.1 GiB (the tiny model's parts)."""
    return f"{size / GIB:.2f} GiB" if size >= 0.1 * GIB else f"{size / 2**20:.1f} MiB"
