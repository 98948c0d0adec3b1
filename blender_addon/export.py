"""FBX and BVH export of takes; nothing half-written on error, no silent overwrite.

FBX goes through Blender's exporter with the options that re-import exactly (22 bones, no leaf
bones, per-frame keys, scene frame range and fps; blender_notes §1.6). BVH is written by
``core.bvh`` in Y-up, the way other tools expect it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy

from . import build
from .core.bvh import write_bvh
from .core.errors import ExportError
from .core.files import atomic_path

FORMATS = ("FBX", "BVH")

FBX_OPTIONS: dict[str, Any] = {
    "use_selection": True,
    "object_types": {"ARMATURE"},
    "add_leaf_bones": False,  # leaf bones would add one "_end" bone per chain on re-import
    "armature_nodetype": "NULL",
    "primary_bone_axis": "Y",
    "secondary_bone_axis": "X",
    "axis_forward": "-Z",
    "axis_up": "Y",
    "apply_unit_scale": True,
    "apply_scale_options": "FBX_SCALE_NONE",
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": False,  # scene-range bake: no per-action take restarting at 0
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,  # keep every frame
}

#: Blender re-import that reproduces the export exactly (documented in docs/addon.md).
FBX_REIMPORT_OPTIONS = {"anim_offset": 0.0, "automatic_bone_orientation": False}
#: Blender re-import of our BVH: default axes (it is Y up), centimetres to metres.
BVH_REIMPORT_OPTIONS = {
    "global_scale": 0.01,
    "rotate_mode": "NATIVE",
    "update_scene_fps": True,
    "update_scene_duration": True,
}


@contextlib.contextmanager
def _posed_copy(
    scene: bpy.types.Scene, data: bpy.types.Armature, action: bpy.types.Action, name: str
) -> Iterator[bpy.types.Object]:
    """A temporary object playing ``action`` over its frame range; the scene is left as it was."""
    obj = build.new_armature_object(scene, data, name)
    saved = scene.frame_start, scene.frame_end, scene.frame_current
    try:
        build.assign_action(obj, action)
        scene.frame_start, scene.frame_end = build.action_frames(action)
        yield obj
    finally:
        scene.frame_start, scene.frame_end = saved[0], saved[1]
        scene.frame_set(saved[2])
        bpy.data.objects.remove(obj)


def export_fbx(
    scene: bpy.types.Scene,
    data: bpy.types.Armature,
    action: bpy.types.Action,
    path: Path,
    name: str,
    overwrite: bool = False,
) -> Path:
    with atomic_path(path, overwrite) as temp, _posed_copy(scene, data, action, name) as obj:
        with build.object_context(obj):
            try:
                result = bpy.ops.export_scene.fbx(filepath=str(temp), **FBX_OPTIONS)
            except RuntimeError as exc:
                raise ExportError(f"the FBX exporter failed: {exc}", path=str(path)) from exc
        if "FINISHED" not in (result or ()):
            raise ExportError(f"the FBX exporter did not finish ({result})", path=str(path))
    return path


def export_bvh(
    data: bpy.types.Armature,
    action: bpy.types.Action,
    fps: float,
    path: Path,
    overwrite: bool = False,
) -> Path:
    skeleton, rotations, pelvis = build.read_motion(action, data)
    text = write_bvh(skeleton, rotations, pelvis, fps)
    with atomic_path(path, overwrite) as temp:
        try:
            temp.write_text(text, encoding="ascii")
        except OSError as exc:
            raise ExportError(f"cannot write {path}: {exc.strerror}", path=str(path)) from exc
    return path


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base
