"""Model-space motion <-> Blender pose channels, as numpy (no bpy).

For bone j with rest matrix B_j (``bone.matrix_local``, armature space) and model rotation R_j
(joint 0 global, others parent-relative, world-aligned rest frames):

    L_j = B_j⁻¹ · C·R_j·Cᵀ · B_j           (pose-bone rotation_quaternion)
    loc = B_0⁻¹ · (C·p_pelvis − head_0)     (root pose-bone location)

A conjugated rotation keeps its angle and turns its axis, so in quaternions L_j = (w, M·v) with
M = B_j⁻¹·C. ``inv(B)``, not ``Bᵀ``: Blender's rest matrices of bones pointing down are only
orthonormal to ~1e-4, which costs ~2 mm at the feet (blender_notes §1.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion.rotations import make_continuous, slerp
from .rig import C


@dataclass(frozen=True, eq=False)
class PoseChannels:
    """One take in Blender terms: per-frame local quaternions and the root location."""

    quaternions: np.ndarray  # (F, J, 4) float64 (w, x, y, z), sign-continuous
    root_location: np.ndarray  # (F, 3) float64, root bone's local space

    @property
    def frames(self) -> int:
        return int(self.quaternions.shape[0])


def model_to_pose(
    rotations: np.ndarray,
    root_positions: np.ndarray,
    rest_matrices: np.ndarray,
    root_head: np.ndarray,
) -> PoseChannels:
    """(F, J, 4) model quaternions + (F, 3) pelvis positions -> Blender pose channels.

    ``rest_matrices`` (J, 3, 3) are the bones' ``matrix_local`` rotations in joint order and
    ``root_head`` (3,) the root bone's rest head, both armature space.
    """
    rest = rest_matrices.astype(np.float64)
    turn = np.linalg.inv(rest) @ C  # (J, 3, 3)
    quats = rotations.astype(np.float64)
    vectors = np.einsum("jab,fjb->fja", turn, quats[..., 1:])  # (F, J, 3)
    local = np.concatenate([quats[..., :1], vectors], axis=-1)
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    pelvis = root_positions.astype(np.float64) @ C.T - root_head
    location = pelvis @ np.linalg.inv(rest[0]).T
    return PoseChannels(make_continuous(local), location)


def pose_to_model(
    channels: PoseChannels, rest_matrices: np.ndarray, root_head: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`model_to_pose`: (rotations (F, J, 4), pelvis positions (F, 3))."""
    rest = rest_matrices.astype(np.float64)
    back = C.T @ rest  # (J, 3, 3)
    quats = channels.quaternions
    vectors = np.einsum("jab,fjb->fja", back, quats[..., 1:])
    model = np.concatenate([quats[..., :1], vectors], axis=-1)
    model /= np.linalg.norm(model, axis=-1, keepdims=True)
    pelvis = (channels.root_location @ rest[0].T + root_head) @ C
    return make_continuous(model), pelvis


def resample(
    rotations: np.ndarray, positions: np.ndarray, src_fps: float, dst_fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Resample (F, J, 4) quaternions (slerp) and (F, ...) positions (lerp) to ``dst_fps``.

    The clip keeps its duration: frame k of the result is at time k / dst_fps, up to the last
    source frame's time.
    """
    frames = rotations.shape[0]
    # A BVH's Frame Time is written rounded (0.03333333 s): that is the same rate, not a resample.
    if abs(src_fps - dst_fps) <= 1e-5 * dst_fps or frames < 2:
        return rotations, positions
    duration = (frames - 1) / src_fps
    count = int(np.floor(duration * dst_fps + 1e-6)) + 1
    t = np.arange(count) / dst_fps * src_fps  # in source frames
    i0 = np.minimum(np.floor(t).astype(np.int64), frames - 2)
    alpha = t - i0
    pos0, pos1 = positions[i0], positions[i0 + 1]
    shape = (count,) + (1,) * (positions.ndim - 1)
    new_positions = pos0 + (pos1 - pos0) * alpha.reshape(shape)
    lead = alpha.reshape((count,) + (1,) * (rotations.ndim - 2))
    new_rotations = slerp(rotations[i0], rotations[i0 + 1], lead)
    return new_rotations.astype(rotations.dtype), new_positions.astype(positions.dtype)
