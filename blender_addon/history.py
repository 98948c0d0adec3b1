"""Takes history: turn a daemon result into takes in the .blend, apply, compare, delete, export."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from pathlib import Path

import bpy

from . import build, export, rig_takes
from .core import naming, rig, steps
from .core.conversion import resample
from .core.errors import ExportError, SceneError
from .core.protocol import messages, motion
from .core.session import ServerInfo
from .props import HYMOTION_PG_take as Take
from .props import scene_settings
from .targets import RIG_TARGET, target_object

COMPARE_COLLECTION = "HY-Motion compare"


def armature_for(
    skeleton: motion.Skeleton, scene: bpy.types.Scene, root_bone: bool = False
) -> bpy.types.Armature:
    """Reuse the armature data of an earlier take with the same skeleton (and a root bone, or
    none, as asked), else build one."""
    for known in [t.armature for t in scene_settings(scene).takes] + list(bpy.data.armatures):
        if (
            known is not None
            and known.get(build.SKELETON_KEY) is not None  # type: ignore[func-returns-value]
            and build.has_root_bone(known) == root_bone
            and rig.same_skeleton(build.armature_skeleton(known), skeleton)
        ):
            return known
    name = "HY-Motion (root bone)" if root_bone else "HY-Motion"
    obj = build.build_armature(scene, skeleton, name, root_bone)
    data = build.armature_data(obj)
    bpy.data.objects.remove(obj)  # the target decides which object plays the takes
    return data


def add_result(
    scene: bpy.types.Scene,
    result: messages.Result,
    server: ServerInfo,
    request: messages.Generate | None = None,
) -> list[Take]:
    """One Action and one take per candidate, written in bulk; returns the new takes."""
    settings = scene_settings(scene)
    data = armature_for(result.skeleton, scene)
    fps = export.scene_fps(scene)
    created = datetime.datetime.now().isoformat(timespec="seconds")
    first = len(settings.takes)
    for k, seed in enumerate(result.seeds):
        rotations, pelvis = resample(
            result.rotations[k], result.root_positions[k], float(result.fps), fps
        )
        channels = build.motion_to_channels(data, result.skeleton, rotations, pelvis)
        take = settings.takes.add()
        take.name = naming.take_name(result.prompt, seed)  # numbered if another take has it
        take.action = build.write_action(naming.action_name(take.name), channels)
        take.armature = data
        take.prompt, take.seed, take.candidate = result.prompt, str(seed), k
        take.frames, take.fps = rotations.shape[0], fps
        take.duration_s = (result.frames - 1) / result.fps
        take.guidance, take.steps = result.guidance, result.steps
        take.created, take.job_id = created, result.job_id
        take.server_version = server.version
        take.model, take.model_label, take.untrained = (
            result.model,
            result.model_label,
            result.untrained,
        )
        take.anchor_frame = anchor_frame(request, result.fps, fps)
    if request is not None and request.seed is not None:
        settings.seed = int(request.seed)
    # Fetch the items again: adding to a collection invalidates earlier Python references.
    return [settings.takes[i] for i in range(first, len(settings.takes))]


def name_actions(take: Take) -> None:
    """The take's Actions (its own, its raw one, those on artists' rigs) carry its name again
    after it was renamed; Blender adds ".001" where another datablock holds the name."""
    if take.action is not None:
        take.action.name = naming.action_name(take.name)
    if take.raw_action is not None:
        take.raw_action.name = naming.raw_action_name(take.name)
    for record in take.rig_actions:
        if record.action is not None and record.rig is not None:
            record.action.name = rig_takes.action_name(take.name, record.rig.name)


def show_request(scene: bpy.types.Scene, request: messages.Generate, take_index: int) -> None:
    """The panel set to what made the takes (the request, seed fixed) with ``take_index``
    active: a .blend written by the batch opens showing the settings of its takes."""
    settings = scene_settings(scene)
    settings.prompt, settings.duration_s = request.prompt, request.duration_s
    settings.candidates, settings.guidance, settings.steps = (
        request.candidates,
        request.guidance,
        request.steps,
    )
    if request.seed is not None:
        settings.seed_mode, settings.seed = "FIXED", int(request.seed)
    settings.active_take = take_index


def _parts(take: Take) -> tuple[bpy.types.Action, bpy.types.Armature]:
    """The take's Action and armature data; the artist may have deleted either."""
    if take.action is None or take.armature is None:
        raise SceneError(f"take {take.name!r} lost its action or armature")
    return take.action, take.armature


def anchor_frame(request: messages.Generate | None, source_fps: float, fps: float) -> int:
    """The take frame of the request's first given pose (Direction), -1 if it gave none."""
    constraints = request.constraints if request is not None else None
    if constraints is None or not constraints.has_poses:
        return -1
    assert constraints.pose_frames is not None
    return round(int(constraints.pose_frames[0]) * fps / source_fps)


def apply_take(scene: bpy.types.Scene, take: Take) -> bpy.types.Object:
    """Play ``take`` on the target object and set the scene's frame range to it."""
    if scene_settings(scene).target == RIG_TARGET:
        from . import rig_history  # the artist's own rig (issue #9)

        return rig_history.apply_rig_take(scene, take)
    action, data = _parts(take)
    obj = target_object(scene, scene_settings(scene), data)
    build.assign_action(obj, action)
    scene.frame_start, scene.frame_end = build.action_frames(action)
    return obj


