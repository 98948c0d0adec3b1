"""The takes history on the artist's own rig: apply, compare, delete (bpy side).

Each take keeps one Action per rig it was applied to (``take.rig_actions``). Applying again
with the same options plays that Action; with other options a new one replaces it, and only
it. The take's own Action on the model skeleton stays the source of every retarget.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import bpy

from . import build, history, rig_copy, rig_export, rig_reader, rig_takes
from .core import bone_mapping, retarget, steps
from .core.errors import RigError
from .props import HYMOTION_PG_take as Take
from .props import scene_settings
from .rig_props import HYMOTION_PG_retarget, HYMOTION_PG_rig_take
from .targets import MAIN_OBJECT_NAME, RIG_TARGET


def character(scene: bpy.types.Scene) -> bpy.types.Object:
    """The rig takes go to: the panel's Character, else the active armature (remembered)."""
    settings = scene_settings(scene).retarget
    obj = settings.rig
    if obj is None or scene.objects.get(obj.name) is None:
        active = bpy.context.view_layer.objects.active if bpy.context.view_layer else None
        if active is not None and active.type != "ARMATURE" and active.parent is not None:
            active = active.parent  # the character's mesh selected: its armature
        if active is None or active.type != "ARMATURE" or _is_model_armature(active):
            raise RigError(
                "no character chosen: pick your armature in the panel's Character field or "
                "select it (target 'Selected armature')",
                field="rig",
            )
        obj = active
        settings.rig = obj
    return rig_reader.check_rig(obj)


def _is_model_armature(obj: bpy.types.Object) -> bool:
    data = obj.data
    # The 4.2 stubs type ID.get as returning None; it returns the custom property.
    return isinstance(data, bpy.types.Armature) and data.get(build.SKELETON_KEY) is not None  # type: ignore[func-returns-value]


def options_of(settings: HYMOTION_PG_retarget) -> retarget.RetargetOptions:
    return retarget.RetargetOptions(
        root_motion=settings.root_motion,
        pin_feet=settings.pin_feet,
        relax_fingers=settings.relax_fingers,
        key_ik=settings.key_ik,
        ik_limbs=settings.ik_limbs,
    )


def _options_key(take: Take, options: retarget.RetargetOptions, mapping_text: str) -> str:
    """What a take's rig action was made from: a change of any of these remakes it."""
    finishing = repr(take.finishing.options())  # the take's own finishing (issue #10)
    return json.dumps([options.root_motion, options.pin_feet, options.relax_fingers,
                       options.key_ik, options.ik_limbs, mapping_text, finishing])  # fmt: skip


def motion_of(take: Take) -> rig_takes.Motion:
    """The take in model space, read from its Action (the artist's edits included)."""
    action, data = history._parts(take)
    skeleton, rotations, pelvis = build.read_motion(action, data)
    anchor = int(take.anchor_frame) if take.anchor_frame >= 0 else None
    return rig_takes.Motion(take.name, skeleton, rotations, pelvis, float(take.fps), anchor)


def record_for(take: Take, obj: bpy.types.Object) -> HYMOTION_PG_rig_take | None:
    return next((r for r in take.rig_actions if r.rig == obj), None)


def _is_current(
    record: HYMOTION_PG_rig_take | None, take: Take, options: retarget.RetargetOptions, text: str
) -> bool:
    return (
        record is not None
        and record.action is not None
        and record.options == _options_key(take, options, text)
    )


def rig_action(
    scene: bpy.types.Scene,
    take: Take,
    obj: bpy.types.Object,
    writer: rig_takes.RigWriter | None = None,
) -> tuple[bpy.types.Action, bool]:
    """The take's Action on ``obj`` for the panel's options, (re)made if needed; True if new.
    ``writer``: the rig made ready once for several takes (built here when not given)."""
    options = options_of(scene_settings(scene).retarget)
    mapping = writer.mapping if writer is not None else rig_takes.rig_mapping(obj)
    text = bone_mapping.preset_text(mapping)
    record = record_for(take, obj)
    if record is not None and _is_current(record, take, options, text):
        return record.action, False
    writer = writer or rig_takes.RigWriter(obj, options, mapping)
    action = writer.action(motion_of(take))
    if record is None:
        record = take.rig_actions.add()
        record.rig = obj
    old = record.action
    record.action, record.options = action, _options_key(take, options, text)
    if old is not None:
        bpy.data.actions.remove(old)  # only this take's action on this rig
        action.name = rig_takes.action_name(take.name, obj.name)  # free again: no ".001"
    return action, True


def retarget_steps(
    scene: bpy.types.Scene, takes: Sequence[Take], obj: bpy.types.Object
) -> list[steps.Step]:
    """One step per take whose Action on ``obj`` is missing or stale for the panel's options:
    each step is one take's retarget and write, all of it or nothing. The rig's mapping is read
    once, here, and its rest calibration once, in the first step."""
    writer = rig_takes.RigWriter(obj, options_of(scene_settings(scene).retarget))
    text = bone_mapping.preset_text(writer.mapping)
    return [
        steps.Step(f"take {take.name!r}", functools.partial(rig_action, scene, take, obj, writer))
        for take in takes
        if not _is_current(record_for(take, obj), take, writer.options, text)
    ]


def retarget_all(scene: bpy.types.Scene, takes: list[Take], obj: bpy.types.Object) -> None:
    """Every take's Action on ``obj`` for the panel's options, now (headless: the batch)."""
    steps.StepJob(f"Retargeting onto {obj.name}", retarget_steps(scene, takes, obj)).run_to_end()


def apply_rig_take(scene: bpy.types.Scene, take: Take) -> bpy.types.Object:
    obj = character(scene)
    action, _ = rig_action(scene, take, obj)
    rig_takes.play(obj, action)
    scene.frame_start, scene.frame_end = build.action_frames(action)
    return obj


