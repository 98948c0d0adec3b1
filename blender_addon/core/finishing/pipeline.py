"""Run the chosen finishing options on a take, in a fixed order, all or nothing.

Order: trim → loop → ease → foot lock → in place. Trimming first lets the loop search only
the kept frames; foot lock runs on the final timing so feet stay planted across a loop's seam;
travel is removed last so the net travel per cycle is measured before it goes. Every step
works on a copy: a step that cannot apply raises ``FinishingError`` and the take is unchanged.

*Root bone* does not change the motion: the scene (``build.motion_to_channels``) splits what
is left of the travel onto the armature's root bone; the report says how far it moves per
cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..motion import root as root_edits
from ..motion.root import ROOT_BONE
from ..protocol import motion
from .clip import Clip, as_clip
from .footlock import foot_lock, foot_lock_loop
from .loop import make_loop, travel_dict
from .options import FinishOptions
from .trim import ease, trim


@dataclass(frozen=True, eq=False)
class Finished:
    clip: Clip
    report: dict[str, Any] = field(default_factory=dict)


def finish(
    skeleton: motion.Skeleton,
    rotations: np.ndarray,
    root_positions: np.ndarray,
    fps: float,
    options: FinishOptions,
) -> Finished:
    """The finished take (float64 arrays) and a report for summary.json and the panel."""
    clip = as_clip(skeleton, rotations, root_positions, fps)
    report: dict[str, Any] = {"frames_in": clip.frames}
    if options.trims:
        first = options.trim_start or 1
        last = options.trim_end or clip.frames
        clip = trim(clip, first, last)
        report["trim"] = {"first_frame": first, "last_frame": last}
    travel = None
    if options.loop:
        clip, loop_report = make_loop(clip, options.loop_blend)
        report["loop"] = loop_report.as_dict()
        travel = loop_report.travel
    if options.ease_in or options.ease_out:
        clip = ease(clip, options.ease_in, options.ease_out, options.ease_pose, options.ease_frame)
        report["ease"] = {"in": options.ease_in, "out": options.ease_out,
                          "pose": options.ease_pose}  # fmt: skip
    if options.foot_lock != "OFF":
        if travel is not None:  # a loop: locked as a cycle, so its seam stays seamless
            clip, lock_report = foot_lock_loop(clip, travel, options.foot_lock)
        else:
            clip, lock_report = foot_lock(clip, options.foot_lock)
        report["foot_lock"] = lock_report.as_dict()
    if options.in_place:
        if travel is None:
            travel = root_edits.cycle_travel(clip.rotations, clip.root_positions, clip.fps)
        rotations_out, root_out = root_edits.remove_travel(
            clip.rotations, clip.root_positions, options.travel_axes(), options.keep_facing
        )
        clip = clip.with_motion(rotations_out, root_out)
        report["in_place"] = {"axes": list(options.travel_axes()),
                              "keep_facing": options.keep_facing}  # fmt: skip
    if options.root_bone:
        if travel is None:
            travel = root_edits.cycle_travel(clip.rotations, clip.root_positions, clip.fps)
        left = travel
        if options.in_place:
            left = root_edits.travel_left(travel, options.travel_axes(), options.keep_facing)
        report["root_bone"] = {"bone": ROOT_BONE, "travel_per_cycle": travel_dict(left)}
    if travel is not None:
        report["travel_per_cycle"] = travel_dict(travel)
    report["frames_out"] = clip.frames
    return Finished(clip, report)
