"""Directed generation on the tiny model: poses, path, loop and timeline, in every solver."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from daemon.engine.constraints import Targets
from daemon.engine.features import heading, normalize, pose_features
from daemon.engine.pipeline import ExplicitInputs, Generated, MotionPipeline
from daemon.engine.skeleton import BODY_SKELETON
from daemon.engine.timeline import generate_timeline
from daemon.engine_api import JobSpec
from shared_protocol import Constraints, JobCancelled, TimelineRow, forward_kinematics

JOINT_TOL_M = 1e-3
ANGLE_TOL_DEG = 0.5
STEPS = 8


def _ignore(*_: object) -> None:
    return None


def _never(_: str) -> bool:
    return False


def _run(pipeline: MotionPipeline, *jobs: JobSpec) -> list[Generated]:
    out = pipeline.generate(list(jobs), _ignore, _never)
    assert all(isinstance(r, Generated) for r in out)
    return out  # type: ignore[return-value]


def _job(frames: int, constraints: Constraints | None, job_id: str = "d", seeds=(5, 6)) -> JobSpec:
    return JobSpec(job_id, "a person walks", frames, seeds, 5.0, STEPS, "tiny", constraints)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle between quaternions (..., 4), stable near zero."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    dot = np.abs((a * b).sum(-1))
    cross = np.linalg.norm(a[..., :1] * b[..., 1:] - b[..., :1] * a[..., 1:]
                           + np.cross(a[..., 1:], b[..., 1:]), axis=-1)  # fmt: skip
    return np.degrees(2 * np.arctan2(cross, dot))


@pytest.fixture(scope="module")
def source(tiny_pipeline: MotionPipeline) -> Generated:
    """A take to continue from and to take key poses from."""
    (out,) = _run(tiny_pipeline, _job(90, None, "source", (1, 2)))
    return out


def _poses(source: Generated, shift: tuple[float, float, float]) -> Constraints:
    """A 10-frame prefix (the end of candidate 0) and a key at frame 70 (moved by ``shift``)."""
    m = source.motion
    frames = np.array([*range(10), 70], dtype=np.int32)
    rotations = np.concatenate([m.rotations[0, -10:], m.rotations[1, 40:41]])
    roots = np.concatenate([m.root_positions[0, -10:], m.root_positions[1, 40:41] + shift])
    return Constraints(
        pose_frames=frames, pose_rotations=rotations, pose_root_positions=roots.astype(np.float32)
    )


def _pose_errors(out: Generated, c: Constraints) -> tuple[float, float]:
    assert c.pose_frames is not None and c.pose_rotations is not None
    target = forward_kinematics(BODY_SKELETON, c.pose_rotations, c.pose_root_positions)
    joints = np.abs(out.motion.joint_positions[:, c.pose_frames] - target[None]).max()
    angles = angle_deg(out.motion.rotations[:, c.pose_frames], c.pose_rotations[None]).max()
    return float(joints), float(angles)


def test_prefix_and_key_are_met_exactly_with_the_clean_up(
    tiny_pipeline: MotionPipeline, source: Generated
) -> None:
    c = _poses(source, (1.5, 0.0, -2.0))
    (out,) = _run(tiny_pipeline, _job(100, c))
    joints, angles = _pose_errors(out, c)
    assert joints < JOINT_TOL_M and angles < ANGLE_TOL_DEG, (joints, angles)
    # the clip stays where the poses are: no grounding shift, no drift of the prefix
    assert np.allclose(out.motion.root_positions[:, 0], c.pose_root_positions[0], atol=1e-5)


def test_without_the_clean_up_the_sampler_still_imposes_poses_on_the_latent(
    tiny_pipeline: MotionPipeline, source: Generated
) -> None:
    c = dataclasses.replace(_poses(source, (0.5, 0.0, 0.5)), exact=False)
    job = _job(100, c)
    (out,) = _run(tiny_pipeline, job)
    targets = Targets.from_wire(c, 2, job.frames)
    placement = targets.placement()
    rotations, roots = placement.to_canonical(targets.pose_rotations, targets.pose_roots)
    w = tiny_pipeline.weights
    expected = normalize(pose_features(rotations, roots), w.mean, w.std).float()
    assert torch.allclose(out.latent[:, c.pose_frames], expected, atol=1e-4)
    joints, _ = _pose_errors(out, c)
    assert joints > JOINT_TOL_M  # decoding's smoothing moves them: what the clean-up is for


@pytest.mark.parametrize(
    "solver", ["euler", "heun", "unipc", "dpm++2m"], ids=lambda s: s.replace("+", "p")
)
def test_every_solver_follows_the_constraints(
    tiny_pipeline: MotionPipeline, source: Generated, solver: str
) -> None:
    if solver not in ("euler", "heun") and importlib.util.find_spec("diffusers") is None:
        pytest.skip("diffusers is not installed")
    c = _poses(source, (0.0, 0.0, 1.0))
    (out,) = _run(tiny_pipeline.with_solver(solver), _job(80, c))
    joints, angles = _pose_errors(out, c)
    assert joints < JOINT_TOL_M and angles < ANGLE_TOL_DEG, (solver, joints, angles)


def test_a_directed_job_in_a_batch_leaves_the_others_unchanged(
    tiny_pipeline: MotionPipeline, source: Generated
) -> None:
    plain = _job(60, None, "plain", (9,))
    undirected, _ = _run(tiny_pipeline, plain, _job(100, None))
    together, directed = _run(tiny_pipeline, plain, _job(100, _poses(source, (0.0, 0.0, 0.0))))
    assert torch.equal(undirected.latent, together.latent)  # bit for bit
    assert np.array_equal(undirected.motion.joint_positions, together.motion.joint_positions)
    assert not torch.equal(directed.latent[:, :60], together.latent)


def test_fast_mode_and_reference_mode_agree_on_a_directed_job(
    tiny_pipeline: MotionPipeline, source: Generated
) -> None:
    job = _job(80, _poses(source, (0.2, 0.0, 0.0)))
    (fast,) = _run(tiny_pipeline, job)
    reference = tiny_pipeline.generate_reference(job)
    assert float((fast.latent - reference.latent).abs().max()) < 1e-3
    assert np.abs(fast.motion.joint_positions - reference.motion.joint_positions).max() < 1e-3


def test_path_points_and_headings_are_met(tiny_pipeline: MotionPipeline) -> None:
    frames = np.array([0, 30, 60, 89], dtype=np.int32)
    points = np.array(
        [[2.0, -1.0, 0.5], [2.5, -0.5, 0.9], [3.0, 0.2, 1.2], [3.2, 1.0, 1.6]], np.float32
    )
    c = Constraints(path_frames=frames, path_points=points)
    (out,) = _run(tiny_pipeline, _job(90, c))
    roots = out.motion.root_positions[:, frames][..., [0, 2]]
    assert np.abs(roots - points[None, :, :2]).max() < JOINT_TOL_M
    yaw = heading(out.motion.rotations[:, frames])
    turn = np.degrees(np.abs(np.angle(np.exp(1j * (yaw - points[None, :, 2])))))
    assert turn.max() < ANGLE_TOL_DEG, turn
    # the hips agree: left hip − right hip is the character's +X, 90° right of its facing
    across = out.motion.joint_positions[:, frames, 1] - out.motion.joint_positions[:, frames, 2]
    hips = np.arctan2(across[..., 0], across[..., 2]) - np.pi / 2
    assert np.degrees(np.abs(np.angle(np.exp(1j * (hips - points[None, :, 2]))))).max() < 15


def _steps(joints: np.ndarray) -> np.ndarray:
    """Largest joint displacement per frame step, (C, F − 1), ground travel removed."""
    local = joints - joints[:, :, :1] * np.array([1.0, 0.0, 1.0])
    return np.linalg.norm(np.diff(local, axis=1), axis=-1).max(-1)


def _seam(out: Generated) -> tuple[np.ndarray, np.ndarray]:
    """Last -> first frame step of each candidate, and its clip's steps."""
    joints = out.motion.joint_positions.astype(np.float64)
    local = joints - joints[:, :, :1] * np.array([1.0, 0.0, 1.0])
    return np.linalg.norm(local[:, 0] - local[:, -1], axis=-1).max(-1), _steps(joints)


