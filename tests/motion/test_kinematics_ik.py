"""FK on the wire skeleton, world/local round trips and two-bone IK."""

from __future__ import annotations

import numpy as np

from blender_addon.core.motion import ik, kinematics
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import MODEL_SKELETON, model_legs
from shared_protocol.motion import forward_kinematics


def _motion(frames: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    axis_angle = rng.normal(scale=0.4, size=(frames, 22, 3))
    angle = np.linalg.norm(axis_angle, axis=-1)
    q = rot.from_axis_angle(axis_angle / angle[..., None], angle)
    return q, rng.normal(size=(frames, 3))


def test_world_local_round_trip_and_fk_is_the_shared_one() -> None:
    q, root = _motion()
    parents = MODEL_SKELETON.parents
    world = kinematics.world_rotations(q, parents)
    np.testing.assert_allclose(rot.angle_between(kinematics.local_rotations(world, parents), q),
                               0.0, atol=1e-6)  # fmt: skip
    ours = kinematics.joint_positions(MODEL_SKELETON, q, root)
    shared = forward_kinematics(MODEL_SKELETON, q.astype(np.float32), root.astype(np.float32))
    np.testing.assert_allclose(ours, shared, atol=1e-5)


def test_leg_length_of_the_model() -> None:
    legs = model_legs(MODEL_SKELETON)
    length = kinematics.leg_length(MODEL_SKELETON.rest_positions, legs.chains())
    assert 0.77 < length < 0.79


def test_two_bone_ik_reaches_keeps_lengths_and_bend_side() -> None:
    rng = np.random.default_rng(1)
    n = 500
    root = rng.normal(size=(n, 3))
    mid = root + rng.normal(size=(n, 3)) * 0.4
    end = mid + rng.normal(size=(n, 3)) * 0.4
    upper, lower = np.linalg.norm(mid - root, axis=-1), np.linalg.norm(end - mid, axis=-1)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    span = upper + lower - np.abs(upper - lower)
    reach = np.abs(upper - lower) + rng.uniform(0.05, 0.95, n) * span
    target = root + direction * reach[:, None]
    s = ik.two_bone_ik(root, mid, end, target)
    np.testing.assert_allclose(s.reached, target, atol=1e-9)
    # applying the corrections to the bones lands the joints where the solver says
    new_mid = root + rot.rotate(s.upper, mid - root)
    new_end = new_mid + rot.rotate(s.lower, end - mid)
    np.testing.assert_allclose(new_mid, s.mid, atol=1e-9)
    np.testing.assert_allclose(new_end, target, atol=1e-9)

    # the knee bends to the side it bent before (pole kept)
    def side(m: np.ndarray, e: np.ndarray) -> np.ndarray:
        axis = (target - root) / reach[:, None]
        offset = m - root
        return offset - np.sum(offset * axis, -1, keepdims=True) * axis

    before, after = side(mid, end), side(s.mid, s.reached)
    assert (np.sum(before * after, -1) > 0).mean() > 0.99


def test_two_bone_ik_unreachable_target_stretches_towards_it() -> None:
    root, mid, end = np.zeros(3), np.array([0.0, -0.4, 0.02]), np.array([0.0, -0.8, 0.0])
    target = np.array([0.0, -2.0, 0.5])
    s = ik.two_bone_ik(root, mid, end, target)
    direction = target / np.linalg.norm(target)
    np.testing.assert_allclose(s.reached / np.linalg.norm(s.reached), direction, atol=1e-9)
    assert np.linalg.norm(s.reached) > 0.79
