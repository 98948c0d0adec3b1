"""Poses -> the model's normalised features -> poses (the decoder's exact inverse), and the
canonical frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from blender_addon.core.motion import bvh_import
from daemon.engine.features import (
    Placement,
    denormalize,
    feature_poses,
    heading,
    normalize,
    pose_features,
)
from daemon.engine.pipeline import Generated, MotionPipeline
from daemon.engine.skeleton import BODY_SKELETON
from daemon.engine_api import JobSpec
from shared_protocol import forward_kinematics

ROTATION_TOL = 1e-5  # quaternion components
JOINT_TOL_M = 1e-5  # 0.01 mm


def _never(_: str) -> bool:
    return False


def _ignore(*_: object) -> None:
    return None


def _tiny_take(pipeline: MotionPipeline) -> Generated:
    job = JobSpec("take", "a person walks forward", 45, (3, 4), 5.0, 6, "tiny")
    (out,) = pipeline.generate([job], _ignore, _never)
    assert isinstance(out, Generated)
    return out


def assert_round_trip(
    rotations: np.ndarray, roots: np.ndarray, mean: torch.Tensor, std: torch.Tensor
) -> tuple[float, float]:
    """pose -> normalised latent (float32, as the sampler holds it) -> pose; the largest
    quaternion (sign-free) and joint differences."""
    latent = normalize(pose_features(rotations, roots), mean, std).float()
    back_rot, back_root = feature_poses(denormalize(latent, mean, std))
    dot = np.abs((back_rot * rotations).sum(-1, keepdims=True))
    sign = np.where((back_rot * rotations).sum(-1, keepdims=True) < 0, -1.0, 1.0)
    rot_err = float(np.abs(back_rot * sign - rotations).max())
    joints = forward_kinematics(BODY_SKELETON, rotations, roots).astype(np.float64)
    back_joints = forward_kinematics(BODY_SKELETON, back_rot, back_root).astype(np.float64)
    joint_err = float(np.abs(back_joints - joints).max())
    assert np.allclose(dot, 1.0, atol=1e-6)
    assert rot_err < ROTATION_TOL, rot_err
    assert joint_err < JOINT_TOL_M, joint_err
    return rot_err, joint_err


def test_tiny_model_output_round_trips(tiny_pipeline: MotionPipeline) -> None:
    out = _tiny_take(tiny_pipeline)
    w = tiny_pipeline.weights
    rotations = out.motion.rotations.astype(np.float64)
    roots = out.motion.root_positions.astype(np.float64)
    assert np.abs(rotations[..., 1:, :] - [1.0, 0, 0, 0]).max() > 0.05  # a real pose, not rest
    assert_round_trip(rotations, roots, w.mean, w.std)


def test_features_have_the_documented_layout() -> None:
    rotations = np.zeros((1, 22, 4))
    rotations[..., 0] = 1.0
    root = np.array([[0.5, 0.9, -2.0]])
    x = pose_features(rotations, root)[0]
    assert x.shape == (201,)
    # §5.2: translation = pelvis − rest pelvis; identity rot6d; joints relative to the pelvis
    assert torch.allclose(x[:3], torch.tensor([0.501795, 1.090827, -2.028219], dtype=x.dtype))
    assert torch.equal(x[3:135], torch.tensor([1.0, 0, 0, 1.0, 0, 0], dtype=x.dtype).repeat(22))
    rest = BODY_SKELETON.rest_positions.astype(np.float64)
    assert np.allclose(x[135:].view(22, 3).numpy(), rest - rest[0], atol=1e-6)


def test_joint_positions_are_world_aligned_and_root_relative() -> None:
    turned = np.zeros((1, 22, 4))
    turned[..., 0] = 1.0
    turned[0, 0] = [np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0]  # pelvis faces +X
    x = pose_features(turned, np.zeros((1, 3)))[0, 135:].view(22, 3)
    rest = BODY_SKELETON.rest_positions.astype(np.float64)
    hip = rest[1] - rest[0]  # the left hip, +X of the pelvis at rest, is now at −Z
    assert np.allclose(x[1].numpy(), [hip[2], hip[1], -hip[0]], atol=1e-6)


@pytest.mark.parametrize("yaw", [0.0, 1.2, -2.9, np.pi])
def test_placement_round_trips_and_puts_the_anchor_at_the_origin_facing_z(yaw: float) -> None:
    gen = np.random.default_rng(5)
    rotations = gen.normal(size=(2, 7, 22, 4))
    rotations /= np.linalg.norm(rotations, axis=-1, keepdims=True)
    points = gen.normal(size=(2, 7, 3)) * 3
    anchor = Placement.at(points[:, 0], heading(rotations[:, 0]) + yaw)
    canon_rot, canon_pts = anchor.to_canonical(rotations, points)
    assert np.allclose(canon_pts[:, 0, [0, 2]], 0.0, atol=1e-12)
    assert np.allclose(canon_pts[..., 1], points[..., 1])  # heights never move
    turn = np.angle(np.exp(1j * (heading(canon_rot[:, 0]) + yaw)))  # wrapped difference
    assert np.allclose(turn, 0.0, atol=1e-9)
    back_rot, back_pts = anchor.to_scene(canon_rot, canon_pts)
    assert np.allclose(back_pts, points, atol=1e-12)
    assert np.allclose(back_rot, rotations, atol=1e-12)
    assert np.allclose(canon_rot[..., 1:, :], rotations[..., 1:, :])  # only the root turns


MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"


@pytest.mark.parametrize("clip", sorted(p.name for p in MOCAP.glob("*.bvh")))
def test_real_motion_capture_round_trips(tiny_pipeline: MotionPipeline, clip: str) -> None:
    """CMU clips on the model skeleton (the add-on's bpy-free BVH import), in the canonical
    frame of their first pose, through the features and back."""
    take = bvh_import.load_bvh_take(MOCAP / clip)
    rotations = take.rotations.astype(np.float64)[None]
    roots = take.root_positions.astype(np.float64)[None]
    placement = Placement.at(roots[:, 0], heading(rotations[:, 0]))
    canon_rot, canon_root = placement.to_canonical(rotations, roots)
    w = tiny_pipeline.weights
    assert_round_trip(canon_rot, canon_root, w.mean, w.std)
    back_rot, back_root = placement.to_scene(canon_rot, canon_root)
    assert np.abs(back_root - roots).max() < 1e-9 and np.abs(back_rot - rotations).max() < 1e-9
