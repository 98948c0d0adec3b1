"""World-space transfer between skeletons: identity, turned and scaled targets, A-pose rests."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.errors import MappingError
from blender_addon.core.motion import kinematics, transfer
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import MODEL_SKELETON, model_rest_pose

from . import synthetic


def _identity_mapping() -> dict[int, int]:
    return {j: j for j in range(22)}


def test_model_onto_itself_is_unchanged() -> None:
    walk = synthetic.walk(frames=60)
    rest = model_rest_pose()
    cal = transfer.calibrate(rest, rest, _identity_mapping())
    world = kinematics.world_rotations(walk.rotations, MODEL_SKELETON.parents)
    moved = transfer.transfer(cal, world, walk.joint_positions)
    np.testing.assert_allclose(rot.angle_between(moved.local_rotations, walk.rotations), 0.0,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(moved.joint_positions, walk.joint_positions, atol=1e-6)


def test_turned_scaled_target_with_a_pose_rest_rotations() -> None:
    """A target facing +X, 1.3 times larger, whose bones carry arbitrary rest rotations (like a
    rig's bone axes): its segments follow the source's, turned by the facing difference."""
    walk = synthetic.walk(frames=60)
    source = model_rest_pose()
    turn = rot.yaw(np.radians(90.0))
    rng = np.random.default_rng(0)
    rest_rotations = rot.normalize(rng.normal(size=(22, 4)))
    target = transfer.RestPose(
        names=source.names, parents=source.parents,
        positions=rot.rotate(turn, source.positions) * 1.3, rotations=rest_rotations,
        hips=source.hips, legs=source.legs,
    )  # fmt: skip
    cal = transfer.calibrate(source, target, _identity_mapping(), aims=())
    np.testing.assert_allclose(rot.angle_between(cal.align, turn), 0.0, atol=1e-9)
    assert abs(cal.scale - 1.3) < 1e-9
    world = kinematics.world_rotations(walk.rotations, MODEL_SKELETON.parents)
    moved = transfer.transfer(cal, world, walk.joint_positions)
    expected = rot.rotate(turn, walk.joint_positions) * 1.3
    # same pose up to the grounding shift of the whole clip
    shift = moved.joint_positions - expected
    np.testing.assert_allclose(shift - shift[:1, :1], 0.0, atol=1e-6)
    segments = [(j, c, j, c) for c in range(1, 22) for j in [int(source.parents[c])]]
    errors = transfer.bone_direction_errors(
        walk.joint_positions, moved.joint_positions, segments, cal.align
    )
    assert errors.max() < 1e-3


def test_limb_aiming_fixes_a_different_rest_pose() -> None:
    """An A-pose target (arms 45° down) keeps arm directions only with aiming."""
    walk = synthetic.walk(frames=30)
    source = model_rest_pose()
    positions = source.positions.copy()
    for shoulder, elbow, wrist, sign in ((16, 18, 20, 1.0), (17, 19, 21, -1.0)):
        down = rot.from_axis_angle(np.array([0.0, 0.0, 1.0]), sign * np.radians(-45))
        for j in (elbow, wrist):
            arm = positions[j] - positions[shoulder]
            positions[j] = positions[shoulder] + rot.rotate(down, arm)
    target = transfer.RestPose(source.names, source.parents, positions, source.rotations,
                               source.hips, source.legs)  # fmt: skip
    world = kinematics.world_rotations(walk.rotations, MODEL_SKELETON.parents)
    arms = [(16, 18, 16, 18), (18, 20, 18, 20), (17, 19, 17, 19), (19, 21, 19, 21)]
    plain = transfer.transfer(transfer.calibrate(source, target, _identity_mapping(), aims=()),
                              world, walk.joint_positions)  # fmt: skip
    aimed = transfer.transfer(transfer.calibrate(source, target, _identity_mapping()),
                              world, walk.joint_positions)  # fmt: skip
    align = rot.IDENTITY
    assert transfer.bone_direction_errors(walk.joint_positions, plain.joint_positions, arms,
                                          align).min() > 40  # fmt: skip
    assert transfer.bone_direction_errors(walk.joint_positions, aimed.joint_positions, arms,
                                          align).max() < 1e-4  # fmt: skip


def test_a_root_bone_above_the_hips_stays_and_the_hips_carry_the_travel() -> None:
    """Game rigs (UE5 ``root``) put a bone on the floor above the pelvis: it stays at rest, the
    pelvis (the carrier) takes the travel and the pose is the same as without it."""
    walk = synthetic.walk(frames=40)
    source = model_rest_pose()
    names = ("root", *source.names)
    parents = np.array([-1, 0, *(source.parents[1:] + 1)])
    positions = np.vstack([[0.0, -1.2, 0.0], source.positions])
    rotations = np.vstack([rot.IDENTITY, source.rotations])
    legs = tuple(tuple(j + 1 for j in leg) for leg in source.legs)
    target = transfer.RestPose(names, parents, positions, rotations,
                               (source.hips[0] + 1, source.hips[1] + 1), legs)  # fmt: skip
    cal = transfer.calibrate(source, target, {j + 1: j for j in range(22)})
    assert cal.carrier == 1
    world = kinematics.world_rotations(walk.rotations, MODEL_SKELETON.parents)
    moved = transfer.transfer(cal, world, walk.joint_positions)
    np.testing.assert_allclose(moved.root_positions, np.broadcast_to(positions[0], (40, 3)))
    np.testing.assert_allclose(moved.joint_positions[:, 0], moved.root_positions)
    plain = transfer.transfer(transfer.calibrate(source, source, {j: j for j in range(22)}),
                              world, walk.joint_positions)  # fmt: skip
    np.testing.assert_allclose(moved.joint_positions[:, 1:], plain.joint_positions, atol=1e-9)
    np.testing.assert_allclose(moved.carrier_positions, plain.root_positions, atol=1e-9)


def test_a_mapping_without_the_hips_is_refused_naming_the_joint() -> None:
    rest = model_rest_pose()
    with pytest.raises(
        MappingError, match="no target joint is mapped to the source's root 'Pelvis'"
    ):
        transfer.calibrate(rest, rest, {j: j for j in range(1, 22)})
    with pytest.raises(MappingError, match="outside the skeletons"):
        transfer.calibrate(rest, rest, {0: 0, 5: 40})
