"""Finishing a take in the scene: the raw take is kept, the take's Action is re-baked.

The first time a take is finished its Action is copied to ``take.raw_action`` ("HYM <name>
(raw)", kept with a fake user); from then on every change of options re-bakes the take's
own Action in place (same datablock, so every object playing it follows) from the raw motion.
Turning every option off restores the raw motion. A refusal leaves the Action as it was and
shows the reason on the take. Characters playing the take follow, one write per step
(:func:`refinish_job`), so the UI never waits for more than one take's write.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import build, history, step_runner
from .core import naming, steps
from .core.channels import Channel
from .core.describe import explain
from .core.errors import SceneError
from .core.finishing.options import FinishOptions
from .core.finishing.pipeline import finish
from .core.motion import bvh_import
from .core.motion.root import ROOT_BONE
from .core.protocol import errors
from .core.session import ServerInfo
from .finishing_props import HYMOTION_PG_finishing
from .props import HYMOTION_PG_take as Take
from .props import scene_settings

_quiet_depth = 0


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Option changes inside this block do not re-bake (several fields set at once)."""
    global _quiet_depth
    _quiet_depth += 1
    try:
        yield
    finally:
        _quiet_depth -= 1


def on_options_changed(finishing: HYMOTION_PG_finishing) -> None:
    """Property update hook: re-bake the take that owns ``finishing``. A take no character
    plays is one step, done now; with characters playing it the re-bake is a job of one step
    per write, which an update callback cannot run modally, so it is queued for the
    *Re-bake Finishing* operator (headless, every step runs now)."""
    if _quiet_depth:
        return
    scene = finishing.id_data
    match = re.fullmatch(r"hy_motion\.takes\[(\d+)\]\.finishing", finishing.path_from_id())
    if not isinstance(scene, bpy.types.Scene) or match is None:
        return
    index = int(match.group(1))
    job = refinish_job(scene, scene_settings(scene).takes[index])
    if job.total > 1 and step_runner.has_window():
        step_runner.invoke_soon("hy_motion.finish_take", scene, index=index)
        return
    with contextlib.suppress(errors.HYMotionError):  # shown on the take by the step itself
        job.run_to_end()


def refinish_job(scene: bpy.types.Scene, take: Take) -> steps.StepJob:
    """The re-bake as steps, one write each: the take's own Action from its raw motion (every
    armature playing it follows), then the take's Action on each character playing it, remade
    from the finished take. A refusal stops the job at the first step (nothing changed; the
    reason is shown on the take); the first step returns the finishing report."""
    work = [steps.Step(f"take {take.name!r}", functools.partial(_rebake_shown, scene, take))]
    if len(take.rig_actions):
        from . import rig_history  # the take on the artist's rig (issue #9) follows too

        work += rig_history.refresh_steps(scene, take)
    return steps.StepJob(f"Finishing {take.name!r}", work)


def refinish(scene: bpy.types.Scene, take: Take) -> dict[str, Any]:
    """Every step of :func:`refinish_job` now; returns the finishing report.

    Raises ``FinishingError`` (the take's Action unchanged) when an option cannot apply.
    """
    job = refinish_job(scene, take)
    job.run_to_end()
    report: dict[str, Any] = job.results[0]
    return report


def _rebake_shown(scene: bpy.types.Scene, take: Take) -> dict[str, Any]:
    try:
        return rebake(scene, take)
    except errors.HYMotionError as exc:
        take.finishing.status = str(explain(exc))
        raise


def rebake(scene: bpy.types.Scene, take: Take) -> dict[str, Any]:
    """Re-bake ``take``'s own Action from its raw motion with its current options (characters
    playing it are not touched); returns the report. Raises ``FinishingError`` (the take's
    Action unchanged) when an option cannot apply."""
    if take.action is None or take.armature is None:
        raise SceneError(f"take {take.name!r} lost its action or armature")
    options = take.finishing.options()
    if take.raw_action is None and not options.active:
        return {}
    # Never finished: the take's own Action is the raw take (copied once finishing applies).
    raw = take.raw_action or take.action
    skeleton, rotations, pelvis = build.read_motion(raw, take.armature)
    report: dict[str, Any] = {}
    if options.active:
        done = finish(skeleton, rotations, pelvis, take.fps, options)
        rotations, pelvis, report = done.clip.rotations, done.clip.root_positions, done.report
        _keep_raw(take)  # kept before the take's own Action changes
        use_root_bone(scene, take, options.root_bone)
        channels = build.motion_to_channels(take.armature, skeleton, rotations, pelvis)
        build.add_bone_curves(take.action, channels)  # the root's, when it was just added
        replace_keys(take.action, channels)
    else:
        use_root_bone(scene, take, False)
        copy_keys(take.raw_action, take.action)  # the raw take back, key for key
    take.frames = int(rotations.shape[0])
    take.finishing.report = json.dumps(report)
    take.finishing.status = summary_line(report) if options.active else ""
    settings = scene_settings(scene)
    playing = settings.armature
    if (
        playing is not None
        and playing.animation_data
        and playing.animation_data.action == take.action
    ):
        scene.frame_start, scene.frame_end = build.action_frames(take.action)
    return report


