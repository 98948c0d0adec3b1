"""The Engine contract (daemon/engine_api.py) on the built-in tiny model, and its failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from daemon.engine.engine import HYMotionEngine
from daemon.engine.factory import create_engine
from daemon.engine.tiny import MODEL_DIR
from daemon.engine_api import JobOutput, JobSpec
from shared_protocol import (
    InvalidArgument,
    JobCancelled,
    ModelUnavailable,
    MotionTakes,
    ResourceExhausted,
)


def _job(
    job_id: str = "j1",
    prompt: str = "a person walks forward",
    frames: int = 60,
    seeds: tuple[int, ...] = (0, 1, 2, 3),
    steps: int = 8,
    model: str = "tiny",
) -> JobSpec:
    return JobSpec(job_id, prompt, frames, seeds, 5.0, steps, model)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, int]] = []

    def __call__(self, job_id: str, stage: str, step: int, total: int) -> None:
        self.events.append((job_id, stage, step, total))


def test_tiny_model_is_served_and_labelled_untrained(tiny_engine: HYMotionEngine) -> None:
    (info,) = tiny_engine.models()
    assert info.name == tiny_engine.default_model() == "tiny"
    assert info.available and info.untrained and "UNTRAINED" in info.label
    assert info.parameters > 0 and info.device == "cpu"
    skeleton = tiny_engine.skeleton()
    assert skeleton.joint_count == 22 and skeleton.joint_names[20] == "L_Wrist"
    assert skeleton.parents.tolist() == [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13,
                                         14, 16, 17, 18, 19]  # fmt: skip


def test_a_four_candidate_job_runs_with_progress_per_step(tiny_engine: HYMotionEngine) -> None:
    progress = Recorder()
    (out,) = tiny_engine.run_batch([_job()], progress, lambda job: False)
    assert isinstance(out, JobOutput)
    MotionTakes(out.rotations, out.root_positions, out.joint_positions).validate(
        tiny_engine.skeleton(), 4, 60
    )
    stages = [e[1] for e in progress.events]
    assert stages[0] == "encoding" and stages[-1] == "decoding"
    assert [e[2:] for e in progress.events if e[1] == "sampling"] == [(n, 8) for n in range(1, 9)]
    assert set(out.timings) == {"encode", "sample", "decode"}
    assert out.warnings == () and not out.prompt_truncated
    # grounded: the approximate sole of the lowest frame touches y = 0
    assert out.joint_positions[..., 1].min() > 0 and out.root_positions[..., 1].min() > 0.5


def test_same_seeds_same_motion(tiny_engine: HYMotionEngine) -> None:
    first = tiny_engine.run_batch([_job(seeds=(5,))], Recorder(), lambda j: False)[0]
    again = tiny_engine.run_batch([_job(seeds=(5, 6))], Recorder(), lambda j: False)[0]
    assert isinstance(first, JobOutput) and isinstance(again, JobOutput)
    np.testing.assert_allclose(first.rotations[0], again.rotations[0], atol=1e-5)


def test_warnings_for_non_english_and_truncated_prompts(tiny_engine: HYMotionEngine) -> None:
    jobs = [
        _job("a", prompt="Une personne marche en avant et saute très haut", seeds=(1,)),
        _job("b", prompt=" ".join(["walk forward and turn"] * 50), seeds=(2,)),
    ]
    french, long = tiny_engine.run_batch(jobs, Recorder(), lambda j: False)
    assert isinstance(french, JobOutput) and isinstance(long, JobOutput)
    assert any("English" in w for w in french.warnings) and not french.prompt_truncated
    assert long.prompt_truncated and any("truncated" in w for w in long.warnings)


def test_cancelled_job_is_dropped_and_the_other_finishes(tiny_engine: HYMotionEngine) -> None:
    progress = Recorder()

    def stop(job_id: str) -> bool:
        return job_id == "gone" and any(e[1] == "sampling" for e in progress.events)

    done, gone = tiny_engine.run_batch([_job("done"), _job("gone")], progress, stop)
    assert isinstance(done, JobOutput) and isinstance(gone, JobCancelled)
    assert max(e[2] for e in progress.events if e[0] == "gone" and e[1] == "sampling") == 1


def test_batch_keys_keep_models_and_step_counts_apart(tiny_engine: HYMotionEngine) -> None:
    key = tiny_engine.batch_key
    base = _job()
    assert key(base) == key(_job("other", prompt="jump", frames=200, seeds=(9,)))
    assert key(base) == key(JobSpec("g", "p", 60, (1,), 3.0, 8, "tiny"))  # guidance may differ
    assert key(base) != key(_job(steps=20))
    assert key(base) != key(_job(model="lite"))
    assert tiny_engine.max_batch_candidates("tiny") == 16


def test_admission_refuses_unknown_models_and_jobs_too_big(tiny_root: Path) -> None:
    engine = create_engine({"tiny_dir": str(tiny_root), "memory_limit_gb": 0.05}, "cpu")
    engine.check_admissible(_job(frames=60, seeds=(1,)))
    with pytest.raises(ModelUnavailable, match="unknown model 'standard'") as unknown:
        engine.check_admissible(_job(model="standard"))
    assert unknown.value.details == {"field": "model", "allowed": "tiny"}  # docs/protocol.md
    with pytest.raises(ResourceExhausted, match="GiB") as too_big:
        engine.check_admissible(_job(frames=360, seeds=tuple(range(8))))
    assert too_big.value.details["needed_gib"] > 0


def test_a_broken_model_is_reported_unavailable_not_raised(tiny_root: Path, tmp_path: Path):
    broken = Path(shutil.copytree(tiny_root / MODEL_DIR, tmp_path / "broken"))
    (broken / "latest.ckpt").write_bytes(b"not a checkpoint")
    engine = create_engine(
        {"models": {"standard": str(broken), "tiny": "tiny"}, "tiny_dir": str(tiny_root)}, "cpu"
    )
    standard, tiny = engine.models()
    assert not standard.available and "latest.ckpt" in standard.error
    assert tiny.available and engine.default_model() == "standard"
    with pytest.raises(ModelUnavailable, match=r"latest\.ckpt") as broken_model:
        engine.check_admissible(_job(model="standard"))
    assert broken_model.value.details == {"field": "model", "allowed": "tiny"}
    engine.check_admissible(_job(model="tiny"))


def test_real_models_need_their_encoders_and_the_official_prompt(tiny_root: Path, tmp_path):
    # The built-in official prompt passes its hash check; the missing encoders are named.
    model = tiny_root / MODEL_DIR
    engine = create_engine(
        {"models": {"lite": str(model)}, "clip": str(tmp_path / "clip"), "qwen": "x"}, "cpu"
    )
    (info,) = engine.models()
    assert not info.available and "CLIP directory not found" in info.error
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("\n    not the official prompt\n")
    engine = create_engine(
        {"models": {"lite": str(model)}, "system_prompt_file": str(prompt)}, "cpu"
    )
    assert "sha256" in engine.models()[0].error


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"precision": "fp16"}, "engine.precision"),
        ({"text_encoders": "gpu"}, "engine.text_encoders"),
        ({"max_batch_candidates": 0}, "engine.max_batch_candidates"),
        ({"modles": {}}, "engine.modles"),
        ({"models": {"a": 3}}, "engine.models"),
        ({"default_model": "standard"}, "engine.default_model"),
    ],
)
def test_invalid_options_name_the_key(options: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        create_engine(options, "cpu")
    assert info.value.field == field


@pytest.mark.parametrize("placement", ["offload", "cpu"])
def test_text_encoder_placements_give_the_same_motion(
    tiny_root: Path, tiny_engine: HYMotionEngine, placement: str
) -> None:
    engine = create_engine({"tiny_dir": str(tiny_root), "text_encoders": placement}, "cpu")
    job = _job(seeds=(3,), frames=30)
    moved = engine.run_batch([job], Recorder(), lambda j: False)[0]
    resident = tiny_engine.run_batch([job], Recorder(), lambda j: False)[0]
    assert isinstance(moved, JobOutput) and isinstance(resident, JobOutput)
    np.testing.assert_array_equal(moved.rotations, resident.rotations)