def refresh_steps(scene: bpy.types.Scene, take: Take) -> list[steps.Step]:
    """One step per character now playing ``take``: its Action remade from the take as it is
    now (after the take's finishing changed) and played, so the character shows the finished
    take as the add-on's armature does. A character whose Action is current just plays on."""
    return [
        steps.Step(f"on {record.rig.name!r}", functools.partial(_replay, scene, take, record.rig))
        for record in take.rig_actions
        if _plays(record.rig, record.action)
    ]


def _plays(obj: bpy.types.Object | None, action: bpy.types.Action | None) -> bool:
    anim = obj.animation_data if obj is not None else None
    return anim is not None and action is not None and anim.action == action


def _replay(scene: bpy.types.Scene, take: Take, obj: bpy.types.Object) -> bpy.types.Action:
    action, _ = rig_action(scene, take, obj)
    rig_takes.play(obj, action)
    scene.frame_start, scene.frame_end = build.action_frames(action)
    return action


def compare_job(scene: bpy.types.Scene, takes: Sequence[Take]) -> steps.StepJob:
    """Compare takes on the character as steps: one per take still to retarget, then the
    copies side by side. Stopped early (cancelled, or a take failed), the takes written so far
    keep their Action (a later compare reuses them) and no comparison is made."""
    obj = character(scene)
    takes = list(takes)
    work = retarget_steps(scene, takes, obj)
    work.append(steps.Step("the comparison", lambda: _compare_copies(scene, takes, obj)))
    return steps.StepJob(f"Comparing {len(takes)} takes on {obj.name}", work)


def compare_rig_takes(scene: bpy.types.Scene, takes: Sequence[Take]) -> list[bpy.types.Object]:
    """One copy of the character per take (sharing its armature), side by side, now."""
    copies: list[bpy.types.Object] = compare_job(scene, takes).run_to_end()
    return copies


def _compare_copies(
    scene: bpy.types.Scene, takes: Sequence[Take], obj: bpy.types.Object
) -> list[bpy.types.Object]:
    collection = history.compare_collection(scene)
    copies = []
    end = scene.frame_start
    for i, take in enumerate(takes):
        record = record_for(take, obj)  # made current by the steps before
        if record is None or record.action is None:
            raise RigError(f"take {take.name!r} has no Action on {obj.name!r} to compare")
        action = record.action
        copy = rig_copy.independent_copy(obj, f"{obj.name} {take.name}")
        if copy is None:  # typed optional since fake-bpy-module-latest
            raise RigError(f"{obj.name!r} could not be copied to compare takes")
        collection.objects.link(copy)
        copy.location = obj.location.copy()
        copy.location.x += history.compare_offset(scene, i, len(takes))
        if copy.pose is None:
            scene.view_layers[0].update()
        build.assign_action(copy, action)
        end = max(end, build.action_frames(action)[1])
        copies.append(copy)
    scene.frame_end = end
    return copies


def delete_rig_actions(take: Take) -> None:
    """Remove the take's Actions on every rig; a rig playing one gets its own action back."""
    for record in take.rig_actions:
        action, obj = record.action, record.rig
        anim = obj.animation_data if obj is not None else None
        if obj is not None and anim is not None and action is not None and anim.action == action:
            rig_takes.give_back(obj)
        if action is not None:
            bpy.data.actions.remove(action)
    take.rig_actions.clear()


def export_take(
    scene: bpy.types.Scene, take: Take, files: Sequence[tuple[str, Path]], overwrite: bool
) -> list[Path]:
    """FBX/BVH of ``take`` for the panel's engine: from the character when the target is the
    artist's rig, else from the built-in armature under a stable name (``MAIN_OBJECT_NAME``)."""
    settings = scene_settings(scene)
    options = settings.retarget
    if settings.target == RIG_TARGET:
        obj = character(scene)
        action, _ = rig_action(scene, take, obj)
        root = _root_motion_bone(obj) if options.root_motion == "ROOT_BONE" else ""
        return _export(scene, obj, action, take, files, overwrite, options, root_bone=root)
    action, data = history._parts(take)
    obj = build.new_armature_object(scene, data, MAIN_OBJECT_NAME + " export")
    try:
        return _export(scene, obj, action, take, files, overwrite, options,
                       name=MAIN_OBJECT_NAME)  # fmt: skip
    finally:
        bpy.data.objects.remove(obj)


def _root_motion_bone(obj: bpy.types.Object) -> str:
    """The bone root motion *Root bone* keys (the top bone above the Pelvis bone): an engine
    extracts root motion from it, so a deform-only export keeps it on top."""
    bone = build.armature_data(obj).bones.get(rig_takes.rig_mapping(obj).joints["Pelvis"])
    while bone is not None and bone.parent is not None:
        bone = bone.parent
    return bone.name if bone is not None else ""


def _export(
    scene: bpy.types.Scene,
    obj: bpy.types.Object,
    action: bpy.types.Action,
    take: Take,
    files: Sequence[tuple[str, Path]],
    overwrite: bool,
    options: HYMOTION_PG_retarget,
    name: str = "",
    root_bone: str = "",
) -> list[Path]:
    written = []
    saved = obj.name
    try:
        if name and options.engine != "UNREAL":
            obj.name = name
        for fmt, path in files:
            if fmt == "FBX":
                rig_export.export_rig_fbx(scene, obj, action, path, take.name, options.engine,
                                          options.deform_only, overwrite, root_bone,
                                          options.include_meshes)  # fmt: skip
            else:
                rig_export.export_rig_bvh(scene, obj, action, path, float(take.fps),
                                          options.deform_only, overwrite)  # fmt: skip
            written.append(path)
    finally:
        obj.name = saved
    return written
