"""FBX and BVH export of takes; nothing half-written on error, no silent overwrite.

FBX goes through Blender's exporter with the options that re-import exactly (22 bones, no leaf
bones, per-frame keys, scene frame range and fps; blender_notes §1.6); ``rig_export`` writes it
with these options and the engine presets. BVH is written by ``core.bvh`` in Y-up, the way other
tools expect it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import build
from .core.bvh import write_bvh
from .core.errors import ExportError
from .core.files import atomic_path
from .core.protocol import motion

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


def export_bvh(
    data: bpy.types.Armature,
    action: bpy.types.Action,
    fps: float,
    path: Path,
    overwrite: bool = False,
) -> Path:
    skeleton, rotations, pelvis = build.read_motion(action, data, np.float32)
    return write_bvh_file(path, skeleton, rotations, pelvis, fps, overwrite)


def write_bvh_file(
    path: Path,
    skeleton: motion.Skeleton,
    rotations: np.ndarray,
    root_positions: np.ndarray,
    fps: float,
    overwrite: bool = False,
) -> Path:
    """Motion as a BVH file at ``path``, whole or not at all: the one BVH writer of the
    model's takes and of the artist's rigs."""
    text = write_bvh(skeleton, rotations, root_positions, fps)
    with atomic_path(path, overwrite) as temp:
        try:
            temp.write_text(text, encoding="ascii")
        except OSError as exc:
            raise ExportError(f"cannot write {path}: {exc.strerror}", path=str(path)) from exc
    return path


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base
