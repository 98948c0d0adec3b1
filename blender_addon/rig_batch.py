"""The batch's character (``--target-rig``): load the rig into each prompt's scene, retarget
every take onto it, and export from it (bpy side)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpy
import numpy as np

from . import rig_history, rig_reader, rig_takes
from .core import bone_mapping, retarget, rig_pose
from .core.errors import CharacterFileError
from .core.motion.skeletons import MODEL_SKELETON
from .core.rig_cli import RigTarget
from .props import HYMOTION_PG_take as Take
from .props import scene_settings
from .targets import RIG_TARGET


def load_rig(scene: bpy.types.Scene, target: RigTarget) -> bpy.types.Object:
    """The character from ``target``'s file, linked into ``scene`` (appended, not linked, so
    its actions can be written), with its child objects (meshes)."""
    assert target.path is not None
    if target.path.suffix.lower() == ".fbx":
        return rig_reader.check_rig(_fbx_armature(target))
    # The stubs type libraries.load as returning None; it returns a context manager.
    loader: Any = bpy.data.libraries.load(str(target.path), link=False)  # type: ignore[func-returns-value]
    with loader as (source, into):
        if target.object_name not in source.objects:
            names = ", ".join(sorted(source.objects)) or "none"
            raise CharacterFileError(
                f"{target.path.name} has no object {target.object_name!r} (objects: {names})",
                field="--target-rig",
            )
        into.objects = list(source.objects)
    loaded = [o for o in into.objects if o is not None]
    rig = next(o for o in loaded if o.name == target.object_name)  # the scene was emptied
    keep = {rig, *rig.children_recursive}
    for obj in loaded:
        if obj in keep:
            scene.collection.objects.link(obj)
        else:
            bpy.data.objects.remove(obj)
    scene.view_layers[0].update()
    return rig_reader.check_rig(rig)


def _fbx_armature(target: RigTarget) -> bpy.types.Object:
    """The armature of a character FBX, imported into the (empty) batch scene: its only one, or
    the one ``:ARMATURE`` names; the file's other armatures and their children are removed."""
    assert target.path is not None
    name, file = target.object_name, target.path.name
    before = set(bpy.data.objects)
    try:
        bpy.ops.import_scene.fbx(filepath=str(target.path), automatic_bone_orientation=False)
    except RuntimeError as exc:  # the importer's refusal ("Error: ASCII FBX files are not ...")
        reason = str(exc).strip().removeprefix("Error: ")
        raise CharacterFileError(
            f"{file} could not be imported ({reason}); export the character again "
            "as a binary FBX (Blender's FBX export writes one)",
            field="--target-rig",
        ) from exc
    imported = [o for o in bpy.data.objects if o not in before]
    armatures = [o for o in imported if o.type == "ARMATURE"]
    if not armatures:
        objects = ", ".join(sorted(o.name for o in imported)) or "none"
        raise CharacterFileError(
            f"{file} holds no armature (objects: {objects}); export the character "
            "with its armature (Blender's FBX export: Object Types Armature and Mesh)",
            field="--target-rig",
        )
    names = ", ".join(sorted(o.name for o in armatures))
    if not name and len(armatures) > 1:
        raise CharacterFileError(
            f"{file} holds {len(armatures)} armatures ({names}); name the one to "
            f"use: --target-rig {file}:{min(o.name for o in armatures)}",
            field="--target-rig",
        )
    if not name:
        return armatures[0]
    picked = next((o for o in imported if o.name == name), None)
    if picked is None:
        raise CharacterFileError(
            f"{file} has no object {name!r} (armatures: {names})", field="--target-rig"
        )
    if picked.type != "ARMATURE":
        return picked  # check_rig refuses it, naming what it is
    for other in armatures:
        if other is not picked:
            for obj in [*other.children_recursive, other]:
                bpy.data.objects.remove(obj)
    return picked


def prepare(
    scene: bpy.types.Scene, target: RigTarget, takes: Sequence[Take]
) -> bpy.types.Object | None:
    """Set the panel's export options; with a rig file, load the character, make it the
    target and retarget every take onto it."""
    settings = scene_settings(scene)
    retarget = settings.retarget
    retarget.engine = target.engine  # type: ignore[assignment]
    retarget.deform_only = target.deform_only
    retarget.include_meshes = target.meshes
    if target.path is None:
        return None
    rig = load_rig(scene, target)
    settings.target = RIG_TARGET  # type: ignore[assignment]
    retarget.rig = rig
    retarget.root_motion = target.options.root_motion  # type: ignore[assignment]
    retarget.pin_feet = target.options.pin_feet
    retarget.relax_fingers = target.options.relax_fingers
    retarget.key_ik = target.options.key_ik
    retarget.ik_limbs = target.options.ik_limbs
    apply_preset(rig, target)
    rig_history.retarget_all(scene, list(takes), rig)
    return rig


def apply_preset(rig: bpy.types.Object, target: RigTarget) -> None:
    """Put ``--mapping-preset``'s mapping on the rig, checked against it (its convention, the
    bones it names, one joint per bone); nothing without a preset."""
    if target.preset is None:
        return
    bones = rig_reader.rig_bones(rig)
    mapping = bone_mapping.load_preset(target.preset, bones)
    bone_mapping.validate(mapping, bones, repr(rig.name))
    rig[rig_takes.MAPPING_KEY] = bone_mapping.preset_text(mapping)


def describe(rig: bpy.types.Object) -> dict[str, object]:
    """For summary.json: the rig, its convention and the bones that follow their parents."""
    mapping = rig_takes.rig_mapping(rig)
    return {
        "object": rig.name,
        "convention": mapping.label,
        "joints": dict(mapping.joints),
        "unmapped_bones": mapping.unmapped(rig_reader.rig_bones(rig)),
    }


def placement(rig: bpy.types.Object, target: RigTarget) -> rig_pose.Placement:
    """Where the character stands in its scene: directed jobs' paths are given there."""
    bones = rig_reader.rig_bones(rig)
    if target.preset is not None:
        mapping = bone_mapping.load_preset(target.preset, bones)
    else:
        mapping = rig_takes.rig_mapping(rig)
    plan = retarget.plan(MODEL_SKELETON, bones, mapping)
    return rig_pose.Placement.of(plan, np.array(rig.matrix_world)[:3, 3])