def test_a_loop_joins_its_end_to_its_start(tiny_pipeline: MotionPipeline) -> None:
    (loop,) = _run(tiny_pipeline, _job(120, Constraints(loop=True)))
    (free,) = _run(tiny_pipeline, _job(120, None))
    seam, steps = _seam(loop)
    assert (seam <= np.median(steps, axis=1)).all(), (seam, np.median(steps, axis=1))
    free_seam, free_steps = _seam(free)
    assert (free_seam > 2 * seam).all() and (free_seam > free_steps.max(axis=1)).all()


def test_a_timeline_is_one_continuous_take(tiny_pipeline: MotionPipeline) -> None:
    rows = (TimelineRow("a person jumps", 3.0), TimelineRow("a person sits down", 2.5))
    job = _job(90, Constraints(timeline=rows), "timeline")
    seen: list[tuple[str, int, int]] = []
    out = generate_timeline(
        tiny_pipeline, job, lambda _, stage, s, n: seen.append((stage, s, n)), _never
    )
    assert isinstance(out, Generated)
    assert out.motion.rotations.shape == (2, 90 + 90 + 75, 22, 4)
    steps = _steps(out.motion.joint_positions.astype(np.float64))
    seams = steps[:, [89, 179]]
    assert (seams <= 2.0 * np.median(steps, axis=1)[:, None]).all(), seams
    sampling = [s for stage, s, n in seen if stage == "sampling"]
    assert sampling == list(range(1, 3 * STEPS + 1))  # one progress bar over the segments
    assert {n for stage, _, n in seen if stage == "sampling"} == {3 * STEPS}
    # encoding and decoding once each, as docs/protocol.md's progress table says: 0 of 1
    assert [(st, s, n) for st, s, n in seen if st != "sampling"] == [
        ("encoding", 0, 1),
        ("decoding", 0, 1),
    ]


