"""Exports of a take on the artist's rig that game engines and DCCs take as they are (bpy side).

FBX per engine (``FBX_ENGINES``):

- ``UNREAL``: the armature object is written as ``Armature``, which Unreal's importer drops, so
  the rig's own top bone is the skeleton's root; units in the file's unit scale (metres with
  UnitScaleFactor 100), no 100x node scale; forward -Z, up Y.
- ``UNITY``: the rig object's own name as the root node, every scale applied (Unity's
  "Convert Units" then gives 1.0), forward -Z, up Y.
- ``BLENDER``: the options that re-import into Blender exactly (``export.FBX_OPTIONS``).

In every preset the animation stack is named after the take, keys are baked per frame, no
leaf bones are added, ``deform_only`` keeps only deforming bones (Rigify's DEF bones), and
``include_meshes`` adds the meshes skinned to the rig (else the skeleton and animation only).
BVH: the posed rig as Blender evaluates it (constraints included), Y up, through
``core.bvh.write_bvh``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import build, deform_export, export, rig_reader, rig_takes
from .build import IS_SLOTTED
from .core.errors import ExportError
from .core.files import atomic_path
from .core.motion import kinematics
from .core.motion import rotations as rot
from .core.protocol import motion
from .core.rig import C

FBX_ENGINES = ("BLENDER", "UNREAL", "UNITY")
_ENGINE_OPTIONS: dict[str, dict[str, Any]] = {
    "BLENDER": {},
    "UNREAL": {"apply_scale_options": "FBX_SCALE_UNITS", "axis_forward": "-Z", "axis_up": "Y"},
    "UNITY": {"apply_scale_options": "FBX_SCALE_ALL", "axis_forward": "-Z", "axis_up": "Y"},
}
#: Unreal's FBX importer drops an armature node of this name and keeps its root bone.
UNREAL_ARMATURE_NAME = "Armature"


def fbx_options(engine: str, deform_only: bool) -> dict[str, Any]:
    if engine not in FBX_ENGINES:
        raise ExportError(
            f"unknown engine {engine!r}", field="engine", allowed=", ".join(FBX_ENGINES)
        )
    return {
        **export.FBX_OPTIONS,
        **_ENGINE_OPTIONS[engine],
        "use_armature_deform_only": deform_only,
    }


@contextlib.contextmanager
def _playing(
    scene: bpy.types.Scene, obj: bpy.types.Object, action: bpy.types.Action, names: tuple[str, str]
) -> Iterator[None]:
    """``obj`` plays ``action`` over its range with the object and scene named ``names``
    (the FBX node and animation names); everything is put back afterwards."""
    object_name, stack_name = names
    anim = obj.animation_data or obj.animation_data_create()
    if anim is None:  # typed optional since fake-bpy-module-latest
        raise ExportError(f"{obj.name!r} cannot hold animation data")
    saved_action = anim.action
    saved_slot = None
    if IS_SLOTTED:
        saved_slot = anim.action_slot
    saved = (obj.name, scene.name, scene.frame_start, scene.frame_end, scene.frame_current)
    other = bpy.data.objects.get(object_name)
    if other is not None and other != obj:
        other.name = f"{object_name} (moved for export)"
    try:
        obj.name = object_name
        scene.name = stack_name
        build.assign_action(obj, action)
        scene.frame_start, scene.frame_end = build.action_frames(action)
        yield
    finally:
        obj.name = saved[0]
        if other is not None and other != obj:
            other.name = object_name
        scene.name = saved[1]
        anim.action = saved_action
        if IS_SLOTTED and saved_slot is not None:
            anim.action_slot = saved_slot
        scene.frame_start, scene.frame_end = saved[2], saved[3]
        scene.frame_set(saved[4])


def export_rig_fbx(
    scene: bpy.types.Scene,
    obj: bpy.types.Object,
    action: bpy.types.Action,
    path: Path,
    take_name: str,
    engine: str = "BLENDER",
    deform_only: bool = False,
    overwrite: bool = False,
    root_bone: str = "",
    include_meshes: bool = True,
) -> Path:
    """The take (``action`` on rig ``obj``) as an FBX for ``engine``; nothing half-written.

    ``deform_only``: the deforming bones in a clean tree (``core.deform_tree``; ``root_bone``, the
    root-motion bone, kept on top), written from a temporary armature when the rig's own
    hierarchy is not clean. ``include_meshes``: the meshes skinned to the rig go in too, skinned
    to the bones written (a character file); else the skeleton and the animation only."""
    options = fbx_options(engine, deform_only)
    names = (UNREAL_ARMATURE_NAME if engine == "UNREAL" else obj.name, take_name)
    tree = deform_export.clean_tree(obj, root_bone) if deform_only else None
    meshes = deform_export.skinned_meshes(scene, obj) if include_meshes else []
    if meshes:
        options["object_types"] = {"ARMATURE", "MESH"}
    with atomic_path(path, overwrite) as temp:
        if tree is None:
            _write_fbx(scene, (obj, action), (temp, path), names, options, meshes)
            return path
        bones = [build.armature_data(obj).bones[i].name for i in tree.indices]
        start, end = build.action_frames(action)
        with _playing(scene, obj, action, (obj.name, scene.name)):
            posed = rig_reader.posed_matrices(scene, obj, bones, range(start, end + 1))
        with (
            deform_export.temporary_armature(scene, obj, tree, posed, start) as played,
            _at_rest(obj),
        ):
            _write_fbx(scene, played, (temp, path), names, options, meshes)
    return path


@contextlib.contextmanager
def _at_rest(obj: bpy.types.Object) -> Iterator[None]:
    """``obj`` without its Action meanwhile: the exporter steps through every frame, and an
    animated rig would be evaluated again at each one for nothing (its motion is baked)."""
    anim = obj.animation_data
    if anim is None or anim.action is None:
        yield
        return
    action = anim.action
    slot = None
    if IS_SLOTTED:
        slot = anim.action_slot
    anim.action = None
    try:
        yield
    finally:
        anim.action = action
        if IS_SLOTTED and slot is not None:
            anim.action_slot = slot


def _write_fbx(
    scene: bpy.types.Scene,
    played: tuple[bpy.types.Object, bpy.types.Action],
    paths: tuple[Path, Path],
    names: tuple[str, str],
    options: dict[str, Any],
    meshes: list[bpy.types.Object],
) -> None:
    """Blender's FBX exporter on armature ``played[0]`` playing ``played[1]`` (and ``meshes``)
    into ``paths[0]`` (the temporary file of ``paths[1]``, named in errors), the armature and
    the animation named ``names``."""
    obj, action = played
    temp, path = paths
    with _playing(scene, obj, action, names), build.object_context(obj, meshes):
        try:
            result = bpy.ops.export_scene.fbx(filepath=str(temp), **options)
        except RuntimeError as exc:
            raise ExportError(f"the FBX exporter failed: {exc}", path=str(path)) from exc
        if "FINISHED" not in (result or ()):
            raise ExportError(f"the FBX exporter did not finish ({result})", path=str(path))


def export_rig_bvh(
    scene: bpy.types.Scene,
    obj: bpy.types.Object,
    action: bpy.types.Action,
    path: Path,
    fps: float,
    deform_only: bool = False,
    overwrite: bool = False,
) -> Path:
    """The posed rig as a Y-up BVH: the bone carrying the root motion (the BVH root, the only
    joint with position channels) and every bone below it, or only its deforming ones."""
    top = rig_takes.rig_mapping(obj).translation_bone
    skeleton, rotations, root = posed_motion(scene, obj, action, top, deform_only)
    return export.write_bvh_file(path, skeleton, rotations, root, fps, overwrite)


def posed_motion(
    scene: bpy.types.Scene,
    obj: bpy.types.Object,
    action: bpy.types.Action,
    top: str,
    deform_only: bool,
) -> tuple[motion.Skeleton, np.ndarray, np.ndarray]:
    """Bone ``top`` and the bones below it as Blender poses them for ``action``: a skeleton
    in model axes (Y up, metres, world-aligned rest frames), wire rotations (F, J, 4) and
    ``top``'s head positions (F, 3)."""
    rig = rig_reader.rig_bones(obj)
    first = rig.index(top)
    keep = [first] + [i for i in rig.descendants(first) if not deform_only or rig.deform[i]]
    kept = set(keep)
    parents = []
    for i in keep:
        parent = int(rig.parents[i])
        while parent >= 0 and parent not in kept:
            parent = int(rig.parents[parent])
        parents.append(keep.index(parent) if parent >= 0 else -1)
    heads = rig.heads[keep] @ C
    rest = rot.from_matrix(C.T @ rig.rest[keep])
    names = [rig.names[i] for i in keep]
    world, root = _evaluate(scene, obj, action, names)
    change = rot.multiply(world, rot.inverse(rest))  # world-aligned rest frames (BVH, wire)
    skeleton = motion.Skeleton(
        joint_names=tuple(names),
        parents=np.array(parents, dtype=np.int32),
        rest_positions=heads.astype(np.float32),
    )
    local = kinematics.local_rotations(change, skeleton.parents)
    return skeleton, rot.make_continuous(local).astype(np.float32), root.astype(np.float32)


def _evaluate(
    scene: bpy.types.Scene, obj: bpy.types.Object, action: bpy.types.Action, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (F, J, 4) and the first bone's head (F, 3), model axes, per frame."""
    start, end = build.action_frames(action)
    with _playing(scene, obj, action, (obj.name, scene.name)):
        posed = rig_reader.posed_matrices(scene, obj, names, range(start, end + 1))
    matrix = np.array(obj.matrix_world)
    turn = matrix[:3, :3] / np.linalg.norm(matrix[:3, 0])
    scale = float(np.linalg.norm(matrix[:3, 0]))
    frames = np.einsum("ab,fjbc->fjac", C.T @ turn, posed[..., :3, :3])
    frames /= np.linalg.norm(frames, axis=-2, keepdims=True)
    roots = (posed[:, 0, :3, 3] @ turn.T) * scale @ C
    return rot.make_continuous(rot.from_matrix(frames)), roots
