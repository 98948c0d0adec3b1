"""Synthetic motion on the 22-joint body skeleton, for tests that need no daemon.

The body is the add-on's own model skeleton (``core.motion.skeletons``): the published SMPL-H
joint table, kept in one place.
"""

from __future__ import annotations

import numpy as np

from blender_addon.core.motion.skeletons import MODEL_JOINTS, MODEL_PARENTS, MODEL_REST
from shared_protocol.motion import Skeleton, forward_kinematics

# One table of the body, the add-on's: tests check the add-on against what it ships.
NAMES = MODEL_JOINTS
PARENTS = list(MODEL_PARENTS)
REST = list(MODEL_REST)


def skeleton() -> Skeleton:
    return Skeleton(
        joint_names=NAMES,
        parents=np.array(PARENTS, dtype=np.int32),
        rest_positions=np.array(REST, dtype=np.float32),
    )


def takes(
    candidates: int = 2, frames: int = 60, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rotations (C,F,J,4), pelvis (C,F,3), joint positions (C,F,J,3)), smooth and large."""
    rng = np.random.default_rng(seed)
    joints = len(NAMES)
    t = np.arange(frames, dtype=np.float64)[None, :, None, None] / 30.0
    freq = rng.uniform(0.3, 1.5, size=(candidates, 1, joints, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(candidates, 1, joints, 3))
    amp = rng.uniform(0.2, 0.9, size=(candidates, 1, joints, 3))
    axis_angle = amp * np.sin(2 * np.pi * freq * t + phase)  # (C, F, J, 3)
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.maximum(angle, 1e-9)
    rotations = np.concatenate([np.cos(angle / 2), axis * np.sin(angle / 2)], axis=-1)
    walk = np.stack([0.3 * np.sin(t[..., 0, 0]), 1.0 + 0.05 * np.cos(3 * t[..., 0, 0]),
                     1.2 * t[..., 0, 0]], axis=-1)  # fmt: skip
    pelvis = np.broadcast_to(walk, (candidates, frames, 3)).astype(np.float32)
    rotations = rotations.astype(np.float32)
    positions = forward_kinematics(skeleton(), rotations, pelvis)
    return rotations, pelvis.copy(), positions
