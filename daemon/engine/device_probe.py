"""Configured device strings -> facts about this machine -> a verdict in plain words.

``serve`` refuses to start and ``check`` reports a problem when a device cannot be used: not a
device name, a torch build without CUDA, an NVIDIA driver too old for it, no GPU with that
index, a GPU that cannot be opened, or too little free memory for the configured models. Each
problem says what to do.

Reading the facts (``read_cuda_facts``) is the only part that touches CUDA; judging them
(``judge``) works on plain data, so every verdict can be tested on a machine without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import CONFIG_FILE, expected_shapes, parse_config
from .engine import first_line
from .errors import CheckpointError
from .factory import PRECISIONS, TINY, EngineOptions
from .memory import GIB, ModelFootprint, ServingNeed, serving_need
from .tiny import ensure_tiny, tiny_paths

TORCH_INSTALL_URL = "https://pytorch.org/get-started/locally/"
#: feat_dim of the Standard model: the Lite model is the smaller choice for it.
STANDARD_WIDTH = 1280
USE_CPU = "or set devices to cpu"


@dataclass(frozen=True)
class GpuFacts:
    index: int
    name: str
    total_bytes: int
    #: Measured only for the configured GPUs (measuring opens a CUDA context on it).
    free_bytes: int | None = None
    #: What opening it raised (busy in exclusive mode, lost, ...), if anything.
    error: str = ""

    def describe(self) -> str:
        return f"cuda:{self.index} ({self.name}, {self.total_bytes / GIB:.1f} GiB)"


@dataclass(frozen=True)
class CudaFacts:
    """What this process's torch can say about CUDA, as plain data."""

    torch_version: str
    #: CUDA version torch was built for; None for a CPU-only build.
    cuda_build: str | None
    #: Highest CUDA version the NVIDIA driver supports, when torch can tell.
    driver_cuda: str | None = None
    #: First line of what CUDA initialisation raised, if it failed.
    init_error: str = ""
    gpus: tuple[GpuFacts, ...] = ()
    #: CUDA_VISIBLE_DEVICES, which renumbers and hides GPUs.
    visible_devices: str | None = None


@dataclass(frozen=True)
class DeviceProblem:
    device: str
    what: str
    remedy: str

    def __str__(self) -> str:
        return f"device {self.device}: {self.what}. {self.remedy}."


@dataclass(frozen=True)
class DeviceVerdict:
    device: str
    #: What was found, for ``check``: the GPU, its free memory and the need.
    facts: str
    problem: DeviceProblem | None = None
    free_bytes: int | None = None


# --- facts ------------------------------------------------------------------------------------


