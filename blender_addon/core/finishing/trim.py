"""Trim and ease (numpy, no bpy).

Frames here are the take's own, 1-based and inclusive, as the timeline shows them (frame 1 is
the take's first frame). Easing blends the first ``ease_in`` frames from a pose into the motion
and the last ``ease_out`` frames from the motion into a pose (smoothstep weights; rotations
slerped as quaternions). The pose is the skeleton's rest pose standing on the floor (facing
where the character faces at that moment, at its ground position), or one of the take's own
frames (its pose, again placed where the character is at that moment).
"""

from __future__ import annotations

import numpy as np

from ..errors import FinishingError
from ..motion import rotations as rot
from ..motion.root import unwrapped_heading
from ..motion.skeletons import ground_offset
from .clip import Clip, smoothstep

EASE_POSES = ("REST", "FRAME")


def trim(clip: Clip, first: int, last: int) -> Clip:
    """Frames ``first`` … ``last`` (1-based, inclusive) of ``clip``."""
    if not (1 <= first <= last <= clip.frames) or last - first + 1 < 2:
        raise FinishingError(
            f"trim frames {first}–{last} are outside this take (frames 1–{clip.frames}; "
            "keep at least 2)",
            field="trim",
        )
    return clip.frames_slice(first - 1, last)


def rest_standing_height(clip: Clip) -> float:
    """Pelvis height (m) at which the rest pose stands on the floor."""
    rest = clip.skeleton.rest_positions.astype(np.float64)
    return float(rest[0, 1] - ground_offset(clip.skeleton, rest[None]))


def ease(clip: Clip, ease_in: int, ease_out: int, pose: str = "REST", pose_frame: int = 1) -> Clip:
    """Blend in from / out to ``pose`` ("REST", or "FRAME": the take's frame ``pose_frame``)."""
    if ease_in < 0 or ease_out < 0 or ease_in + ease_out > clip.frames:
        raise FinishingError(
            f"ease in {ease_in} + ease out {ease_out} frames do not fit this take "
            f"({clip.frames} frames)",
            field="ease",
        )
    if pose not in EASE_POSES:
        raise FinishingError(f"unknown ease pose {pose!r}", field="ease_pose",
                             allowed=", ".join(EASE_POSES))  # fmt: skip
    if pose == "FRAME" and not 1 <= pose_frame <= clip.frames:
        raise FinishingError(f"ease pose frame {pose_frame} is outside this take (frames "
                             f"1–{clip.frames})", field="ease_frame")  # fmt: skip
    rotations, root = clip.rotations.copy(), clip.root_positions.copy()
    heading = unwrapped_heading(clip.rotations[:, 0])
    if pose == "REST":
        local = np.broadcast_to(rot.IDENTITY, rotations.shape[1:]).copy()
        height = rest_standing_height(clip)
        pose_heading = 0.0
    else:
        local = clip.rotations[pose_frame - 1].copy()
        height = float(clip.root_positions[pose_frame - 1, 1])
        pose_heading = float(heading[pose_frame - 1])
    for frames, at_start in ((ease_in, True), (ease_out, False)):
        if frames == 0:
            continue
        index = np.arange(frames) if at_start else np.arange(clip.frames - frames, clip.frames)
        # weight of the motion: 0 on the take's first (last) frame, rising into the motion
        steps = np.arange(frames) if at_start else np.arange(frames)[::-1]
        weight = smoothstep(steps / frames)
        target = np.broadcast_to(local, (frames, *local.shape)).copy()
        # the pose turns to face where the character faces, its pelvis over the character
        target[:, 0] = rot.multiply(rot.yaw(heading[index] - pose_heading), local[0])
        rotations[index] = rot.slerp(target, rotations[index], weight[:, None])
        root[index, 1] = height + (root[index, 1] - height) * weight
    return clip.with_motion(rot.make_continuous(rotations), root)
