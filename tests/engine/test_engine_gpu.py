"""CUDA paths and real-weight checks: skipped where there is no GPU or no weights.

Set HYMOTION_MODEL_DIR (an official HY-Motion-1.0 or -Lite directory) to check real weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from daemon.engine.checkpoint import (
    CONFIG_FILE,
    check_state_dict,
    parse_config,
    read_state_dict,
    weights_file,
)
from daemon.engine.factory import create_engine
from daemon.engine_api import JobOutput, JobSpec
from shared_protocol import ResourceExhausted

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _job(seeds: tuple[int, ...] = (0, 1, 2, 3), frames: int = 150) -> JobSpec:
    return JobSpec("g", "a person walks forward", frames, seeds, 5.0, 20, "tiny")


def _run(engine, job: JobSpec):
    return engine.run_batch([job], lambda *a: None, lambda j: False)[0]


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("text_encoders", ["resident", "offload"])
def test_cuda_matches_cpu(tiny_root: Path, text_encoders: str) -> None:
    options = {"tiny_dir": str(tiny_root), "text_encoders": text_encoders}
    on_cpu = _run(create_engine(options, "cpu"), _job())
    on_gpu = _run(create_engine(options, "cuda"), _job())
    assert isinstance(on_cpu, JobOutput) and isinstance(on_gpu, JobOutput)
    # same noise (the config draws it on the CPU), different kernels: close, not bit-equal
    assert abs(on_cpu.joint_positions - on_gpu.joint_positions).max() < 1e-3


@pytest.mark.gpu
@cuda
def test_bf16_and_compile_run_on_cuda(tiny_root: Path) -> None:
    fp32 = _run(create_engine({"tiny_dir": str(tiny_root)}, "cuda"), _job())
    for options in ({"precision": "bf16"}, {"compile": True}):
        out = _run(create_engine({"tiny_dir": str(tiny_root), **options}, "cuda"), _job())
        assert isinstance(out, JobOutput) and isinstance(fp32, JobOutput)
        assert abs(out.joint_positions - fp32.joint_positions).max() < 0.05


@pytest.mark.gpu
@cuda
def test_out_of_memory_fails_the_batch_and_the_engine_keeps_serving(tiny_root: Path) -> None:
    engine = create_engine({"tiny_dir": str(tiny_root)}, "cuda")
    torch.cuda.set_per_process_memory_fraction(1e-4)
    try:
        failed = _run(engine, _job(seeds=tuple(range(8)), frames=360))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert isinstance(failed, ResourceExhausted)
    assert isinstance(_run(engine, _job(seeds=(1,))), JobOutput)


@pytest.mark.skipif("HYMOTION_MODEL_DIR" not in os.environ, reason="set HYMOTION_MODEL_DIR")
def test_official_weights_load_by_name_and_shape() -> None:
    model_dir = Path(os.environ["HYMOTION_MODEL_DIR"])
    config = parse_config(model_dir / CONFIG_FILE)
    path = weights_file(model_dir)
    state = read_state_dict(path)
    check_state_dict(state, config.network, path)
    assert len(state) == {1280: 428, 1024: 308}[config.network.feat_dim]
    assert all(t.dtype == torch.float32 for t in state.values())
