"""Each exact shortcut against the reference mode (spec §11.5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from engine_helpers import SMALL, random_network

from daemon.engine.pipeline import ExplicitInputs, Generated, MotionPipeline
from daemon.engine.sampling import initial_noise
from daemon.engine_api import JobSpec
from shared_protocol import JobCancelled

TOL = 2e-5


def _inputs(batch: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 360, 201, generator=gen)
    ctxt = torch.randn(batch, 128, SMALL.ctxt_input_dim, generator=gen)
    vtxt = torch.randn(batch, 1, SMALL.vtxt_input_dim, generator=gen)
    return x, ctxt, vtxt


def _valid(lengths: list[int], size: int) -> torch.Tensor:
    return torch.arange(size)[None] < torch.tensor(lengths)[:, None]


def test_only_length_frames_and_prompt_tokens_give_the_same_velocity() -> None:
    model = random_network()
    x, ctxt, vtxt = _inputs(3)
    t = torch.tensor([0.0, 0.3, 0.98])
    frames, texts = [70, 360, 25], [7, 20, 128]
    full = model(x, t, ctxt, vtxt, _valid(frames, 360), _valid(texts, 128))
    short_f, short_t = 70, 20
    cropped = model(
        x[:, :short_f], t, ctxt[:, :short_t], vtxt,
        _valid([70, 70, 25], short_f), _valid([7, 20, 20], short_t),
    )  # fmt: skip
    for b, (f, n) in enumerate(zip(frames, texts, strict=True)):
        if f <= short_f and n <= short_t:
            assert torch.allclose(full[b, :f], cropped[b, :f], atol=TOL)
    assert full[0, :70].abs().max() > 0.1  # not trivially zero


def test_padding_frames_never_influence_valid_frames() -> None:
    model = random_network()
    x, ctxt, vtxt = _inputs(1)
    t = torch.tensor([0.5])
    valid_x, valid_c = _valid([40], 360), _valid([9], 128)
    base = model(x, t, ctxt, vtxt, valid_x, valid_c)
    changed = x.clone()
    changed[:, 40:] = 100.0
    changed_c = ctxt.clone()
    changed_c[:, 9:] = -50.0
    other = model(changed, t, changed_c, vtxt, valid_x, valid_c)
    assert torch.allclose(base[:, :40], other[:, :40], atol=TOL)
    moved = x.clone()
    moved[:, 39] += torch.randn(201, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(base[:, :39], model(moved, t, ctxt, vtxt, valid_x, valid_c)[:, :39])


def test_narrowband_limits_motion_attention_to_60_frames() -> None:
    model = random_network()
    x, ctxt, vtxt = _inputs(1)
    t = torch.tensor([0.5])
    valid_x, valid_c = _valid([360], 360), _valid([9], 128)
    block = model.double_blocks[0]
    # one double block: frame 0 sees frames 0 … 60 only
    xm = model.input_encoder(x)
    xt = model._text_tokens(t, ctxt, valid_c)
    c = model._adapter(t, vtxt)
    rope = model._rope(torch.cat([torch.arange(360), model._text_positions(128, x.device)]))
    allowed = torch.zeros(1, 1, 488, 488, dtype=torch.bool)
    allowed[..., :360, :360] = model.motion_allowed(valid_x)
    allowed[..., :, 360:] = valid_c[:, None, None, :]
    out = block(xm, xt, c, rope, allowed)[0]
    bump = torch.randn(xm.shape[-1], generator=torch.Generator().manual_seed(5))
    far = xm.clone()
    far[:, 61] += bump  # not a constant: LayerNorm would remove that
    assert torch.allclose(out[:, 0], block(far, xt, c, rope, allowed)[0][:, 0], atol=TOL)
    near = xm.clone()
    near[:, 60] += bump
    assert not torch.allclose(out[:, 0], block(near, xt, c, rope, allowed)[0][:, 0], atol=TOL)


def test_text_stream_computed_once_and_shared_across_candidates() -> None:
    model = random_network()
    x, ctxt, vtxt = _inputs(4)
    t = torch.full((4,), 0.42)
    frames, texts = [50, 50, 33, 33], [11, 11, 5, 5]
    ctxt[1], vtxt[1] = ctxt[0], vtxt[0]  # candidates 0, 1 share prompt A; 2, 3 share prompt B
    ctxt[3], vtxt[3] = ctxt[2], vtxt[2]
    reference = model(x, t, ctxt, vtxt, _valid(frames, 360), _valid(texts, 128))
    groups = torch.tensor([0, 0, 1, 1])
    stream = model.encode_text_stream(
        t[:2], ctxt[[0, 2], :11], vtxt[[0, 2]], _valid([11, 5], 11)
    )  # 2 text streams for 4 candidates
    fast = model.forward_motion(x[:, :50], _valid(frames, 50), stream, groups)
    for b, f in enumerate(frames):
        assert torch.allclose(reference[b, :f], fast[b, :f], atol=TOL)


def _generate(pipeline: MotionPipeline, jobs: list[JobSpec], stop=lambda job: False, **explicit):
    return pipeline.generate(jobs, lambda *a: None, stop, explicit)


def _job(job: str, prompt: str, frames: int, seeds: tuple[int, ...], guidance=5.0) -> JobSpec:
    return JobSpec(job, prompt, frames, seeds, guidance, 6, "tiny")


def _assert_same(a: Generated, b: Generated, atol: float = 1e-4) -> None:
    torch.testing.assert_close(a.latent, b.latent, atol=atol, rtol=0)
    np.testing.assert_allclose(a.motion.joint_positions, b.motion.joint_positions, atol=atol)
    np.testing.assert_allclose(a.motion.rotations, b.motion.rotations, atol=atol)


@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_fast_mode_matches_the_reference_mode(tiny_pipeline: MotionPipeline, guidance) -> None:
    job = _job("a", "a person walks forward", 45, (3, 7), guidance=guidance)
    (fast,) = _generate(tiny_pipeline, [job])
    reference = tiny_pipeline.generate_reference(job)
    assert isinstance(fast, Generated)
    _assert_same(fast, reference)
    assert fast.latent.shape == (2, 45, 201)


def test_batched_jobs_equal_each_job_alone(tiny_pipeline: MotionPipeline) -> None:
    jobs = [
        _job("a", "a person walks forward", 60, (0, 1, 2)),
        _job("b", "someone jumps twice and waves the left hand", 24, (5,), guidance=1.0),
        _job("c", "a person walks forward", 90, (9, 10), guidance=3.0),
    ]
    together = _generate(tiny_pipeline, jobs)
    for job, joint in zip(jobs, together, strict=True):
        (alone,) = _generate(tiny_pipeline, [job])
        assert isinstance(joint, Generated) and isinstance(alone, Generated)
        assert joint.job_id == job.job_id
        _assert_same(joint, alone)


def test_a_cancelled_job_leaves_the_batch_without_disturbing_the_others(
    tiny_pipeline: MotionPipeline,
) -> None:
    steps_seen: list[int] = []

    def progress(job: str, stage: str, step: int, total: int) -> None:
        if job == "b" and stage == "sampling":
            steps_seen.append(step)

    jobs = [_job("a", "walk", 30, (1,)), _job("b", "run", 40, (2,))]
    out = tiny_pipeline.generate(jobs, progress, lambda job: job == "b" and len(steps_seen) >= 2)
    assert isinstance(out[1], JobCancelled)
    assert steps_seen == [1, 2]  # no compute after the cancellation was seen
    (alone,) = _generate(tiny_pipeline, [jobs[0]])
    assert isinstance(out[0], Generated) and isinstance(alone, Generated)
    _assert_same(out[0], alone, atol=1e-5)


def test_explicit_noise_and_precomputed_features_are_accepted(
    tiny_pipeline: MotionPipeline,
) -> None:
    job = _job("a", "a person bows", 30, (4, 5))
    (base,) = _generate(tiny_pipeline, [job])
    noise = initial_noise((4, 5), 360, 201, torch.device("cpu"))
    given = ExplicitInputs(noise=noise, features=tiny_pipeline.encode(["a person bows"]))
    (same,) = _generate(tiny_pipeline, [dataclasses.replace(job, prompt="ignored")], a=given)
    assert isinstance(base, Generated) and isinstance(same, Generated)
    _assert_same(base, same, atol=1e-6)
    swapped_noise = ExplicitInputs(noise=noise.flip(0))  # the seeds' noise swapped
    (swapped,) = _generate(tiny_pipeline, [job], a=swapped_noise)
    assert isinstance(swapped, Generated)
    torch.testing.assert_close(swapped.latent, base.latent.flip(0), atol=1e-5, rtol=0)
    reference = tiny_pipeline.generate_reference(job, swapped_noise)
    _assert_same(swapped, reference)


def test_inputs_the_pipeline_cannot_run_are_refused(tiny_pipeline: MotionPipeline) -> None:
    job = _job("a", "walk", 30, (1, 2))
    with pytest.raises(ValueError, match="distinct job ids"):
        _generate(tiny_pipeline, [job, job])
    with pytest.raises(ValueError, match="share its step count"):
        _generate(tiny_pipeline, [job, dataclasses.replace(job, job_id="b", steps=7)])
    for frames in (10, 400):  # the decoder's smoothing needs 11 frames; the spec clamps to 20
        with pytest.raises(ValueError, match=f"frames {frames} outside 20-360"):
            _generate(tiny_pipeline, [dataclasses.replace(job, frames=frames)])
    short = ExplicitInputs(noise=torch.zeros(2, 20, 201))
    with pytest.raises(ValueError, match=r"noise \(2, 20, 201\) does not hold 2 candidates of 30"):
        _generate(tiny_pipeline, [job], a=short)
    with pytest.raises(ValueError, match="not in the batch"):
        _generate(tiny_pipeline, [job], b=short)
