"""Poses <-> the model's 201-dim features (spec §5.2), and the canonical frame they live in.

``pose_features`` is the exact inverse of the decoder's first stage (``feature_poses``): the
de-normalised 201 numbers of a frame are the SMPL-style root translation (pelvis − rest pelvis),
the pelvis's global rotation and the 21 parent-relative rotations as rot6d (the first two
columns of R, row-interleaved, §5.3), and the 22 joint positions relative to the pelvis.

The joint-position dims are ignored by the decoder and their frame is not documented (§10.3);
we encode them world-aligned (rotated by the pelvis heading, not canonicalised per frame). The
official stats support that reading: the hips' z offset has a 4.6 cm spread (std of dims 140
and 143) that a per-frame heading-canonical frame would not leave for a hip 8 cm from the
pelvis, and the posed joints exclude the translation, as the maintainers say (upstream #33).

Canonical frame. Training clips start near the origin (mean translation x ≈ 0, z ≈ 0.11 m)
facing mostly +Z (mean cos yaw 0.82), with feet on y = 0. Constraints given where the character
stands in the scene are moved there by a ``Placement``: a turn about +Y and a shift on the
ground plane that put an anchor pose's pelvis at x = z = 0 facing +Z. Heights are never moved;
the model's y is the scene's (feet on y = 0). Generated motion goes back by the inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from shared_protocol import forward_kinematics, quaternion_multiply, quaternion_to_matrix

from .math import matrix_to_quaternion, matrix_to_rot6d, rot6d_to_matrix
from .skeleton import BODY_JOINTS, BODY_SKELETON, REST_POSITIONS

FEATURE_DIM = 201
TRANSLATION = slice(0, 3)
ROTATIONS = slice(3, 3 + 6 * BODY_JOINTS)  # 3 … 134: root rot6d, then 21 local ones
POSITIONS = slice(3 + 6 * BODY_JOINTS, FEATURE_DIM)  # 135 … 200: joints − pelvis
STD_FLOOR = 1e-3  # §5.1: dims with a smaller std (the zero pelvis position) are not scaled
REST_PELVIS = REST_POSITIONS[0].astype(np.float64)


def scaled_std(std: Tensor) -> Tensor:
    """§5.1 std' = 0 where std < 1e-3."""
    return torch.where(std < STD_FLOOR, torch.zeros_like(std), std)


