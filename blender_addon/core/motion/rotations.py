"""Quaternion math for the motion core (numpy, no bpy).

Every quaternion here is (w, x, y, z), unit length, in the last axis of an array; functions
broadcast over the leading axes and return float64. A quaternion ``q`` acts on a vector as the
rotation matrix ``to_matrix(q)``; ``multiply(a, b)`` is the rotation "b, then a" (matrix a·b).
"""

from __future__ import annotations

import numpy as np

from ..protocol import motion

#: (..., 4) -> (..., 3, 3); the shared protocol's conversion, so there is one.
to_matrix = motion.quaternion_to_matrix
#: Hamilton product a·b (rotate by b, then by a); the shared protocol's, which the daemon uses.
multiply = motion.quaternion_multiply

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
_EPS = 1e-12


def normalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)


def inverse(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (its conjugate)."""
    out = np.array(q, dtype=np.float64)
    out[..., 1:] *= -1.0
    return out


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) by quaternions (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def from_matrix(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) quaternions with w >= 0.

    Uses the best-conditioned of the four textbook formulas per matrix.
    """
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    squares = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    best = np.argmax(squares, axis=-1)
    root = np.sqrt(np.maximum(np.take_along_axis(squares, best[..., None], -1)[..., 0], _EPS))
    s = 0.5 / root
    d21 = m[..., 2, 1] - m[..., 1, 2]
    d02 = m[..., 0, 2] - m[..., 2, 0]
    d10 = m[..., 1, 0] - m[..., 0, 1]
    s01 = m[..., 0, 1] + m[..., 1, 0]
    s02 = m[..., 0, 2] + m[..., 2, 0]
    s12 = m[..., 1, 2] + m[..., 2, 1]
    candidates = np.stack(
        [
            np.stack([0.5 * root, d21 * s, d02 * s, d10 * s], -1),
            np.stack([d21 * s, 0.5 * root, s01 * s, s02 * s], -1),
            np.stack([d02 * s, s01 * s, 0.5 * root, s12 * s], -1),
            np.stack([d10 * s, s02 * s, s12 * s, 0.5 * root], -1),
        ],
        axis=-2,
    )
    q = np.take_along_axis(candidates, best[..., None, None], -2)[..., 0, :]
    return np.where(q[..., :1] < 0, -q, q)


def from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation by ``angle`` radians (...) about unit ``axis`` (..., 3)."""
    axis = np.asarray(axis, dtype=np.float64)
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def to_axis_angle(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(axis (..., 3), angle (...) in [0, π]) of unit quaternions."""
    q = normalize(q)
    q = np.where(q[..., :1] < 0, -q, q)
    sin = np.linalg.norm(q[..., 1:], axis=-1)
    angle = 2.0 * np.arctan2(sin, q[..., 0])
    axis = q[..., 1:] / np.maximum(sin, _EPS)[..., None]
    return axis, angle


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians (...) of the rotation taking ``a`` to ``b`` (sign-blind)."""
    dot = np.abs(np.sum(normalize(a) * normalize(b), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def direction_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians (...) between directions ``a`` and ``b`` (..., 3), any lengths."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.arccos(np.clip(np.sum(a * b, axis=-1) / np.maximum(norms, 1e-12), -1.0, 1.0))


def from_euler(angles: np.ndarray, order: str) -> np.ndarray:
    """Euler angles (..., 3) in radians, one per letter of ``order`` (e.g. "ZYX"), composed
    as the matrix product in that order (R = R_Z·R_Y·R_X for "ZYX"): the BVH convention."""
    angles = np.asarray(angles, dtype=np.float64)
    out = np.broadcast_to(IDENTITY, (*angles.shape[:-1], 4)).copy()
    for k, letter in enumerate(order.upper()):
        axis = np.zeros(3)
        axis["XYZ".index(letter)] = 1.0
        out = multiply(out, from_axis_angle(axis, angles[..., k]))
    return out


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation from q0 (t = 0) to q1 (t = 1) along the shorter arc.

    ``t`` broadcasts against the quaternions' leading axes (shape (...) or (..., 1)).
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim == q0.ndim:
        t = t[..., 0]
    t = t[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    return normalize(w0 * q0 + w1 * q1)


def make_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs so each (F, ..., 4) quaternion is on the same side as the previous frame's."""
    out = np.array(quaternions, copy=True)
    if out.shape[0] < 2:
        return out
    dots = np.sum(out[1:] * out[:-1], axis=-1)
    # A flip at frame f flips every later frame's reference too: cumulative parity.
    parity = np.cumsum(dots < 0, axis=0) % 2
    out[1:] *= np.where(parity[..., None] == 1, -1.0, 1.0).astype(out.dtype)
    return out


def between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The minimal-arc rotation taking direction ``u`` (..., 3) onto direction ``v``.

    Opposite directions turn by 180° about an axis perpendicular to ``u``.
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), _EPS)
    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)
    dot = np.sum(u * v, axis=-1, keepdims=True)
    axis = np.cross(u, v)
    q = np.concatenate([1.0 + dot, axis], axis=-1)
    opposite = (1.0 + dot[..., 0]) < 1e-9
    if np.any(opposite):
        helper = np.where(np.abs(u[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        perp = np.cross(u, helper)
        perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), _EPS)
        flipped = np.concatenate([np.zeros_like(dot), perp], axis=-1)
        q = np.where(opposite[..., None], flipped, q)
    return normalize(q)


def swing_twist(q: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``q`` = swing·twist, twist about unit ``axis`` (..., 3), swing perpendicular to it.

    ``axis`` is in the frame ``q`` acts on (the twist turns about it first).
    """
    q = normalize(q)
    axis = np.asarray(axis, dtype=np.float64)
    projection = np.sum(q[..., 1:] * axis, axis=-1, keepdims=True) * axis
    twist = np.concatenate([q[..., :1], projection], axis=-1)
    norm = np.linalg.norm(twist, axis=-1, keepdims=True)
    twist = np.where(norm < 1e-9, IDENTITY, twist / np.maximum(norm, _EPS))
    swing = multiply(q, inverse(twist))
    return swing, twist


def heading(q: np.ndarray, up: int = 1, forward: int = 2) -> np.ndarray:
    """Heading angle (radians) about axis ``up`` of the rotated ``forward`` axis.

    Defaults are the model's axes: Y up, +Z forward; 0 means facing +Z, positive turns +Z
    towards +X.
    """
    axis = np.zeros(3)
    axis[forward] = 1.0
    f = rotate(q, axis)
    side = 3 - up - forward  # the remaining axis, +X for the model
    return np.arctan2(f[..., side], f[..., forward]) * _handedness(up, forward)


def yaw(angle: np.ndarray | float, up: int = 1, forward: int = 2) -> np.ndarray:
    """The rotation about axis ``up`` by ``angle`` (...) in :func:`heading`'s sense."""
    axis = np.zeros(3)
    axis[up] = 1.0
    return from_axis_angle(axis, np.asarray(angle, dtype=np.float64) * _handedness(up, forward))


def yaw_only(q: np.ndarray, up: int = 1, forward: int = 2) -> np.ndarray:
    """The turn about the vertical that ``q`` makes (its heading, no tilt)."""
    return yaw(heading(q, up, forward), up, forward)


def _handedness(up: int, forward: int) -> float:
    # A right-handed turn about ``up`` takes ``forward`` towards the remaining axis or away.
    side = 3 - up - forward
    return 1.0 if (up, forward, side) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
