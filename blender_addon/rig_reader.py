"""Read the artist's armature into plain arrays, refusing what cannot take a take (bpy side).

A rig object may be rotated or uniformly scaled (FBX imports at 0.01 are): bones are measured
in world-aligned metres and the pose is written back in the rig's own space. A linked rig, a
rig in Edit Mode, or a non-uniform / mirrored scale is refused with what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import bpy
import numpy as np

from .core.errors import RigError
from .core.rig_bones import RigBones, sorted_bones

#: Relative difference between the object's scale axes that still counts as uniform.
UNIFORM_SCALE_TOLERANCE = 1e-4


def check_rig(obj: bpy.types.Object | None) -> bpy.types.Object:
    """``obj`` if a take can be written to it, else a :class:`RigError` in plain words."""
    if obj is None:
        raise RigError("no armature is selected", field="target")
    if obj.type != "ARMATURE" or not isinstance(obj.data, bpy.types.Armature):
        raise RigError(f"{obj.name!r} is a {obj.type.lower()}, not an armature", field="target")
    library = obj.library or obj.data.library
    if library is not None and obj.override_library is None:
        raise RigError(
            f"armature {obj.name!r} is linked from {library.filepath!r} and cannot be animated "
            "here; make a library override first (Object > Library Override > Make)",
            field="target",
        )
    if obj.mode == "EDIT":
        raise RigError(
            f"armature {obj.name!r} is in Edit Mode; switch to Object or Pose Mode first",
            field="target",
        )
    return obj


def posed_matrices(
    scene: bpy.types.Scene, obj: bpy.types.Object, names: Sequence[str], frames: Iterable[int]
) -> np.ndarray:
    """Armature-space pose matrices (F, K, 4, 4) of ``obj``'s bones ``names``, as Blender
    evaluates them at each of ``frames`` (the rig's action, NLA, constraints and drivers).

    The rig is evaluated alone, in a temporary scene holding only it (at ``scene``'s frame
    rate); what it depends on (parents, constraint targets, driver sources) comes along through
    Blender's dependency graph. So the artist's meshes, simulations and other characters are not
    evaluated once per frame, and ``scene`` (its frame) and the rig's own pose (keys are not
    written back over a pose being edited) are left as they are. The temporary scene is removed
    afterwards, also on failure."""
    pose = obj.pose
    if pose is None:
        raise RigError(f"armature {obj.name!r} has no pose", field="target")
    index = [pose.bones.find(name) for name in names]
    if min(index, default=0) < 0:
        missing = names[index.index(-1)]
        raise RigError(f"armature {obj.name!r} has no bone {missing!r}", field="target")
    flat = np.empty(len(pose.bones) * 16)
    wanted = list(frames)
    out = np.empty((len(wanted), len(index), 4, 4))
    alone = bpy.data.scenes.new(f"{obj.name} (pose read)")
    try:
        alone.render.fps, alone.render.fps_base = scene.render.fps, scene.render.fps_base
        alone.collection.objects.link(obj)
        for k, frame in enumerate(wanted):
            alone.frame_set(frame)
            depsgraph = alone.view_layers[0].depsgraph
            evaluated = obj.evaluated_get(depsgraph).pose if depsgraph is not None else None
            if evaluated is None:  # typed optional: frame_set has just evaluated both
                raise RigError(f"armature {obj.name!r} could not be evaluated", field="target")
            evaluated.bones.foreach_get("matrix", flat)
            # foreach_get flattens matrices column by column (Blender's matrix memory order).
            out[k] = flat.reshape(-1, 4, 4).transpose(0, 2, 1)[index]
    finally:
        bpy.data.scenes.remove(alone)
    return out


def rig_bones(obj: bpy.types.Object) -> RigBones:
    """The rest skeleton of armature object ``obj`` (checked first)."""
    check_rig(obj)
    data = obj.data
    assert isinstance(data, bpy.types.Armature)
    rotation, scale = object_frame(obj)
    bones = list(data.bones)
    count = len(bones)
    heads = np.empty(count * 3)
    tails = np.empty(count * 3)
    matrices = np.empty(count * 16)
    deform = np.empty(count, dtype=bool)
    local_location = np.empty(count, dtype=bool)
    data.bones.foreach_get("head_local", heads)
    data.bones.foreach_get("tail_local", tails)
    data.bones.foreach_get("matrix_local", matrices)
    data.bones.foreach_get("use_deform", deform)
    data.bones.foreach_get("use_local_location", local_location)
    # foreach_get flattens matrices column by column (Blender's matrix memory order).
    local = matrices.reshape(count, 4, 4).transpose(0, 2, 1)[:, :3, :3]
    world = rotation * scale
    sorted_rig = sorted_bones(
        [b.name for b in bones],
        [b.parent.name if b.parent else None for b in bones],
        heads.reshape(count, 3) @ world.T,
        tails.reshape(count, 3) @ world.T,
        rotation @ local,
        deform,
        object_rotation=rotation,
        object_scale=scale,
        local_location=local_location,
    )
    return dataclasses.replace(sorted_rig, ik_poles=ik_poles(obj))


def object_frame(obj: bpy.types.Object) -> tuple[np.ndarray, float]:
    """The object's world rotation (3, 3) and its uniform scale; refuses any other scale."""
    matrix = np.array(obj.matrix_world)[:3, :3]
    scales = np.linalg.norm(matrix, axis=0)
    if np.linalg.det(matrix) <= 0:
        raise RigError(
            f"armature {obj.name!r} is mirrored (negative scale); apply its scale first "
            "(Object > Apply > Scale)",
            field="target",
        )
    if float(np.ptp(scales)) > UNIFORM_SCALE_TOLERANCE * float(scales.max()):
        shown = ", ".join(f"{s:g}" for s in scales)
        raise RigError(
            f"armature {obj.name!r} has a non-uniform scale ({shown}); apply its scale first "
            "(Object > Apply > Scale)",
            field="target",
        )
    scale = float(scales.mean())
    return matrix / scale, scale


def ik_poles(obj: bpy.types.Object) -> tuple[tuple[str, str], ...]:
    """(pole bone, IK chain's middle bone) of every two-bone IK constraint on ``obj``'s bones
    whose pole target is a bone of ``obj`` itself."""
    if obj.pose is None:
        return ()
    out = []
    for bone in obj.pose.bones:
        for constraint in bone.constraints:
            if (isinstance(constraint, bpy.types.KinematicConstraint)
                    and constraint.pole_target is obj and constraint.pole_subtarget
                    and constraint.chain_count == 2):  # fmt: skip
                out.append((constraint.pole_subtarget, bone.name))
    return tuple(dict.fromkeys(out))