def test_a_timeline_is_cancelled_between_segments(tiny_pipeline: MotionPipeline) -> None:
    job = _job(60, Constraints(timeline=(TimelineRow("a person jumps", 2.0),)), "cancel-me")
    calls = {"n": 0}

    def stop_in_second_segment(job_id: str) -> bool:
        calls["n"] += 1
        assert job_id == "cancel-me"
        return calls["n"] > STEPS + 2

    out = generate_timeline(tiny_pipeline, job, _ignore, stop_in_second_segment)
    assert isinstance(out, JobCancelled)


def test_explicit_targets_must_fit_the_job(tiny_pipeline: MotionPipeline) -> None:
    targets = Targets.from_wire(Constraints(loop=True), 3, 50)
    with pytest.raises(ValueError, match="targets do not fit"):
        tiny_pipeline.generate(
            [_job(60, None)], _ignore, _never, {"d": ExplicitInputs(targets=targets)}
        )


def test_stopping_imposition_early_lets_the_model_rework_then_the_clean_up_meets(
    tiny_pipeline: MotionPipeline, source: Generated
) -> None:
    c = dataclasses.replace(_poses(source, (0.0, 0.0, 0.5)), impose_until=0.75)
    job = _job(100, c)
    (out,) = _run(tiny_pipeline, job)
    joints, angles = _pose_errors(out, c)
    assert joints < JOINT_TOL_M and angles < ANGLE_TOL_DEG
    (held,) = _run(tiny_pipeline, _job(100, dataclasses.replace(c, impose_until=1.0)))
    assert c.pose_frames is not None
    moved = (out.latent[:, c.pose_frames] - held.latent[:, c.pose_frames]).abs().max()
    assert float(moved) > 1e-3  # the last steps changed the constrained frames' latent