def use_root_bone(scene: bpy.types.Scene, take: Take, root_bone: bool) -> None:
    """Move ``take`` (and every object playing it) to the variant of its armature with a root
    bone, or without one; leaving the root bone drops the root's keys from its Action."""
    data = take.armature
    if build.has_root_bone(data) == root_bone:
        return
    other = history.armature_for(build.armature_skeleton(data), scene, root_bone)
    for obj in scene.objects:
        anim = obj.animation_data
        if obj.data == data and anim is not None and anim.action == take.action:
            obj.data = other
    take.armature = other
    if not root_bone:
        build.remove_bone_curves(take.action, ROOT_BONE)


def _keep_raw(take: Take) -> None:
    """Copy the take's Action to its raw Action, the first time only."""
    if take.raw_action is None:
        raw = take.action.copy()
        raw.name = naming.raw_action_name(take.name)
        raw.use_fake_user = True
        take.raw_action = raw


def replace_keys(action: bpy.types.Action, channels: Sequence[Channel]) -> None:
    """Replace the keys of ``action``'s curves with ``channels`` (same curves, new keys)."""
    curves = [build.find_curve(action, c.data_path, c.index) for c in channels]
    missing = [c.data_path for c, curve in zip(channels, curves, strict=True) if curve is None]
    if missing:
        raise SceneError(f"action {action.name!r} has no curve {missing[0]!r} any more")
    for channel, curve in zip(channels, curves, strict=True):
        assert curve is not None
        build.fill_curve(curve, channel.co)


def copy_keys(source: bpy.types.Action, target: bpy.types.Action) -> None:
    """Give every curve of ``target`` the keys of the same curve in ``source``."""
    for curve in _curves(source):
        _copy_curve(curve, target)


def _curves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    if not build.IS_SLOTTED:
        return list(action.fcurves)
    curves: list[bpy.types.FCurve] = []
    for layer in action.layers:
        for strip in layer.strips:
            if isinstance(strip, bpy.types.ActionKeyframeStrip):
                bag = strip.channelbag(action.slots[0])
                curves += list(bag.fcurves) if bag is not None else []
    return curves


def _copy_curve(curve: bpy.types.FCurve, target: bpy.types.Action) -> None:
    into = build.find_curve(target, curve.data_path, curve.array_index)
    if into is None:
        raise SceneError(f"action {target.name!r} has no curve {curve.data_path!r} any more")
    co = np.empty(2 * len(curve.keyframe_points), dtype=np.float32)
    curve.keyframe_points.foreach_get("co", co)
    build.fill_curve(into, co)


def summary_line(report: dict[str, Any]) -> str:
    """One line for the panel: what finishing did to the take."""
    parts = []
    if "loop" in report:
        loop = report["loop"]
        parts.append(f"loop {loop['frames']} frames ({loop['start_frame']}–{loop['end_frame']})")
    if "foot_lock" in report:
        lock = report["foot_lock"]
        parts.append(
            f"skate {lock['skate_before']['distance_m']:.2f} → "
            f"{lock['skate_after']['distance_m']:.2f} m"
        )
    if "travel_per_cycle" in report:
        travel = report["travel_per_cycle"]
        parts.append(f"travel/cycle {travel['distance_m']:.2f} m, {travel['turn_deg']:+.0f}°")
    if "root_bone" in report:
        travel = report["root_bone"]["travel_per_cycle"]
        parts.append(f"root/cycle {travel['distance_m']:.2f} m, {travel['turn_deg']:+.0f}°")
    parts.append(f"{report.get('frames_out', 0)} frames")
    return " · ".join(parts)


def finish_takes(
    scene: bpy.types.Scene, takes: Sequence[Take], options: FinishOptions
) -> list[dict[str, Any] | errors.HYMotionError]:
    """Finish several takes with the same options (the batch): a report or the error each."""
    out: list[dict[str, Any] | errors.HYMotionError] = []
    for take in takes:
        take.finishing.set_options(options)
        try:
            out.append(refinish(scene, take))
        except errors.HYMotionError as exc:
            take.finishing.status = str(explain(exc))
            out.append(exc)
    return out


def add_bvh_take(scene: bpy.types.Scene, path: Path) -> Take:
    """Read a humanoid BVH and add it to the takes history as a take on the model skeleton."""
    take = bvh_import.load_bvh_take(path)
    result = bvh_import.as_result(take, Path(path).stem)
    server = ServerInfo(
        version="", model="bvh", model_label="BVH import", device="", untrained=False
    )
    (added,) = history.add_result(scene, result, server)
    return added
