"""The temporary clean deform armature a deform-only FBX is written from (bpy side).

``core.deform_tree`` decides the hierarchy; the rig's posed deforming bones, read frame by frame
(``rig_reader.posed_matrices``), are baked in bulk onto a new armature with those bones under
their new parents, so that every bone's world matrix is the rig's. Meshes skinned to the rig
follow the temporary armature while the file is written. Everything made here is removed
afterwards, also when writing fails; the artist's rig, its actions and meshes are given back as
they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import bpy
import numpy as np
from mathutils import Vector

from . import build
from .core.channels import Channel, bone_path
from .core.deform_tree import DeformTree, deform_tree, pose_bases
from .core.errors import ExportError

_SUFFIX = " (deform export)"


def clean_tree(obj: bpy.types.Object, root_bone: str = "") -> DeformTree | None:
    """The clean deform tree of rig ``obj`` (``root_bone`` kept on top when it does not deform
    itself), or None when Blender's own deform-only export is clean already."""
    bones = list(build.armature_data(obj).bones)
    index = {b.name: i for i, b in enumerate(bones)}
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    deform = [b.use_deform for b in bones]
    root = index.get(root_bone, -1)
    if root >= 0 and deform[root]:
        root = -1
    return deform_tree(parents, deform, _rest(bones), root)


def _rest(bones: Sequence[bpy.types.Bone]) -> np.ndarray:
    """Rest matrices (B, 4, 4), armature space."""
    return np.array([np.array(b.matrix_local) for b in bones], dtype=np.float64).reshape(-1, 4, 4)


@contextlib.contextmanager
def temporary_armature(
    scene: bpy.types.Scene,
    obj: bpy.types.Object,
    tree: DeformTree,
    posed: np.ndarray,
    first_frame: int,
) -> Iterator[tuple[bpy.types.Object, bpy.types.Action]]:
    """A new armature object holding ``tree``'s bones of ``obj`` (same rest, same object
    transform) and an Action putting them at ``posed`` (F, K, 4, 4) from ``first_frame``; the
    meshes skinned to ``obj`` deform with it meanwhile. All of it is removed on leaving."""
    source = build.armature_data(obj)
    names = [source.bones[i].name for i in tree.indices]
    data = bpy.data.armatures.new(source.name + _SUFFIX)
    temp = None
    action = None
    meshes: list[bpy.types.ArmatureModifier] = []
    try:
        temp = bpy.data.objects.new(obj.name + _SUFFIX, data)
        scene.collection.objects.link(temp)
        temp.matrix_world = obj.matrix_world.copy()
        _add_bones(scene, temp, source, names, tree.parents)
        if temp.pose is None:
            scene.view_layers[0].update()
        rest = _rest([data.bones[n] for n in names])
        action = build.write_action(temp.name, _channels(names, rest, tree, posed, first_frame))
        build.assign_action(temp, action)
        meshes = _skin_modifiers(scene, obj)
        for modifier in meshes:
            modifier.object = temp
        yield temp, action
    finally:
        for modifier in meshes:
            modifier.object = obj
        if action is not None:
            bpy.data.actions.remove(action)
        if temp is not None:
            bpy.data.objects.remove(temp)
        bpy.data.armatures.remove(data)


def skinned_meshes(scene: bpy.types.Scene, obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The scene's meshes with an Armature modifier deforming them by ``obj``."""
    return [m.id_data for m in _skin_modifiers(scene, obj)]  # type: ignore[misc]


def _skin_modifiers(
    scene: bpy.types.Scene, obj: bpy.types.Object
) -> list[bpy.types.ArmatureModifier]:
    return [
        modifier
        for mesh in scene.objects
        if mesh.type == "MESH"
        for modifier in mesh.modifiers
        if isinstance(modifier, bpy.types.ArmatureModifier) and modifier.object == obj
    ]


def _add_bones(
    scene: bpy.types.Scene,
    temp: bpy.types.Object,
    source: bpy.types.Armature,
    names: list[str],
    parents: Sequence[int],
) -> None:
    """The bones ``names`` of ``source`` (head, tail, roll, deform) under ``parents``. Edit mode
    needs ``temp`` active: the active object and its mode (say the rig in Pose mode) come back."""
    data = build.armature_data(temp)
    view_layer = bpy.context.view_layer or scene.view_layers[0]
    active = view_layer.objects.active
    mode = active.mode if active is not None else "OBJECT"
    if active is not None and mode != "OBJECT":
        with build.object_context(active):
            bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = temp
    try:
        with build.object_context(temp):
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                made: list[bpy.types.EditBone] = []
                for name, parent in zip(names, parents, strict=True):
                    bone = source.bones[name]
                    edit = data.edit_bones.new(name)
                    edit.head, edit.tail = bone.head_local.copy(), bone.tail_local.copy()
                    edit.align_roll(
                        bone.matrix_local.to_3x3() @ Vector((0.0, 0.0, 1.0))
                    )  # its Z axis
                    edit.use_deform = bone.use_deform
                    edit.use_connect = False
                    if parent >= 0:
                        edit.parent = made[parent]
                    made.append(edit)
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        view_layer.objects.active = active
        if active is not None and mode != "OBJECT":
            with build.object_context(active):
                bpy.ops.object.mode_set(mode=mode)
    if len(data.bones) != len(names):  # Blender drops zero-length bones
        raise ExportError(
            f"{len(names) - len(data.bones)} deforming bone(s) of zero length", field="deform_only"
        )


def _channels(
    names: list[str], rest: np.ndarray, tree: DeformTree, posed: np.ndarray, first_frame: int
) -> list[Channel]:
    """Location, quaternion and scale keys per bone, every frame."""
    location, quaternion, scale = pose_bases(tree, rest, posed)
    frames = np.arange(first_frame, first_frame + posed.shape[0], dtype=np.float32)
    co = np.empty((frames.size, 2), dtype=np.float32)
    co[:, 0] = frames

    def keys(values: np.ndarray) -> np.ndarray:
        co[:, 1] = values
        return co.reshape(-1).copy()

    channels = []
    for k, name in enumerate(names):
        for prop, values in (("location", location), ("rotation_quaternion", quaternion),
                             ("scale", scale)):  # fmt: skip
            path = bone_path(name, prop)
            channels += [Channel(path, axis, name, keys(values[:, k, axis]))
                         for axis in range(values.shape[-1])]  # fmt: skip
    return channels
