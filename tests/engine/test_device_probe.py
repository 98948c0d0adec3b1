"""Device verdicts for ``serve`` and ``check``: facts given as plain data (what torch would report
on a GPU box), and the real facts of this CPU-only torch."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from daemon.engine.checkpoint import expected_shapes
from daemon.engine.device_probe import (
    CudaFacts,
    GpuFacts,
    judge,
    memory_remedies,
    probe_devices,
    read_cuda_facts,
)
from daemon.engine.factory import EngineOptions
from daemon.engine.memory import GIB, ModelFootprint, serving_need
from daemon.engine.mmdit import CONFIGS
from daemon.engine.tiny import MODEL_DIR

H200 = 139.8 * GIB
TWO_H200 = CudaFacts(
    "2.13.0+cu128",
    "12.8",
    "12.9",
    gpus=(
        GpuFacts(0, "NVIDIA H200", int(H200), free_bytes=int(131 * GIB)),
        GpuFacts(1, "NVIDIA H200", int(H200)),
    ),
)
RTX_3060 = CudaFacts(
    "2.13.0+cu128",
    "12.8",
    "12.8",
    gpus=(GpuFacts(0, "NVIDIA GeForce RTX 3060", int(12 * GIB), free_bytes=int(11.5 * GIB)),),
)


def _standard() -> ModelFootprint:
    cfg = CONFIGS["standard"]
    values = sum(math.prod(shape) for shape in expected_shapes(cfg).values())
    return ModelFootprint("standard", cfg, values, "official")


def _message(text: str, facts: CudaFacts | None, **kw: object) -> str:
    verdict = judge(text, facts, **kw)  # type: ignore[arg-type]
    assert verdict.problem is not None, verdict
    return str(verdict.problem)


def test_a_cpu_only_torch_names_the_build_and_what_to_install() -> None:
    facts = CudaFacts("2.13.0+cpu", None)
    assert _message("cuda:3", facts, need=None) == (
        "device cuda:3: this torch build (2.13.0+cpu) has no CUDA support. Install a CUDA build "
        "of torch (https://pytorch.org/get-started/locally/), or set devices to cpu."
    )


@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch has CUDA")
def test_the_real_facts_of_this_torch_say_no_cuda() -> None:
    facts = read_cuda_facts([0])
    assert facts.cuda_build is None and facts.torch_version == torch.__version__
    assert "has no CUDA support" in _message("cuda", facts, need=None)


def test_an_index_past_the_last_gpu_lists_the_gpus_that_exist() -> None:
    assert _message("cuda:3", TWO_H200, need=None) == (
        "device cuda:3: there is no GPU with index 3; this machine has 2: cuda:0 (NVIDIA H200, "
        "139.8 GiB), cuda:1 (NVIDIA H200, 139.8 GiB). Pick one of cuda:0, cuda:1, or set "
        "devices to cpu."
    )
    hidden = CudaFacts("2.13.0+cu128", "12.8", gpus=TWO_H200.gpus[:1], visible_devices="1")
    assert _message("cuda:1", hidden, need=None) == (
        "device cuda:1: there is no GPU with index 1; this machine has 1: cuda:0 (NVIDIA H200, "
        "139.8 GiB) (CUDA_VISIBLE_DEVICES=1 limits what torch sees). Pick cuda:0, or set devices "
        "to cpu."
    )


def test_a_driver_too_old_for_the_build() -> None:
    said = "The NVIDIA driver on your system is too old (found version 11040)."
    facts = CudaFacts("2.13.0+cu128", "12.8", "11.4", init_error=said)
    assert _message("cuda:0", facts, need=None) == (
        "device cuda:0: the NVIDIA driver is too old for this torch build (torch 2.13.0+cu128 "
        "needs CUDA 12.8; the driver supports CUDA 11.4). Update the NVIDIA driver, or install "
        "a torch build for an older CUDA, or set devices to cpu."
    )
    # the same major version runs on an older minor driver: not "too old"
    ok = CudaFacts("2.13.0+cu128", "12.8", "12.2", init_error="No CUDA GPUs are available")
    assert "torch finds no CUDA GPU on this machine (CUDA said: No CUDA GPUs are available)" in (
        _message("cuda", ok, need=None)
    )


def test_a_gpu_that_cannot_be_opened() -> None:
    busy = GpuFacts(0, "NVIDIA A100", int(80 * GIB), error="CUDA error: busy or unavailable")
    facts = CudaFacts("2.13.0+cu128", "12.8", gpus=(busy,))
    assert _message("cuda:0", facts, need=None).startswith(
        "device cuda:0 (NVIDIA A100): it cannot be used: CUDA error: busy or unavailable. Check "
        "nvidia-smi"
    )


def test_too_little_free_memory_gives_the_figures_and_the_ways_out() -> None:
    opts = EngineOptions()  # fp32, resident encoders, unquantized Qwen3: the biggest setup
    models = [_standard()]
    need = serving_need(models, torch.float32, opts.text_encoders, opts.qwen_quantization)
    assert need.weights_bytes == 1_042_878_811 * 4
    message = _message("cuda:0", RTX_3060, need=need, remedies=memory_remedies(opts, models))
    assert message.startswith(
        "device cuda:0 (NVIDIA GeForce RTX 3060): not enough free memory for the configured "
        f"models: they need about {need.total_bytes / GIB:.1f} GiB (DiT weights 3.9 GiB, text "
        "encoders 15.7 GiB, one 12 s candidate "
    )
    assert "; only 11.5 of 12.0 GiB are free. Choose the Lite model (HY-Motion-1.0-Lite)" in message
    assert 'engine.qwen_quantization = "8bit" or "4bit"' in message
    assert message.endswith(
        'use engine.precision = "bf16", free memory other processes hold (nvidia-smi), or pick '
        "another device."
    )
    # the H200 has room: a verdict with the same figures, no problem
    fits = judge("cuda:0", TWO_H200, need)
    assert fits.problem is None and fits.facts.endswith(": fits")
    assert fits.facts.startswith("NVIDIA H200, 131.0 of 139.8 GiB free; the configured models")


def test_offloaded_encoders_leave_the_device_between_jobs() -> None:
    models = [_standard()]
    resident = serving_need(models, torch.bfloat16, "resident", "none")
    offload = serving_need(models, torch.bfloat16, "offload", "none")
    on_cpu = serving_need(models, torch.bfloat16, "cpu", "none")
    assert offload.text_bytes == 0 and offload.job_bytes == resident.text_bytes
    assert on_cpu.total_bytes < offload.total_bytes < resident.total_bytes
    remedies = memory_remedies(EngineOptions(text_encoders="cpu", precision="bf16"), models)
    assert remedies == ["choose the Lite model (HY-Motion-1.0-Lite)"]


def test_two_models_share_one_set_of_text_encoders() -> None:
    lite_cfg = CONFIGS["lite"]
    lite = ModelFootprint("lite", lite_cfg, 460_851_803, "official")
    one = serving_need([_standard()], torch.bfloat16, "resident", "none")
    both = serving_need([_standard(), lite], torch.bfloat16, "resident", "none")
    assert both.text_bytes == one.text_bytes
    assert both.weights_bytes == one.weights_bytes + 460_851_803 * 2


def test_names_that_are_not_devices() -> None:
    assert _message("gpu0", None, need=None) == (
        "device 'gpu0': not a device name. Use cpu, cuda or cuda:N (cuda:0 is the first GPU)."
    )
    assert _message("mps", None, need=None) == (
        "device mps: this daemon runs on the CPU or on CUDA GPUs only. Use cpu, cuda or cuda:N."
    )
    # A second name for the CPU would be a second engine on the same device.
    assert _message("cpu:1", None, need=None) == (
        "device cpu:1: the CPU is one device, without an index. Use cpu (once)."
    )


def test_probe_reads_the_configured_models(tiny_root: Path, tmp_path: Path) -> None:
    """The need comes from each model's config.yml; an unreadable model is left to the loader."""
    model = shutil.copytree(tiny_root / MODEL_DIR, tmp_path / "copy")
    opts = EngineOptions(
        models=(("a", str(model)), ("gone", str(tmp_path / "nowhere"))), tiny_dir=str(tiny_root)
    )
    small = CudaFacts("2.13.0+cu128", "12.8", gpus=(GpuFacts(0, "tiny GPU", 10**6, 10**5),))
    cpu, gpu = probe_devices(["cpu", "cuda:0"], opts, facts=small)
    assert cpu.problem is None and cpu.facts == "host memory (not checked)"
    assert gpu.problem is not None and "not enough free memory" in gpu.problem.what
    # the tiny copy holds its DiT weights; text encoders count at the Qwen3-8B + CLIP-L figure
    assert "DiT weights 0.0 GiB, text encoders 15.7 GiB" in gpu.problem.what