def denormalize(latent: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """§5.1 x = latent · std' + mean (float32)."""
    return latent.float() * scaled_std(std).float() + mean.float()


def normalize(features: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """The inverse of ``denormalize``: (x − mean) / std', and 0 where std' = 0 (those dims
    decode to their mean whatever the latent holds)."""
    scale = scaled_std(std).to(features.dtype)
    centred = features - mean.to(features.dtype)
    return torch.where(scale > 0, centred / torch.where(scale > 0, scale, 1.0), 0.0)


def pose_features(rotations: np.ndarray, root_positions: np.ndarray) -> Tensor:
    """De-normalised features (..., 201) float64 of poses: rotations (..., 22, 4) (w, x, y, z),
    joint 0 global, and pelvis world positions (..., 3), both in the canonical frame."""
    rotations = np.asarray(rotations, dtype=np.float64)
    root = np.asarray(root_positions, dtype=np.float64)
    rot6d = matrix_to_rot6d(torch.from_numpy(quaternion_to_matrix(rotations)))  # (..., 22, 6)
    # joints of the pose pivoting about the rest pelvis (the posed joints without translation)
    pivot = np.broadcast_to(REST_PELVIS, root.shape)
    joints = forward_kinematics(BODY_SKELETON, rotations, pivot).astype(np.float64)
    relative = torch.from_numpy(joints - joints[..., :1, :])  # (..., 22, 3), pelvis = 0
    return torch.cat(
        [torch.from_numpy(root - REST_PELVIS), rot6d.flatten(-2), relative.flatten(-2)], dim=-1
    )


def feature_rotations(features: Tensor) -> Tensor:
    """Quaternions (..., 22, 4) (w ≥ 0) of de-normalised features (..., 201), Gram–Schmidt
    first (§5.3): the decoder's reading, before any smoothing."""
    rot6d = features[..., ROTATIONS].unflatten(-1, (BODY_JOINTS, 6))
    return matrix_to_quaternion(rot6d_to_matrix(rot6d))


def feature_poses(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(rotations (..., 22, 4), pelvis positions (..., 3)) float64 of de-normalised features,
    unsmoothed and ungrounded: the exact inverse of ``pose_features``."""
    quat = feature_rotations(features.double()).numpy()
    root = features[..., TRANSLATION].double().numpy() + REST_PELVIS
    return quat, root


# --- the canonical frame -----------------------------------------------------------------------


def heading(rotations: np.ndarray) -> np.ndarray:
    """Yaw (...,) in radians of poses (..., 22, 4): the angle about +Y from +Z to the pelvis's
    forward axis projected on the ground."""
    forward = quaternion_to_matrix(np.asarray(rotations, dtype=np.float64)[..., 0, :])[..., :, 2]
    return np.arctan2(forward[..., 0], forward[..., 2])


def yaw_quaternion(yaw: np.ndarray) -> np.ndarray:
    """(..., 4) rotations about +Y by ``yaw`` radians."""
    yaw = np.asarray(yaw, dtype=np.float64)
    zero = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zero, np.sin(yaw / 2), zero], axis=-1)


@dataclass(frozen=True)
class Placement:
    """Where the canonical frame sits in the scene, per candidate: the scene position of the
    canonical origin on the ground plane and the scene yaw of the canonical +Z."""

    yaw: np.ndarray  # (C,) radians
    offset: np.ndarray  # (C, 2) scene x, z

    @classmethod
    def identity(cls, candidates: int) -> Placement:
        return cls(np.zeros(candidates), np.zeros((candidates, 2)))

    @classmethod
    def at(cls, pelvis: np.ndarray, yaw: np.ndarray) -> Placement:
        """The frame whose origin is under ``pelvis`` (C, 3) and whose +Z has ``yaw`` (C,)."""
        pelvis = np.asarray(pelvis, dtype=np.float64)
        return cls(np.asarray(yaw, dtype=np.float64), pelvis[..., [0, 2]].copy())

    def _turn(self, yaw: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Points (C, ..., 3) turned about +Y by yaw (C,)."""
        shape = (-1,) + (1,) * (points.ndim - 2)
        c, s = np.cos(yaw).reshape(shape), np.sin(yaw).reshape(shape)
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        return np.stack([c * x + s * z, y, -s * x + c * z], axis=-1)

    def _shift(self, points: np.ndarray, sign: float) -> np.ndarray:
        shape = (-1,) + (1,) * (points.ndim - 2)
        out = points.copy()
        out[..., 0] += sign * self.offset[:, 0].reshape(shape)
        out[..., 2] += sign * self.offset[:, 1].reshape(shape)
        return out

    def to_canonical(
        self, rotations: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scene rotations (C, K, 22, 4) and points (C, K, ..., 3) -> canonical ones."""
        return self._turn_root(rotations, -self.yaw), self.points_to_canonical(points)

    def points_to_canonical(self, points: np.ndarray) -> np.ndarray:
        """Scene points (C, K, ..., 3) -> canonical ones."""
        return self._turn(-self.yaw, self._shift(np.asarray(points, np.float64), -1.0))

    def to_scene(self, rotations: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical rotations (C, F, 22, 4) and points (C, F, ..., 3) -> scene ones."""
        moved = self._shift(self._turn(self.yaw, np.asarray(points, np.float64)), 1.0)
        return self._turn_root(rotations, self.yaw), moved

    def yaw_to_canonical(self, yaw: np.ndarray) -> np.ndarray:
        """Scene headings (C, K) -> canonical ones, wrapped to (−π, π]."""
        return _wrap(np.asarray(yaw, np.float64) - self.yaw[:, None])

    @staticmethod
    def _turn_root(rotations: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        out = np.array(rotations, dtype=np.float64)
        turn = yaw_quaternion(yaw).reshape(-1, *(1,) * (out.ndim - 3), 4)
        out[..., 0, :] = quaternion_multiply(turn, out[..., 0, :])
        return out


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.pi - np.mod(np.pi - angle, 2 * np.pi)