def compare_takes(scene: bpy.types.Scene, takes: Sequence[Take]) -> list[bpy.types.Object]:
    """One armature per take, ``spacing`` apart along X, in their own collection (replaced)."""
    if scene_settings(scene).target == RIG_TARGET:
        from . import rig_history  # copies of the artist's rig (issue #9)

        return rig_history.compare_rig_takes(scene, takes)
    collection = compare_collection(scene)
    objects = []
    end = scene.frame_start
    for i, take in enumerate(takes):
        action, data = _parts(take)
        obj = build.new_armature_object(scene, data, take.name, collection)
        obj.location.x = compare_offset(scene, i, len(takes))
        build.assign_action(obj, action)
        end = max(end, build.action_frames(action)[1])
        objects.append(obj)
    scene.frame_end = end
    return objects


def compare_collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    """The collection compared takes live in, created on first use and emptied of the
    previous comparison's objects."""
    collection = bpy.data.collections.get(COMPARE_COLLECTION)
    if collection is None:
        collection = bpy.data.collections.new(COMPARE_COLLECTION)
        scene.collection.children.link(collection)
    for obj in list(collection.objects):
        bpy.data.objects.remove(obj)
    return collection


def compare_offset(scene: bpy.types.Scene, index: int, count: int) -> float:
    """X offset of the ``index``-th of ``count`` compared takes: ``spacing`` apart, centred."""
    return (index - (count - 1) / 2) * scene_settings(scene).spacing


def delete_take(scene: bpy.types.Scene, index: int) -> None:
    settings = scene_settings(scene)
    take = settings.takes[index]
    action = take.action
    raw = take.raw_action  # kept by finishing (issue #10)
    from . import rig_history  # the take's actions on artists' rigs go with it (issue #9)

    rig_history.delete_rig_actions(take)
    settings.takes.remove(index)
    if action is not None:
        bpy.data.actions.remove(action)  # also unassigns it from every object
    if raw is not None:
        bpy.data.actions.remove(raw)
    settings.active_take = min(settings.active_take, max(len(settings.takes) - 1, 0))


def take_files(take: Take, directory: Path, formats: Sequence[str]) -> list[tuple[str, Path]]:
    """(format, path) of each file an export of ``take`` writes, named after the take
    (``naming.export_stems``: unique among the scene's takes)."""
    unknown = [fmt for fmt in formats if fmt not in export.FORMATS]
    if unknown:
        raise ExportError(
            f"unknown export format {unknown[0]!r}", allowed=", ".join(export.FORMATS)
        )
    return [(fmt, directory / f"{file_stem(take)}.{fmt.lower()}") for fmt in formats]


def file_stem(take: Take) -> str:
    """The stem of ``take``'s export files: its name made file-safe, numbered where an earlier
    take of its scene gives the same stem."""
    takes = list(scene_settings(take.id_data).takes)  # type: ignore[arg-type]
    position = next(i for i, t in enumerate(takes) if t.as_pointer() == take.as_pointer())
    return naming.export_stems([t.name for t in takes])[position]


def export_take(
    scene: bpy.types.Scene,
    take: Take,
    directory: Path,
    formats: Sequence[str],
    overwrite: bool = False,
) -> list[Path]:
    """Write the take as each of ``formats`` (FBX, BVH); returns the paths written."""
    from . import rig_history  # the artist's rig, engine presets, stable names (issue #9)

    retarget = scene_settings(scene).retarget
    files = take_files(take, directory, formats)
    if scene_settings(scene).target == RIG_TARGET or retarget.engine != "BLENDER":
        return rig_history.export_take(scene, take, files, overwrite)
    action, data = _parts(take)
    written = []
    for fmt, path in files:
        if fmt == "FBX":  # the armature as "HY-Motion", the animation named after the take
            rig_history.export_take(scene, take, [(fmt, path)], overwrite)
        else:
            export.export_bvh(data, action, take.fps, path, overwrite)
        written.append(path)
    return written


def export_job(
    scene: bpy.types.Scene,
    takes: Sequence[Take],
    directory: Path,
    formats: Sequence[str],
    overwrite: bool = False,
) -> steps.StepJob:
    """Export ``takes`` as steps, one write each: on the artist's rig (Target *Selected
    armature*) first one step per take whose Action on the character is missing or stale
    (retarget and write, as Compare does), then one step per take writing its files (each file
    whole or not at all). Stopped early, the takes' Actions and files written so far stay."""
    work: list[steps.Step] = []
    if scene_settings(scene).target == RIG_TARGET:
        from . import rig_history

        work += rig_history.retarget_steps(scene, takes, rig_history.character(scene))
    for take in takes:
        write = functools.partial(export_take, scene, take, directory, formats, overwrite)
        work.append(steps.Step(f"files of {take.name!r}", write))
    written = len(planned_files(takes, directory, formats))
    return steps.StepJob(f"Exporting {len(takes)} takes", work,
                         done_text=f"Wrote {written} file(s) to {directory}")  # fmt: skip


def planned_files(takes: Sequence[Take], directory: Path, formats: Sequence[str]) -> list[Path]:
    """The files an export would write, to ask before overwriting any of them."""
    return [path for take in takes for _, path in take_files(take, directory, formats)]
