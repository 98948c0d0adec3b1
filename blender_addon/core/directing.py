"""Directed generation in the batch's JSON job file (no bpy): a ``"direct"`` object per prompt.

    {"prompt": "a person walks over and sits down", "duration_s": 4,
     "direct": {"start_from": "takes/walk.bvh",
                "end_pose": {"bvh": "poses/sit.bvh", "frame": 0, "at": 119},
                "loop": false,
                "path": [{"frame": 40, "x": 1, "y": -1.5}, {"frame": 100, "x": 2, "y": -3}],
                "timeline": [{"prompt": "a person stands up and waves", "duration_s": 5}],
                "exact": true}}

- ``start_from``: a BVH take (any humanoid BVH, put on the model skeleton by the motion core);
  the clip starts with its last PREFIX_FRAMES frames and continues from there. Or
  ``{"bvh": ..., "frame": N}``: the clip starts from that one frame's pose (N as in end_pose).
- ``end_pose``: the pose of frame ``frame`` (default 0) of a BVH, held at clip frame ``at``
  (default the last frame), where that BVH puts it.
- ``path``: pelvis ground positions in Blender scene metres (x, y), optionally with the facing
  ``heading_deg`` about +Z (0 faces −Y, the front view; 90 faces +X); a point on a posed frame
  must lie where the pose stands (the daemon refuses it otherwise).
- ``timeline``: further prompts, each continuing the previous one (protocol "Constraints").
Relative paths are relative to the job file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BatchInputError, SettingsError
from .motion import bvh_import
from .protocol import constraints as wire
from .protocol import motion

Constraints = wire.Constraints
TimelineRow = wire.TimelineRow
frames_for_duration = motion.frames_for_duration


class DirectionError(SettingsError):
    """The panel's Direction options cannot be used as they are."""

    hint = "Fix it in the HY-Motion panel's Direction section."


#: Frames of a take's end a continuation starts from (the daemon's timeline overlap, 0.5 s).
PREFIX_FRAMES = 15
#: What to do about a timeline row without a prompt (batch and panel say the same).
BLANK_ROW_FIX = "type what happens next, or remove the row"
_KEYS = ("start_from", "end_pose", "loop", "path", "timeline", "exact")


def constraints_from_json(value: Any, where: str, base: Path, duration_s: float) -> Constraints:
    """The ``direct`` object of one job -> wire constraints; BatchInputError names the key."""
    if not isinstance(value, dict):
        raise BatchInputError(f"{where}: 'direct' must be an object", field="direct")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise BatchInputError(
            f"{where}: unknown direct option {unknown[0]!r}",
            field=f"direct.{unknown[0]}",
            allowed=", ".join(_KEYS),
        )
    timeline = _timeline(value.get("timeline", []), where)
    frames = frames_for_duration(duration_s) + sum(
        frames_for_duration(r.duration_s) for r in timeline
    )
    pose_frames: list[int] = []
    rotations: list[np.ndarray] = []
    roots: list[np.ndarray] = []
    if "start_from" in value:
        start = _start(value["start_from"], base, where)
        pose_frames += range(len(start[0]))
        rotations += list(start[0])
        roots += list(start[1])
    if "end_pose" in value:
        frame, rotation, root = _end_pose(value["end_pose"], base, where, frames)
        pose_frames.append(frame)
        rotations.append(rotation)
        roots.append(root)
    path_frames, path_points = _path(value.get("path", []), where)
    return _constraints(
        pose_frames,
        rotations,
        roots,
        path_frames=path_frames,
        path_points=path_points,
        loop=_bool(value.get("loop", False), where, "direct.loop"),
        timeline=timeline,
        exact=_bool(value.get("exact", True), where, "direct.exact"),
    )


def _constraints(
    frames: list[int], rotations: list[Any], roots: list[Any], **rest: Any
) -> Constraints:
    """Constraints with the poses at ``frames`` (none when empty) and the ``rest`` as given."""
    if not frames:
        return Constraints(**rest)
    return Constraints(
        pose_frames=np.array(frames, np.int32),
        pose_rotations=np.array(rotations, np.float32),
        pose_root_positions=np.array(roots, np.float32),
        **rest,
    )


def _take(path: Any, base: Path, where: str, field: str) -> bvh_import.BvhTake:
    if not isinstance(path, str):
        raise BatchInputError(f"{where}: {field} must be a BVH file path", field=field)
    full = (base / path).expanduser()
    try:
        return bvh_import.load_bvh_take(full)
    except (OSError, bvh_import.BvhError) as exc:
        raise BatchInputError(f"{where}: {field}: cannot use {full}: {exc}", field=field) from exc


