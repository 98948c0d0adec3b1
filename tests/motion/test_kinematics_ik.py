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


def _legs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` hip-knee-ankle chains, knees bent 5-60 degrees, thigh 0.45 m, shin 0.42 m."""
    rng = np.random.default_rng(seed)
    bend = np.radians(rng.uniform(5.0, 60.0, n))
    root = rng.normal(size=(n, 3))
    mid = root + np.array([0.0, -0.45, 0.0])
    end = mid + 0.42 * np.stack([np.zeros(n), -np.cos(bend), np.sin(bend)], axis=-1)
    return root, mid, end


def test_limited_ik_turns_no_bone_beyond_the_limit_and_goes_as_far_as_it_may() -> None:
    root, mid, end = _legs(400, 2)
    rng = np.random.default_rng(3)
    target = end + rng.normal(scale=0.02, size=end.shape)
    # Within reach (0.87 m stretched), so that every part of the way is reachable too.
    reach = np.linalg.norm(target - root, axis=-1, keepdims=True)
    target = root + (target - root) * np.minimum(1.0, 0.86 / reach)
    limit = np.radians(4.0)
    free = ik.two_bone_ik(root, mid, end, target)
    limited = ik.limited_two_bone_ik(root, mid, end, target, limit)
    turns = ik.bone_turns(root, mid, end, limited)
    assert turns.max() <= limit + 1e-9
    over = ik.bone_turns(root, mid, end, free) > limit
    assert 0.2 < over.mean() < 0.9  # both cases are exercised
    # Within the limit: the plain solution.
    for name in ("upper", "lower", "mid", "reached"):
        np.testing.assert_array_equal(getattr(limited, name)[~over], getattr(free, name)[~over])
    # Beyond it: the end stops on its way to the target, at the largest part of the way the
    # limit allows (a little further turns a bone past it).
    way = target[over] - end[over]
    part = np.sum((limited.reached[over] - end[over]) * way, -1) / np.sum(way * way, -1)
    np.testing.assert_allclose(limited.reached[over], end[over] + part[:, None] * way, atol=1e-6)
    assert (part < 1.0).all() and (part > 0.0).all()
    further = np.minimum(part + 2 * ik.LIMIT_PRECISION, 1.0)[:, None]
    beyond = ik.two_bone_ik(root[over], mid[over], end[over], end[over] + further * way)
    assert (ik.bone_turns(root[over], mid[over], end[over], beyond) > limit).all()
    # The corrections still place the bones where the solution says.
    new_mid = root + rot.rotate(limited.upper, mid - root)
    np.testing.assert_allclose(new_mid, limited.mid, atol=1e-9)
    np.testing.assert_allclose(new_mid + rot.rotate(limited.lower, end - mid), limited.reached,
                               atol=1e-9)  # fmt: skip
