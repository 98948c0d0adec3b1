"""Seamless loop by blending (numpy, no bpy).

1. The loop window is chosen automatically: the pair of frames (start, end) whose poses and
   velocities match best, with the pose taken relative to the pelvis' ground position and
   heading (so travel and turning do not count), at least ``min_frames`` apart (and at least
   40 % of the take); the body's speed at ``end`` is added to the cost, so the seam falls
   where the motion is slow.
2. The take is trimmed to start … end − 1; frame ``end`` is where the next cycle begins.
3. The seam is blended: the frames that follow ``end`` in the take, moved back by one cycle
   (turned and shifted so frame ``end`` lands on frame ``start``), are cross-faded into the
   loop's first ``blend`` frames (rotations slerped as quaternions, the pelvis position
   linearly). The loop's first frame is then exactly what came after its last frame in the
   take, so pose and velocity run on across the seam. Travel is carried: the next cycle starts
   where this one ends, turned by the cycle's heading change (``repeat`` plays cycles so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FinishingError
from ..motion import rotations as rot
from ..motion.root import CycleTravel, unwrapped_heading
from .clip import Clip, smoothstep

#: The shortest loop (frames), the shortest take a loop is searched in, and the default blend.
MIN_LOOP_FRAMES = 20
MIN_TAKE_FRAMES = 2 * MIN_LOOP_FRAMES
BLEND_FRAMES = 12
#: A loop spans at least this share of the take, so a long take does not give a 20-frame twitch.
MIN_LOOP_SHARE = 0.4


@dataclass(frozen=True)
class LoopReport:
    start: int  # first frame of the loop in the input (0-based)
    end: int  # the input frame the next cycle starts on (0-based, not in the loop)
    blend: int
    pose_cost: float  # mean squared joint distance (m²) between frames start and end
    travel: CycleTravel

    def as_dict(self) -> dict[str, object]:
        return {
            "start_frame": self.start + 1,
            "end_frame": self.end,  # last frame kept, 1-based
            "frames": self.end - self.start,
            "blend_frames": self.blend,
            "pose_cost_m2": round(self.pose_cost, 6),
            "travel_per_cycle": travel_dict(self.travel),
        }


def travel_dict(travel: CycleTravel) -> dict[str, object]:
    return {
        "distance_m": round(travel.distance_m, 4),
        "offset_m": [round(v, 4) for v in travel.offset_m],
        "turn_deg": round(travel.turn_deg, 2),
        "speed_mps": round(travel.speed_mps, 4),
    }


def local_pose(clip: Clip, positions: np.ndarray | None = None) -> np.ndarray:
    """(F, J, 3) joint positions relative to the pelvis' ground point, in its heading frame."""
    positions = clip.joint_positions() if positions is None else positions
    ground = clip.root_positions * np.array([1.0, 0.0, 1.0])
    undo = rot.yaw(-unwrapped_heading(clip.rotations[:, 0]))
    return rot.rotate(undo[:, None], positions - ground[:, None])


