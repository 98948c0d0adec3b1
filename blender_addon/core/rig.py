"""Armature geometry from the skeleton on the wire, in Blender space (no bpy).

Axis change (DESIGN.md): (x, y, z)_model -> (x, -z, y)_blender, i.e. ``v_b = C @ v_m``. Model
space faces +Z, so Blender's character faces -Y, Blender's own front-view convention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .protocol import motion

#: Model (Y up, +Z forward) to Blender (Z up, -Y forward): (x, y, z) -> (x, -z, y).
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
FORWARD = np.array([0.0, -1.0, 0.0])  # the character's front, Blender space
UP = np.array([0.0, 0.0, 1.0])
#: Shortest bone, so Blender never drops a zero-length bone (metres).
MIN_BONE_LENGTH = 0.02


@dataclass(frozen=True, eq=False)
class RigLayout:
    """Everything ``build.py`` needs to create the bones, in joint order."""

    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int, -1 for the root
    heads: np.ndarray  # (J, 3) float64, Blender space, metres
    tails: np.ndarray  # (J, 3)
    #: Direction the bone's local Z axis should face (``EditBone.align_roll``).
    roll_targets: np.ndarray  # (J, 3)


def rig_layout(skeleton: motion.Skeleton) -> RigLayout:
    """Bones point at their continuing child; leaves extend their parent's direction."""
    heads = skeleton.rest_positions.astype(np.float64) @ C.T
    parents = skeleton.parents.astype(np.int64)
    tails = np.empty_like(heads)
    for joint in range(skeleton.joint_count):
        tails[joint] = heads[joint] + _bone_vector(skeleton, heads, joint)
    return RigLayout(
        names=skeleton.joint_names,
        parents=parents,
        heads=heads,
        tails=tails,
        roll_targets=np.stack([_roll_target(t - h) for h, t in zip(heads, tails, strict=True)]),
    )


def _incoming(heads: np.ndarray, parents: np.ndarray, joint: int) -> np.ndarray:
    parent = int(parents[joint])
    if parent < 0:
        return UP
    vector = heads[joint] - heads[parent]
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-9 else UP


def _bone_vector(skeleton: motion.Skeleton, heads: np.ndarray, joint: int) -> np.ndarray:
    incoming = _incoming(heads, skeleton.parents, joint)
    children = skeleton.children(joint)
    if children:
        # Several children (pelvis, upper spine): follow the one that continues the chain.
        offsets = [heads[c] - heads[joint] for c in children]
        scores = [float(o @ incoming) / max(float(np.linalg.norm(o)), 1e-9) for o in offsets]
        vector = offsets[int(np.argmax(scores))]
    else:
        parent = int(skeleton.parents[joint])
        parent_length = float(np.linalg.norm(heads[joint] - heads[parent])) if parent >= 0 else 0.1
        vector = incoming * 0.5 * parent_length
    length = np.linalg.norm(vector)
    if length < MIN_BONE_LENGTH:
        vector = incoming * MIN_BONE_LENGTH
    return vector


def _roll_target(direction: np.ndarray) -> np.ndarray:
    """Bone Z faces forward on upright bones (spine, legs), up on level ones (arms, feet)."""
    direction = direction / np.linalg.norm(direction)
    axis = FORWARD if abs(float(direction @ UP)) >= 0.5 else UP
    target = axis - (axis @ direction) * direction
    return target / np.linalg.norm(target)


def skeleton_to_json(skeleton: motion.Skeleton) -> str:
    """Exact text form kept on the armature, so exports can rebuild the model-space skeleton."""
    return json.dumps(
        {
            "joint_names": list(skeleton.joint_names),
            "parents": skeleton.parents.tolist(),
            "rest_positions": skeleton.rest_positions.tolist(),
        }
    )


def skeleton_from_json(text: str) -> motion.Skeleton:
    data = json.loads(text)
    return motion.Skeleton(
        joint_names=tuple(data["joint_names"]),
        parents=np.asarray(data["parents"], dtype=np.int32),
        rest_positions=np.asarray(data["rest_positions"], dtype=np.float32),
    )


def same_skeleton(a: motion.Skeleton, b: motion.Skeleton) -> bool:
    return (
        a.joint_names == b.joint_names
        and np.array_equal(a.parents, b.parents)
        and np.allclose(a.rest_positions, b.rest_positions, atol=1e-6)
    )
