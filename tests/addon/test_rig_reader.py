"""Reading the artist's posed rig (``rig_reader.posed_matrices``, the one reader behind deform-only
FBX, the rig's BVH and Direction's poses): the rig evaluated alone gives what the artist's scene
gives, what it depends on included, and leaves the scene and the rig's pose as they were (bpy)."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import rig_reader
from blender_addon.core.errors import RigError
from tests.addon import rigs
from tests.addon.test_deform_export import skinned_mesh

FRAMES = range(1, 21)
ARM = "mixamorig:LeftArm"
HAND = "mixamorig:RightHand"


def animated_character(scene: Any) -> Any:
    """A Mixamo rig with keyed bones, a hand tracking an animated empty outside the rig, and a
    skinned mesh child: what an artist's scene holds around a rig."""
    rig = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.TALL_A), "Hero")
    skinned_mesh(scene, rig, ("mixamorig:Hips", ARM, HAND))
    arm = rig.pose.bones[ARM]
    arm.rotation_mode = "XYZ"
    for frame, angle in ((1, 0.0), (20, 1.2)):
        arm.rotation_euler = (angle, 0.3 * angle, 0.0)
        arm.keyframe_insert("rotation_euler", frame=frame)
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    for frame, x in ((1, -1.0), (20, 1.0)):
        target.location = (x, -0.5, 1.0)
        target.keyframe_insert("location", frame=frame)
    rig.pose.bones[HAND].constraints.new("DAMPED_TRACK").target = target
    return rig


def in_the_scene(scene: Any, rig: Any, names: list[str]) -> np.ndarray:
    """The same matrices read the plain way: stepping the artist's scene itself."""
    out = []
    for frame in FRAMES:
        scene.frame_set(frame)
        out.append([np.array(rig.pose.bones[n].matrix) for n in names])
    return np.array(out)


def test_the_rig_read_alone_is_what_the_scene_shows(scene: Any) -> None:
    rig = animated_character(scene)
    names = [b.name for b in rig.pose.bones]
    expected = in_the_scene(scene, rig, names)
    # The artist is at frame 7, posing the keyed arm without keying it yet.
    scene.frame_set(7)
    rig.pose.bones[ARM].rotation_euler = (0.0, 0.0, 2.5)
    scenes = set(bpy.data.scenes)
    got = rig_reader.posed_matrices(scene, rig, names, FRAMES)
    assert np.abs(got - expected).max() < 1e-5
    hand = names.index(HAND)  # the constraint's target outside the rig moved, and was followed
    assert np.abs(expected[0, hand] - expected[-1, hand]).max() > 0.1
    # Nothing changed for the artist: the frame, the pose being edited, no scene left behind.
    assert scene.frame_current == 7
    assert tuple(rig.pose.bones[ARM].rotation_euler) == pytest.approx((0.0, 0.0, 2.5))
    assert set(bpy.data.scenes) == scenes and rig.users_scene == (scene,)


def test_a_bone_the_rig_lacks_is_named(scene: Any) -> None:
    rig = animated_character(scene)
    scenes = set(bpy.data.scenes)
    with pytest.raises(RigError, match="armature 'Hero' has no bone 'DEF-spine'"):
        rig_reader.posed_matrices(scene, rig, ["mixamorig:Hips", "DEF-spine"], FRAMES)
    assert set(bpy.data.scenes) == scenes
