"""The one reader of a take's motion, ``build.read_motion`` (bpy): a generated take read in bulk
is the motion the daemon sent; keys the artist edited are read as Blender plays them; the
dtype is the caller's choice and changes nothing but the precision."""

from __future__ import annotations

from typing import Any

import numpy as np

from blender_addon import build, history
from blender_addon.core.channels import bone_path
from blender_addon.core.motion import kinematics
from blender_addon.core.session import ServerInfo
from tests.addon.test_addon_scene import make_result


def test_a_generated_take_reads_back_as_sent(scene: Any) -> None:
    result = make_result(1, 45)
    (take,) = history.add_result(scene, result, ServerInfo())
    skeleton, rotations, pelvis = build.read_motion(take.action, take.armature)
    assert rotations.dtype == pelvis.dtype == np.float64
    positions = kinematics.joint_positions(skeleton, rotations, pelvis)
    assert np.abs(positions - result.joint_positions[0]).max() < 1e-5
    _, rotations32, pelvis32 = build.read_motion(take.action, take.armature, np.float32)
    assert rotations32.dtype == pelvis32.dtype == np.float32
    np.testing.assert_array_equal(rotations32, rotations.astype(np.float32))
    np.testing.assert_array_equal(pelvis32, pelvis.astype(np.float32))


def test_edited_keys_are_read_as_blender_plays_them(scene: Any) -> None:
    (take,) = history.add_result(scene, make_result(1, 45), ServerInfo())
    _, _, before = build.read_motion(take.action, take.armature)
    for index in range(3):  # the artist moves the Pelvis on frame 20, deletes its key on 21
        curve = build.find_curve(take.action, bone_path("Pelvis", "location"), index)
        assert curve is not None
        keys = {int(k.co[0]): k for k in curve.keyframe_points}
        keys[20].co[1] += 0.05
        curve.keyframe_points.remove(keys[21])
    _, _, after = build.read_motion(take.action, take.armature)
    assert np.linalg.norm(after[19] - before[19]) > 0.08  # the moved key, as keyed
    # Linear keys: frame 21 now lies halfway between frames 20 and 22; no other frame moved.
    np.testing.assert_allclose(after[20], (after[19] + after[21]) / 2, atol=1e-6)
    np.testing.assert_array_equal(np.delete(after, [19, 20], 0), np.delete(before, [19, 20], 0))