def _start(value: Any, base: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (P, J, 4) and pelvis (P, 3) a clip starts with: the last PREFIX_FRAMES of a
    take, or one frame's pose (``{"bvh", "frame"}``)."""
    if isinstance(value, dict):
        take, index = _bvh_frame(value, base, where, "direct.start_from", ("bvh", "frame"))
        return take.rotations[index][None], take.root_positions[index][None]
    take = _take(value, base, where, "direct.start_from")
    return take.rotations[-PREFIX_FRAMES:], take.root_positions[-PREFIX_FRAMES:]


def _end_pose(value: Any, base: Path, where: str, frames: int) -> tuple[int, Any, Any]:
    field = "direct.end_pose"
    take, source = _bvh_frame(value, base, where, field, ("bvh", "frame", "at"))
    at = _int(value.get("at", frames - 1), where, f"{field}.at")
    return at, take.rotations[source], take.root_positions[source]


def _bvh_frame(
    value: Any, base: Path, where: str, field: str, keys: tuple[str, ...]
) -> tuple[bvh_import.BvhTake, int]:
    """``{"bvh": FILE, "frame": N}`` (N default 0, negative from the end) -> (take, N)."""
    if not isinstance(value, dict) or "bvh" not in value:
        raise BatchInputError(f"{where}: {field} must be an object with 'bvh'", field=field)
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise BatchInputError(f"{where}: unknown {field} key {unknown[0]!r}",
                              field=f"{field}.{unknown[0]}", allowed=", ".join(keys))  # fmt: skip
    take = _take(value["bvh"], base, where, f"{field}.bvh")
    source = _int(value.get("frame", 0), where, f"{field}.frame")
    if not -take.rotations.shape[0] <= source < take.rotations.shape[0]:
        raise BatchInputError(
            f"{where}: {field}.frame {source} is outside the BVH's "
            f"{take.rotations.shape[0]} frames",
            field=f"{field}.frame",
        )
    return take, source


def _path(value: Any, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not isinstance(value, list):
        raise BatchInputError(f"{where}: direct.path must be a list of points", field="direct.path")
    if not value:
        return None, None
    headed = [isinstance(p, dict) and "heading_deg" in p for p in value]
    if any(headed) and not all(headed):  # headings on some points only: refused, not dropped
        i = headed.index(False)
        raise BatchInputError(
            f"{where}: direct.path[{i}] has no heading_deg while other points have one: give "
            "heading_deg on every point, or on none",
            field=f"direct.path[{i}].heading_deg",
        )
    frames, points = [], []
    for i, point in enumerate(value):
        field = f"direct.path[{i}]"
        if not isinstance(point, dict):
            raise BatchInputError(f"{where}: {field} must be an object", field=field)
        frames.append(_int(point.get("frame"), where, f"{field}.frame"))
        x = _number(point.get("x"), where, f"{field}.x")
        y = _number(point.get("y"), where, f"{field}.y")
        row = [x, -y]  # Blender (x, y) on the ground = model (x, −z)
        if all(headed):
            row.append(math.radians(_number(point["heading_deg"], where, f"{field}.heading_deg")))
        points.append(row)
    return np.array(frames, np.int32), np.array(points, np.float32)


def _timeline(value: Any, where: str) -> tuple[TimelineRow, ...]:
    if not isinstance(value, list):
        raise BatchInputError(f"{where}: direct.timeline must be a list", field="direct.timeline")
    rows = []
    for i, row in enumerate(value):
        field = f"direct.timeline[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise BatchInputError(f"{where}: {field} needs a 'prompt'", field=field)
        if not row["prompt"].strip():  # refused here, as an empty prompt is, not by the daemon
            raise BatchInputError(f"{where}: {field}.prompt is empty: {BLANK_ROW_FIX}",
                                  field=f"{field}.prompt")  # fmt: skip
        seconds = _number(row.get("duration_s"), where, f"{field}.duration_s")
        rows.append(TimelineRow(row["prompt"].strip(), seconds))
    return tuple(rows)


def _int(value: Any, where: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BatchInputError(f"{where}: {field} must be a whole number", field=field)
    return value


def _number(value: Any, where: str, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BatchInputError(f"{where}: {field} must be a number", field=field)
    return float(value)


def _bool(value: Any, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise BatchInputError(f"{where}: {field} must be true or false", field=field)
    return value


# --- the panel's directions (scene frames and a take's motion -> constraints) -----------------


def panel_constraints(
    *,
    rotations: np.ndarray | None,
    pelvis: np.ndarray | None,
    take_start: int,
    start: str,
    current_frame: int,
    end_frame: int | None,
    loop: bool,
    curve_points: np.ndarray | None,
    timeline: tuple[TimelineRow, ...],
    clip_frames: int,
    take_frames: int | None = None,
) -> Constraints | None:
    """The panel's direction options as constraints, or None when nothing is directed.

    ``rotations`` (F, J, 4) / ``pelvis`` (F, 3) are the active take's model-space motion whose
    frame 0 is scene frame ``take_start``. ``start``: "NONE", "CURRENT" (the take's pose at
    ``current_frame`` becomes clip frame 0) or "TAKE_END" (its last PREFIX_FRAMES frames start
    the clip). ``end_frame``: a scene frame whose pose the clip lands on, at the clip frame that
    scene frame maps to. ``curve_points`` (P, 2): model ground (x, z) along a curve, followed
    from the end of the prefix to the last frame of the clip (``clip_frames`` in all).
    ``take_frames``: how many of the frames are the take's (None: all; a rig's poses may follow
    them, ``directing_ui``), so "TAKE_END" starts from the take's own last frames."""
    poses: list[int] = []
    pose_rotations: list[np.ndarray] = []
    pose_pelvis: list[np.ndarray] = []
    needs_take = start != "NONE" or end_frame is not None
    if needs_take and (rotations is None or pelvis is None):
        raise DirectionError("directing from a pose needs an active take", field="take")
    clip_zero = take_start  # the scene frame of clip frame 0
    if start == "CURRENT":
        assert rotations is not None and pelvis is not None
        index = _take_index(current_frame, take_start, len(rotations), "frame_current")
        poses, pose_rotations, pose_pelvis = [0], [rotations[index]], [pelvis[index]]
        clip_zero = current_frame
    elif start == "TAKE_END":
        assert rotations is not None and pelvis is not None
        end = len(rotations) if take_frames is None else take_frames
        count = min(PREFIX_FRAMES, end)
        poses = list(range(count))
        prefix_frames = slice(end - count, end)
        pose_rotations, pose_pelvis = list(rotations[prefix_frames]), list(pelvis[prefix_frames])
        clip_zero = take_start + end - count
    prefix = len(poses)
    if end_frame is not None:
        assert rotations is not None and pelvis is not None
        index = _take_index(end_frame, take_start, len(rotations), "end_frame")
        poses.append(end_frame - clip_zero)
        pose_rotations.append(rotations[index])
        pose_pelvis.append(pelvis[index])
    path_frames = path_points = None
    if curve_points is not None and len(curve_points) > 1:
        path_frames, path_points = _along(curve_points, prefix, clip_frames)
    if not poses and path_frames is None and not loop and not timeline:
        return None
    return _constraints(
        poses,
        pose_rotations,
        pose_pelvis,
        path_frames=path_frames,
        path_points=path_points,
        loop=loop,
        timeline=timeline,
    )


def panel_timeline(rows: Sequence[tuple[str, float]]) -> tuple[TimelineRow, ...]:
    """The panel's Timeline rows (prompt, seconds) as wire rows. A row whose prompt is empty or
    only spaces is refused naming it (1-based, as the list shows it), as an empty prompt is."""
    for number, (prompt, _) in enumerate(rows, start=1):
        if not prompt.strip():
            raise DirectionError(f"Timeline row {number} has no prompt: {BLANK_ROW_FIX} (−)",
                                 field="timeline")  # fmt: skip
    return tuple(TimelineRow(prompt.strip(), seconds) for prompt, seconds in rows)


#: A followed curve is held every this many frames (and at the clip's last frame).
CURVE_STEP_FRAMES = 10


def _along(points: np.ndarray, first: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground points (P, 2) spread by arc length over clip frames ``first`` … ``frames − 1``."""
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.unique(np.append(np.arange(first, frames, CURVE_STEP_FRAMES), frames - 1))
    share = (at - first) / max(frames - 1 - first, 1) * lengths[-1]
    x = np.interp(share, lengths, points[:, 0])
    z = np.interp(share, lengths, points[:, 1])
    return at.astype(np.int32), np.stack([x, z], axis=-1).astype(np.float32)


def _take_index(frame: int, take_start: int, count: int, field: str) -> int:
    index = frame - take_start
    if not 0 <= index < count:
        raise DirectionError(
            f"scene frame {frame} is outside the active take (frames {take_start} to "
            f"{take_start + count - 1})",
            field=field,
        )
    return index


# --- the panel's in-between (two keyed poses, or one take's end into another's start) ---------


def inbetween_keys(
    rotations: np.ndarray,
    pelvis: np.ndarray,
    take_start: int,
    first: int,
    last: int,
    curve_points: np.ndarray | None = None,
) -> tuple[Constraints, float]:
    """The motion between the active take's poses at scene frames ``first`` and ``last``:
    constraints holding them at the clip's first and last frame, and the clip's duration in
    seconds (``last − first + 1`` frames, so the take spans exactly those frames);
    ``curve_points`` as in :func:`panel_constraints`, between the two."""
    frames = last - first + 1
    if not motion.MIN_FRAMES <= frames <= motion.MAX_FRAMES:
        raise DirectionError(
            f"an in-between from frame {first} to frame {last} spans {frames} frames; the model "
            f"generates {motion.MIN_FRAMES} to {motion.MAX_FRAMES}",
            field="inbetween_to",
            allowed=f"{first + motion.MIN_FRAMES - 1} to {first + motion.MAX_FRAMES - 1}",
        )
    keys = [
        _take_index(first, take_start, len(rotations), "inbetween_from"),
        _take_index(last, take_start, len(rotations), "inbetween_to"),
    ]
    path = _path_between(curve_points, 1, frames - 1)
    constraints = _constraints([0, frames - 1], list(rotations[keys]), list(pelvis[keys]), **path)
    return constraints, frames / motion.FPS


def inbetween_takes(
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    clip_frames: int,
    curve_points: np.ndarray | None = None,
) -> tuple[Constraints, np.ndarray]:
    """From the end of one take into the start of another: the clip begins with the last
    PREFIX_FRAMES frames of ``before`` and ends with the first PREFIX_FRAMES of ``after`` (each
    (rotations (F, J, 4), pelvis (F, 3))), so velocity carries across both joins.

    ``before`` is held where it stands. ``after`` is moved on the ground (not turned) so that its
    first frame lies where ``before``'s last ground velocity carries the pelvis over the frames
    between, or at the end of the followed curve (``curve_points`` as in
    :func:`panel_constraints`, between the held frames): holding it where it was generated would
    make a walk turn back to wherever the other take began. Returns the constraints and that
    move, model (x, 0, z) metres (play ``after`` moved by it to chain the three)."""
    if clip_frames <= 2 * PREFIX_FRAMES:
        raise DirectionError(
            f"an in-between of two takes holds {PREFIX_FRAMES} frames of each, so it needs more "
            f"than {2 * PREFIX_FRAMES} frames; the duration gives {clip_frames}",
            field="duration_s",
            allowed=f"at least {(2 * PREFIX_FRAMES + 1) / motion.FPS:.2f} s",
        )
    head = min(PREFIX_FRAMES, len(before[0]))
    tail = min(PREFIX_FRAMES, len(after[0]))
    path = _path_between(curve_points, head, clip_frames - tail)
    if path:
        landing = np.array([path["path_points"][-1][0], 0.0, path["path_points"][-1][1]])
    else:
        held = before[1][-head:]
        velocity = (held[-1] - held[0]) / max(head - 1, 1)  # metres per frame
        landing = held[-1] + velocity * (clip_frames - head - tail + 1)
    move = landing - after[1][0]
    move[1] = 0.0  # heights stay the takes' own
    frames = [*range(head), *range(clip_frames - tail, clip_frames)]
    rotations = [*before[0][-head:], *after[0][:tail]]
    roots = [*before[1][-head:], *(after[1][:tail] + move)]
    return _constraints(frames, rotations, roots, **path), move


def _path_between(curve_points: np.ndarray | None, first: int, end: int) -> dict[str, Any]:
    """A followed curve over clip frames ``first`` … ``end − 1``, between held poses (a path
    point on a held frame would have to sit exactly on that pose)."""
    if curve_points is None or len(curve_points) < 2:
        return {}
    frames, points = _along(curve_points, first, end)
    return {"path_frames": frames, "path_points": points}
