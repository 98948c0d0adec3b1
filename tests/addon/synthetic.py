"""Synthetic motion on the 22-joint body skeleton, for tests that need no daemon.

Rest positions are the published SMPL-H body joint table (hymotion_spec.md Appendix B).
"""

from __future__ import annotations

import numpy as np

from shared_protocol.motion import Skeleton, forward_kinematics

NAMES = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
REST = [
    (-0.001795, -0.190827, 0.028219), (0.080577, -0.280765, 0.025117),
    (-0.080577, -0.280765, 0.025117), (0.0, -0.096641, 0.031726),
    (0.099836, -0.658082, 0.014663), (-0.097853, -0.658178, 0.014663),
    (0.0, 0.025981, 0.029185), (0.101074, -1.05622, -0.037459),
    (-0.096997, -1.056317, -0.037459), (0.0, 0.106241, 0.005012),
    (0.113632, -1.127859, 0.105247), (-0.109179, -1.128021, 0.105247),
    (0.0, 0.302071, -0.014954), (0.054692, 0.225074, -0.020233),
    (-0.054692, 0.225074, -0.020233), (0.0, 0.397715, -0.016454),
    (0.165353, 0.237455, -0.01686), (-0.165353, 0.237455, -0.01686),
    (0.433444, 0.249386, -0.029562), (-0.433444, 0.249386, -0.029562),
    (0.702487, 0.25342, -0.042731), (-0.702487, 0.25342, -0.042731),
]  # fmt: skip


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
