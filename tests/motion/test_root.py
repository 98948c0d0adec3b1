"""Root-trajectory edits: in place per axis, facing, root bone, travel per cycle."""

from __future__ import annotations

import numpy as np

from blender_addon.core.motion import kinematics, root
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import MODEL_SKELETON

from . import synthetic


def _turning_walk() -> tuple[np.ndarray, np.ndarray]:
    walk = synthetic.walk(frames=90)
    turn = rot.yaw(np.linspace(0.0, np.radians(60.0), 90))
    rotations = walk.rotations.copy()
    rotations[:, 0] = rot.multiply(turn, rotations[:, 0])
    return rotations, rot.rotate(turn, walk.root_positions)


def test_in_place_keeps_the_pose_relative_to_the_pelvis() -> None:
    rotations, pelvis = _turning_walk()
    new_rot, new_pelvis = root.remove_travel(rotations, pelvis, axes=("X", "Z"))
    assert np.ptp(new_pelvis[:, [0, 2]], axis=0).max() <= 1e-3
    np.testing.assert_array_equal(new_pelvis[:, 1], pelvis[:, 1])
    before = kinematics.joint_positions(MODEL_SKELETON, rotations, pelvis) - pelvis[:, None]
    after = kinematics.joint_positions(MODEL_SKELETON, new_rot, new_pelvis) - new_pelvis[:, None]
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_removing_facing_keeps_the_first_heading() -> None:
    rotations, pelvis = _turning_walk()
    new_rot, _ = root.remove_travel(rotations, pelvis, axes=("X", "Z"), keep_facing=False)
    heading = root.unwrapped_heading(new_rot[:, 0])
    np.testing.assert_allclose(heading, heading[0], atol=1e-9)


def test_root_bone_recomposes_the_motion() -> None:
    rotations, pelvis = _turning_walk()
    split = root.extract_root_motion(rotations, pelvis)
    assert (split.root_positions[:, 1] == 0).all()
    world_pelvis = split.root_positions + rot.rotate(split.root_rotations, split.pelvis_positions)
    np.testing.assert_allclose(world_pelvis, pelvis, atol=1e-9)
    composed = rot.multiply(split.root_rotations, split.pelvis_rotations)
    np.testing.assert_allclose(rot.angle_between(composed, rotations[:, 0]), 0.0, atol=1e-6)


def test_cycle_travel_reports_distance_turn_and_speed() -> None:
    rotations, pelvis = _turning_walk()
    travel = root.cycle_travel(rotations, pelvis, synthetic.FPS)
    expected = np.hypot(*(pelvis[-1] - pelvis[0])[[0, 2]])
    assert abs(travel.distance_m - expected) < 1e-9
    assert abs(travel.turn_deg - 60.0) < 1.0
    assert abs(travel.speed_mps - expected / (89 / 30)) < 1e-9
