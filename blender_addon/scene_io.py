"""Scene set-up and file output for the headless batch (bpy side)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import bpy

from . import history, rig_batch
from .core import rig_pose
from .core.describe import explain
from .core.errors import SceneError
from .core.files import atomic_path, output_with_final_names
from .core.finishing.options import NO_FINISHING, FinishOptions
from .core.protocol import errors, messages
from .core.rig_cli import RigTarget
from .core.session import ServerInfo
from .props import scene_settings
from .runtime import server_line
from .take_finishing import finish_takes

__all__ = ["batch_scene", "server_line", "write_outputs"]


def current_scene() -> bpy.types.Scene:
    if bpy.context.scene is None:
        raise SceneError("Blender has no current scene")
    return bpy.context.scene


@contextlib.contextmanager
def batch_scene(fps: float) -> Iterator[bpy.types.Scene]:
    """The scene at ``fps``, with the add-on registered for as long as the batch runs.

    Registered here only if no enabled add-on did it already, and then unregistered again: the
    bpy module crashes (4.2) or hangs (4.5) at interpreter exit while Python classes or
    handlers are still registered.
    """
    from . import register, unregister

    registered_here = not hasattr(bpy.types.Scene, "hy_motion")
    if registered_here:
        register()
    try:
        scene = current_scene()
        scene.render.fps, scene.render.fps_base = _fps_pair(fps)
        yield scene
    finally:
        if registered_here:
            unregister()


def _fps_pair(fps: float) -> tuple[int, float]:
    # Blender stores a rate as an integer over a base (29.97 = 30 / 1.001).
    rounded = max(1, round(fps))
    return rounded, rounded / fps


def reset_scene(scene: bpy.types.Scene) -> None:
    """Empty the scene and the data the previous prompt made, keeping the add-on registered."""
    data = bpy.data
    bpy.data.batch_remove([*data.objects, *data.actions, *data.armatures, *data.collections])
    settings = scene_settings(scene)
    settings.takes.clear()
    settings.armature = None


def check_character(character: RigTarget) -> rig_pose.Placement:
    """Load the batch's character once, to refuse a bad ``--target-rig`` before generating;
    returns where it stands (directed jobs' paths are given in its scene)."""
    scene = current_scene()
    try:
        rig = rig_batch.load_rig(scene, character)
        rig_batch.apply_preset(rig, character)
        rig_batch.describe(rig)  # its mapping: legs, hips, no bone mapped twice
        return rig_batch.placement(rig, character)
    finally:
        reset_scene(scene)


def write_outputs(
    result: messages.Result,
    server: ServerInfo,
    request: messages.Generate | None,
    folder: Path,
    blend: Path | None,
    formats: Sequence[str],
    overwrite: bool,
    finish: FinishOptions = NO_FINISHING,
    character: RigTarget | None = None,
) -> list[dict[str, Any]]:
    """Build the takes, finish them, save them as ``blend`` (None: no .blend) and export each
    take into ``folder``; one record per candidate."""
    scene = current_scene()
    reset_scene(scene)
    records: list[dict[str, Any]] = [
        {
            "prompt": result.prompt,
            "seed": seed,
            "candidate": k,
            "job_id": result.job_id,
            "untrained": result.untrained,
            "model": result.model,
            "frames": result.frames,
            "files": [],
            "error": "",
        }
        for k, seed in enumerate(result.seeds)
    ]
    try:
        takes = history.add_result(scene, result, server, request)
        if finish.active:  # finishing (issue #10): a refused take is reported, not exported
            for record, outcome in zip(records, finish_takes(scene, takes, finish), strict=True):
                record["finishing"] = {"options": finish.as_dict(), "report": {}}
                if isinstance(outcome, errors.HYMotionError):
                    mark_failed(record, outcome)
                else:
                    record["finishing"]["report"] = outcome
        if character is not None:  # the artist's rig and engine presets (issue #9)
            rig = rig_batch.prepare(scene, character, takes)
            for record in records:
                record["character"] = rig_batch.describe(rig) if rig else None
        history.apply_take(scene, takes[0])
        if request is not None:
            history.show_request(scene, request, take_index=0)
        if blend is not None:
            with atomic_path(blend, overwrite) as temp:
                temp.unlink()  # else Blender keeps the empty placeholder as a ".blend1" backup
                with output_with_final_names():
                    bpy.ops.wm.save_as_mainfile(filepath=str(temp), copy=True, compress=True)
            for record in records:
                record["files"].append(str(blend))
    except errors.HYMotionError as exc:
        for record in records:
            mark_failed(record, exc)
        return records
    for record, take in zip(records, takes, strict=True):
        if record["error"]:
            continue
        export = tuple(f.upper() for f in formats if f != "blend")
        try:
            with output_with_final_names():
                written = history.export_take(scene, take, folder, export, overwrite)
            record["files"] += [str(p) for p in written]
        except errors.HYMotionError as exc:
            mark_failed(record, exc)
    return records


def mark_failed(record: dict[str, Any], error: errors.HYMotionError) -> None:
    """A summary item that failed: what went wrong in plain words, and its error code."""
    record.update(error=str(explain(error)), code=error.code)