def find_window(clip: Clip, min_frames: int, last_end: int) -> tuple[int, int, float]:
    """(start, end, cost) of the best-matching frame pair at least ``min_frames`` apart, with
    ``end`` at most ``last_end``."""
    pose = local_pose(clip)
    frames = pose.shape[0]
    features = pose.reshape(frames, -1)
    # velocity: the local pose's change plus the ground travel in the heading frame
    heading = unwrapped_heading(clip.rotations[:, 0])
    travel = np.diff(clip.root_positions * np.array([1.0, 0.0, 1.0]), axis=0)
    travel = rot.rotate(rot.yaw(-heading[:-1]), travel)
    velocity = np.concatenate([np.diff(features, axis=0), travel], axis=1)
    velocity = np.concatenate([velocity, velocity[-1:]], axis=0)
    joints = pose.shape[1]
    both = np.concatenate([features, velocity], axis=1)
    seam_speed = np.sum(velocity * velocity, axis=1)

    def costs(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        a, b = both[starts], both[ends]
        distance = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
        # a seam where the body moves slowly is the least visible one: add the speed at ``end``
        cost = (np.maximum(distance, 0.0) + seam_speed[ends][None, :]) / joints
        return np.where(ends[None, :] - starts[:, None] >= min_frames, cost, np.inf)

    # Every second frame first (a quarter of the work), then the best pair's neighbours.
    starts = np.arange(0, last_end - min_frames + 1, 2)
    ends = np.arange(last_end, min_frames - 1, -2)[::-1]
    cost = costs(starts, ends)
    # among near-equal matches prefer the longer loop (more of the take kept)
    tolerance = float(cost.min()) * 1.05 + 1e-12
    candidates = np.argwhere(cost <= tolerance)
    lengths = ends[candidates[:, 1]] - starts[candidates[:, 0]]
    i, j = candidates[int(np.argmax(lengths))]
    near_starts = np.clip(starts[i] + np.arange(-1, 2), 0, last_end - min_frames)
    near_ends = np.clip(ends[j] + np.arange(-1, 2), min_frames, last_end)
    fine = costs(np.unique(near_starts), np.unique(near_ends))
    k, m = np.unravel_index(int(np.argmin(fine)), fine.shape)
    return int(np.unique(near_starts)[k]), int(np.unique(near_ends)[m]), float(fine[k, m])


def make_loop(clip: Clip, blend: int = BLEND_FRAMES) -> tuple[Clip, LoopReport]:
    """Trim ``clip`` to its best loop and blend the seam (see the module doc)."""
    if clip.frames < MIN_TAKE_FRAMES:
        raise FinishingError(
            f"loop needs a take of at least {MIN_TAKE_FRAMES} frames to choose a loop of at "
            f"least {MIN_LOOP_FRAMES} frames from; this take has {clip.frames}",
            field="loop",
        )
    min_frames = max(MIN_LOOP_FRAMES, round(MIN_LOOP_SHARE * clip.frames))
    blend = max(1, min(blend, min_frames // 2, clip.frames - min_frames - 1))
    # the frames after ``end`` are blended into the loop's start: they must exist
    start, end, cost = find_window(clip, min_frames, clip.frames - blend)
    length = end - start
    heading = unwrapped_heading(clip.rotations[:, 0])
    turn = rot.yaw(heading[end] - heading[start])  # the cycle's turn
    flat = np.array([1.0, 0.0, 1.0])
    begin, finish = clip.root_positions[start] * flat, clip.root_positions[end] * flat
    # the frames that follow ``end``, moved back one cycle: they continue the loop's last frame
    after = slice(end, end + blend)
    carried_rot = clip.rotations[after].copy()
    carried_rot[:, 0] = rot.multiply(rot.inverse(turn), carried_rot[:, 0])
    carried_root = rot.rotate(rot.inverse(turn), clip.root_positions[after] - finish) + begin
    rotations = clip.rotations[start:end].copy()
    root = clip.root_positions[start:end].copy()
    weight = smoothstep(np.arange(blend) / blend)  # 0 at the loop's first frame
    rotations[:blend] = rot.slerp(carried_rot, rotations[:blend], weight[:, None])
    root[:blend] = carried_root + (root[:blend] - carried_root) * weight[:, None]
    looped = clip.with_motion(rot.make_continuous(rotations), root)
    offset = finish - begin
    distance = float(np.hypot(offset[0], offset[2]))
    travel = CycleTravel(
        distance_m=distance,
        offset_m=(float(offset[0]), 0.0, float(offset[2])),
        turn_deg=float(np.degrees(heading[end] - heading[start])),
        speed_mps=distance * clip.fps / length,
    )
    return looped, LoopReport(start, end, blend, cost, travel)


def repeat(clip: Clip, travel: CycleTravel, times: int) -> Clip:
    """``times`` cycles of a loop in a row, each starting where the previous one ends: the
    cycle's rigid turn-and-travel (about the first frame's ground point) applied again."""
    turn = rot.yaw(np.radians(travel.turn_deg))
    offset = np.array(travel.offset_m) * np.array([1.0, 0.0, 1.0])
    pivot = clip.root_positions[0] * np.array([1.0, 0.0, 1.0])
    rotations, root = [clip.rotations], [clip.root_positions]
    for _ in range(times - 1):
        next_rot = rotations[-1].copy()
        next_rot[:, 0] = rot.multiply(turn, next_rot[:, 0])
        rotations.append(next_rot)
        root.append(rot.rotate(turn, root[-1] - pivot) + pivot + offset)
    return clip.with_motion(rot.make_continuous(np.concatenate(rotations)), np.concatenate(root))