def read_cuda_facts(measure: Sequence[int] = ()) -> CudaFacts:
    """Ask torch; free memory only for the GPU indices in ``measure``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    base = CudaFacts(torch.__version__, torch.version.cuda, visible_devices=visible)
    if base.cuda_build is None:
        return base
    driver = _driver_cuda()
    try:
        torch.cuda.init()
    except (RuntimeError, AssertionError) as exc:  # what torch raises for driver/GPU trouble
        return CudaFacts(base.torch_version, base.cuda_build, driver, first_line(exc), (), visible)
    gpus = tuple(_gpu_facts(i, i in measure) for i in range(torch.cuda.device_count()))
    return CudaFacts(base.torch_version, base.cuda_build, driver, "", gpus, visible)


def _gpu_facts(index: int, measure: bool) -> GpuFacts:
    try:
        props = torch.cuda.get_device_properties(index)
        free = torch.cuda.mem_get_info(index)[0] if measure else None
    except RuntimeError as exc:  # a GPU that is busy, lost or in a bad state
        return GpuFacts(index, "unknown GPU", 0, error=first_line(exc))
    return GpuFacts(index, props.name, props.total_memory, free)


def _driver_cuda() -> str | None:
    read = getattr(torch._C, "_cuda_getDriverVersion", None)  # CUDA builds only
    try:
        version = read() if read is not None else 0
    except RuntimeError:  # no driver at all
        version = 0
    return f"{version // 1000}.{version % 1000 // 10}" if version else None


# --- verdict ----------------------------------------------------------------------------------


def parse_device(text: str) -> torch.device | DeviceProblem:
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        return DeviceProblem(
            repr(text), "not a device name", "Use cpu, cuda or cuda:N (cuda:0 is the first GPU)"
        )
    if device.type not in ("cpu", "cuda"):
        return DeviceProblem(
            text, "this daemon runs on the CPU or on CUDA GPUs only", "Use cpu, cuda or cuda:N"
        )
    if device.type == "cpu" and device.index is not None:
        # torch takes cpu:N as the CPU: listing two would run two engines on one device.
        return DeviceProblem(text, "the CPU is one device, without an index", "Use cpu (once)")
    return device


def judge(
    text: str,
    facts: CudaFacts | None,
    need: ServingNeed | None,
    remedies: Sequence[str] = (),
) -> DeviceVerdict:
    """The verdict for one configured device string. ``facts`` may be None for a CPU device;
    ``need`` None skips the memory check; ``remedies`` are the memory-saving steps that apply."""
    device = parse_device(text)
    if isinstance(device, DeviceProblem):
        return DeviceVerdict(text, "", device)
    if device.type == "cpu":
        return DeviceVerdict(text, "host memory (not checked)")
    assert facts is not None
    if facts.cuda_build is None:
        return _bad(
            text,
            f"this torch build ({facts.torch_version}) has no CUDA support",
            f"Install a CUDA build of torch ({TORCH_INSTALL_URL}), {USE_CPU}",
        )
    if facts.init_error and _driver_too_old(facts):
        found = f"; the driver supports CUDA {facts.driver_cuda}" if facts.driver_cuda else ""
        return _bad(
            text,
            f"the NVIDIA driver is too old for this torch build (torch {facts.torch_version} "
            f"needs CUDA {facts.cuda_build}{found})",
            f"Update the NVIDIA driver, or install a torch build for an older CUDA, {USE_CPU}",
        )
    index = device.index if device.index is not None else 0
    hidden = (
        f" (CUDA_VISIBLE_DEVICES={facts.visible_devices} limits what torch sees)"
        if facts.visible_devices is not None
        else ""
    )
    if not facts.gpus:
        said = f" (CUDA said: {facts.init_error})" if facts.init_error else ""
        return _bad(
            text,
            f"torch finds no CUDA GPU on this machine{said}{hidden}",
            f"Check that nvidia-smi lists a GPU and that CUDA_VISIBLE_DEVICES is right, {USE_CPU}",
        )
    if index >= len(facts.gpus):
        listing = ", ".join(g.describe() for g in facts.gpus)
        names = [f"cuda:{g.index}" for g in facts.gpus]
        pick = f"Pick {names[0]}" if len(names) == 1 else f"Pick one of {', '.join(names)}"
        return _bad(
            text,
            f"there is no GPU with index {index}; this machine has {len(facts.gpus)}: "
            f"{listing}{hidden}",
            f"{pick}, {USE_CPU}",
        )
    gpu = facts.gpus[index]
    named = f"{text} ({gpu.name})"
    if gpu.error or gpu.free_bytes is None:
        return _bad(
            named,
            f"it cannot be used: {gpu.error or 'its free memory could not be read'}",
            "Check nvidia-smi (another process may hold it in exclusive mode), or pick another "
            f"device, {USE_CPU}",
        )
    amount = f"{gpu.free_bytes / GIB:.1f} of {gpu.total_bytes / GIB:.1f} GiB"
    free = f"{amount} free"
    if need is None:
        return DeviceVerdict(text, f"{gpu.name}, {free}", free_bytes=gpu.free_bytes)
    found = f"{gpu.name}, {free}; the configured models need {need.summary()}"
    if need.total_bytes > gpu.free_bytes:
        steps = ", ".join([*remedies, "free memory other processes hold (nvidia-smi)"])
        return DeviceVerdict(
            text,
            found,
            DeviceProblem(
                named,
                f"not enough free memory for the configured models: they need "
                f"{need.summary()}; only {amount} are free",
                f"{steps[0].upper()}{steps[1:]}, or pick another device",
            ),
            gpu.free_bytes,
        )
    return DeviceVerdict(text, f"{found}: fits", free_bytes=gpu.free_bytes)


def _bad(device: str, what: str, remedy: str) -> DeviceVerdict:
    return DeviceVerdict(device, "", DeviceProblem(device, what, remedy))


def _driver_too_old(facts: CudaFacts) -> bool:
    if "too old" in facts.init_error.lower():
        return True
    if facts.driver_cuda is None or facts.cuda_build is None:
        return False
    # Within one major version a newer runtime runs on an older driver (minor compatibility).
    return int(facts.driver_cuda.split(".")[0]) < int(facts.cuda_build.split(".")[0])


# --- the configured models --------------------------------------------------------------------


def footprints(opts: EngineOptions) -> list[ModelFootprint]:
    """The configured models whose config.yml is readable (the others will be unavailable)."""
    out = []
    for name, source in opts.models or ((TINY, TINY),):
        text_bytes = None
        text_key = "official"
        if source == TINY:
            model_dir, clip, qwen = tiny_paths(ensure_tiny(opts.tiny_root()))
            text_bytes = float(_bytes_on_disk(clip) + _bytes_on_disk(qwen))
            text_key = TINY
        else:
            model_dir = Path(source).expanduser()
        try:
            cfg = parse_config(model_dir / CONFIG_FILE).network
        except CheckpointError:
            continue
        values = sum(_count(shape) for shape in expected_shapes(cfg).values())
        out.append(ModelFootprint(name, cfg, values, text_key, text_bytes))
    return out


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _bytes_on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def memory_remedies(opts: EngineOptions, models: Sequence[ModelFootprint]) -> list[str]:
    """The memory-saving settings not already in use, in the order worth trying."""
    steps = []
    if any(m.cfg.feat_dim >= STANDARD_WIDTH for m in models):
        steps.append("choose the Lite model (HY-Motion-1.0-Lite)")
    if opts.text_encoders == "resident":
        steps.append('offload the text encoders (engine.text_encoders = "offload" or "cpu")')
    if opts.qwen_quantization == "none" and opts.text_encoders != "cpu":
        steps.append('quantize Qwen3 (engine.qwen_quantization = "8bit" or "4bit")')
    if opts.precision != "bf16":
        steps.append('use engine.precision = "bf16"')
    return steps


def probe_devices(
    devices: Sequence[str], opts: EngineOptions, facts: CudaFacts | None = None
) -> list[DeviceVerdict]:
    """A verdict for every configured device; ``facts`` are read from torch unless given."""
    parsed = [parse_device(text) for text in devices]
    cuda = [d for d in parsed if isinstance(d, torch.device) and d.type == "cuda"]
    need, remedies = None, []
    if cuda and facts is None:
        facts = read_cuda_facts([d.index or 0 for d in cuda])
    if cuda and facts is not None and facts.gpus:  # only a usable CUDA has memory to compare
        models = footprints(opts)
        dtype = PRECISIONS[opts.precision]
        need = serving_need(models, dtype, opts.text_encoders, opts.qwen_quantization)
        remedies = memory_remedies(opts, models)
    # A device listed twice never gets here: the configuration refuses it (daemon/config.py).
    return [judge(text, facts, need, remedies) for text in devices]


def problems(verdicts: Sequence[DeviceVerdict]) -> list[DeviceProblem]:
    return [v.problem for v in verdicts if v.problem is not None]
