"""Root-trajectory edits on wire motion (numpy, no bpy).

Motion is (rotations (F, J, 4), root positions (F, 3)) in the wire convention: joint 0 (the
pelvis) carries the world rotation and the world position, so every edit here changes only
those two, and the pose relative to the pelvis is kept exactly. Model axes: Y up (axis 1),
X and Z horizontal, heading 0 = facing +Z.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import rotations as rot

AXES = {"X": 0, "Y": 1, "Z": 2}
#: The root bone's name: Unreal's (its mannequin's top bone); Unity takes any.
ROOT_BONE = "root"


def remove_travel(
    rotations: np.ndarray,
    root_positions: np.ndarray,
    axes: Iterable[str] = ("X", "Z"),
    keep_facing: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """In place: the pelvis stays at the origin along ``axes`` ("X", "Y", "Z"; Y removes the
    height too, leaving the pelvis at y = 0 for a root-relative export); with
    ``keep_facing=False`` the turning about the vertical is removed as well, so the character
    keeps its first frame's heading. Returns new (rotations, root positions)."""
    positions = np.array(root_positions, dtype=np.float64)
    out = np.array(rotations, dtype=np.float64)
    if not keep_facing:
        turn = unwrapped_heading(out[:, 0])
        undo = rot.yaw(turn[0] - turn)
        out[:, 0] = rot.multiply(undo, out[:, 0])
        origin = positions[0] * np.array([1.0, 0.0, 1.0])
        positions = rot.rotate(undo, positions - origin) + origin
    for axis in axes:
        positions[:, AXES[axis.upper()]] = 0.0
    return out, positions


def unwrapped_heading(pelvis_rotations: np.ndarray) -> np.ndarray:
    """(F,) heading of the pelvis in radians, continuous over time (no ±π jumps)."""
    return np.unwrap(rot.heading(pelvis_rotations))


@dataclass(frozen=True, eq=False)
class RootMotion:
    """Travel split off to a root bone on the ground (the game-engine layout)."""

    root_positions: np.ndarray  # (F, 3) root bone world position: pelvis x/z, y = 0
    root_rotations: np.ndarray  # (F, 4) root bone world rotation: the pelvis heading only
    pelvis_positions: np.ndarray  # (F, 3) pelvis relative to the root bone (root's frame)
    pelvis_rotations: np.ndarray  # (F, 4) pelvis rotation relative to the root bone


def extract_root_motion(
    rotations: np.ndarray, root_positions: np.ndarray, keep_facing: bool = True
) -> RootMotion:
    """Move the horizontal travel (and, with ``keep_facing``, the heading) to a root bone."""
    pelvis = np.asarray(root_positions, dtype=np.float64)
    pelvis_rot = np.asarray(rotations, dtype=np.float64)[:, 0]
    ground = pelvis * np.array([1.0, 0.0, 1.0])
    if keep_facing:
        root_rot = rot.yaw(unwrapped_heading(pelvis_rot))
    else:
        root_rot = np.broadcast_to(rot.IDENTITY, pelvis_rot.shape).copy()
    inverse = rot.inverse(root_rot)
    return RootMotion(
        root_positions=ground,
        root_rotations=rot.make_continuous(root_rot),
        pelvis_positions=rot.rotate(inverse, pelvis - ground),
        pelvis_rotations=rot.make_continuous(rot.multiply(inverse, pelvis_rot)),
    )


def compose_root_motion(
    root_rotations: np.ndarray,
    root_positions: np.ndarray,
    pelvis_rotations: np.ndarray,
    pelvis_positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`extract_root_motion`: the pelvis' world (rotations (F, 4),
    positions (F, 3)) from the root bone's motion and the pelvis' motion relative to it."""
    world = rot.multiply(root_rotations, pelvis_rotations)
    return rot.make_continuous(world), root_positions + rot.rotate(root_rotations,
                                                                   pelvis_positions)  # fmt: skip


@dataclass(frozen=True)
class CycleTravel:
    """What the root moves over one cycle, for an engine to drive the character with."""

    distance_m: float  # horizontal, start to end
    offset_m: tuple[float, float, float]  # end − start, model axes
    turn_deg: float  # heading change, positive = towards the character's left (+X)
    speed_mps: float  # horizontal distance / cycle duration


def travel_left(travel: CycleTravel, axes: Iterable[str], keep_facing: bool) -> CycleTravel:
    """What is left of ``travel`` on a root bone (on the ground: no height) once in place has
    removed ``axes`` (and the turning, without ``keep_facing``)."""
    offset = [0.0 if name in {a.upper() for a in axes} else value
              for name, value in zip("XYZ", travel.offset_m, strict=True)]  # fmt: skip
    offset[1] = 0.0
    distance = float(np.hypot(offset[0], offset[2]))
    # the same cycle duration; removing axes never adds distance
    speed = travel.speed_mps * distance / travel.distance_m if travel.distance_m else 0.0
    return CycleTravel(
        distance_m=distance,
        offset_m=(offset[0], offset[1], offset[2]),
        turn_deg=travel.turn_deg if keep_facing else 0.0,
        speed_mps=speed,
    )


def cycle_travel(rotations: np.ndarray, root_positions: np.ndarray, fps: float) -> CycleTravel:
    """Net travel of a cycle: the root's displacement and turn from its first to its last frame
    (for a loop whose last frame leads back into the first)."""
    positions = np.asarray(root_positions, dtype=np.float64)
    offset = positions[-1] - positions[0]
    heading = unwrapped_heading(np.asarray(rotations, dtype=np.float64)[:, 0])
    distance = float(np.hypot(offset[0], offset[2]))
    duration = max(positions.shape[0] - 1, 1) / fps
    return CycleTravel(
        distance_m=distance,
        offset_m=(float(offset[0]), float(offset[1]), float(offset[2])),
        turn_deg=float(np.degrees(heading[-1] - heading[0])),
        speed_mps=distance / duration,
    )
