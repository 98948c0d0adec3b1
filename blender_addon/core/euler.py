"""Quaternions to the rotation a pose bone keys in its own rotation mode (numpy, no bpy).

The motion core works in quaternions; an artist's rig may key Euler angles (Rigify's shoulders
use YXZ, many Auto-Rig Pro controls XYZ) or axis-angle. Blender's Euler order "XYZ" applies X
first, so its matrix is R = Rz·Ry·Rx. Angles are unwrapped over time so curves never jump 360°.
"""

from __future__ import annotations

import numpy as np

from .motion import rotations as rot

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def to_euler(quaternions: np.ndarray, order: str) -> np.ndarray:
    """(F, ..., 4) quaternions -> (F, ..., 3) Euler angles (x, y, z) for Blender's ``order``."""
    if order not in EULER_ORDERS:
        raise ValueError(f"unknown Euler order {order!r}")
    m = rot.to_matrix(rot.normalize(quaternions))
    # R = R_a · R_b · R_c with c applied first (the first letter of Blender's order).
    c, b, a = ("XYZ".index(letter) for letter in order)
    even = (a, b, c) in ((0, 1, 2), (1, 2, 0), (2, 0, 1))
    s = 1.0 if even else -1.0
    beta = np.arcsin(np.clip(s * m[..., a, c], -1.0, 1.0))
    gamma = np.arctan2(-s * m[..., a, b], m[..., a, a])
    alpha = np.arctan2(-s * m[..., b, c], m[..., c, c])
    out = np.empty((*m.shape[:-2], 3))
    out[..., a], out[..., b], out[..., c] = alpha, beta, gamma
    return np.unwrap(out, axis=0) if out.shape[0] > 1 else out


def to_axis_angle(quaternions: np.ndarray) -> np.ndarray:
    """(F, ..., 4) quaternions -> (F, ..., 4) Blender axis-angle (angle, x, y, z)."""
    axis, angle = rot.to_axis_angle(quaternions)
    return np.concatenate([angle[..., None], axis], axis=-1)
