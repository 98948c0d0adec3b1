"""Decoding the 201-dim latent into the DESIGN.md motion conventions (spec §5).

denormalise -> rot6d (column convention) -> quaternions -> Gaussian quaternion smoothing ->
Savitzky–Golay on the translation -> forward kinematics -> grounding over the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from torch import Tensor

from shared_protocol import forward_kinematics

from .features import TRANSLATION, denormalize, feature_rotations
from .grounding import Grounding
from .skeleton import BODY_SKELETON, REST_POSITIONS

SMOOTH_SIGMA = 1.0
SAVGOL_WINDOW = 11
SAVGOL_ORDER = 5


@dataclass(frozen=True, eq=False)
class DecodedMotion:
    rotations: np.ndarray  # (C, F, 22, 4) float32 (w, x, y, z), sign-continuous
    root_positions: np.ndarray  # (C, F, 3) float32 pelvis world position, grounded
    joint_positions: np.ndarray  # (C, F, 22, 3) float32 world joints, grounded


def gaussian_kernel(sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Normalised taps exp(−x²/2σ²), x = −r … r with r = int(4σ + 0.5)."""
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / taps.sum()


def sign_continuous(quat: np.ndarray) -> np.ndarray:
    """Flip q_t when q_t · q_{t−1} < 0, cumulatively along axis 0; (F, ..., 4)."""
    out = quat.copy()
    for f in range(1, out.shape[0]):
        flip = (out[f] * out[f - 1]).sum(-1, keepdims=True) < 0
        out[f] = np.where(flip, -out[f], out[f])
    return out


def continuous(quat: np.ndarray) -> np.ndarray:
    """Sign-continuous quaternions (F, J, 4) whose first frame has w ≥ 0 (the wire's form)."""
    q = sign_continuous(quat)
    q *= np.where(q[:1, :, :1] < 0, -1.0, 1.0)  # first frame w ≥ 0, continuity kept
    return q


def smooth_quaternions(quat: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """§5.4 Gaussian-weighted quaternion average per frame: (F, J, 4) -> (F, J, 4) float64.

    Window f−r … f+r with edge replication, each quaternion flipped towards the centre one;
    the result is the top eigenvector of Σ w_k q_k q_kᵀ.
    """
    quat = sign_continuous(quat.astype(np.float64))
    taps = gaussian_kernel(sigma)
    radius = len(taps) // 2
    frames = quat.shape[0]
    index = np.clip(np.arange(frames)[:, None] + np.arange(-radius, radius + 1), 0, frames - 1)
    window = quat[index]  # (F, K, J, 4)
    centre = quat[:, None]
    window = np.where((window * centre).sum(-1, keepdims=True) < 0, -window, window)
    accum = np.einsum("k,fkji,fkjl->fjil", taps, window, window)  # (F, J, 4, 4)
    _, vectors = np.linalg.eigh(accum)
    return vectors[..., -1]  # eigenvalues ascend: the last column is the largest


@cache
def savgol_projection(window: int = SAVGOL_WINDOW, order: int = SAVGOL_ORDER) -> np.ndarray:
    """Hat matrix (window, window) of a least-squares polynomial fit over one window.

    Row ``window // 2`` is the interior Savitzky–Golay kernel; the first/last rows give the
    edge samples of scipy's mode="interp" (a fit to the first/last ``window`` samples).
    """
    x = np.arange(window) - window // 2
    vander = np.vander(x, order + 1, increasing=True).astype(np.float64)
    return vander @ np.linalg.pinv(vander)


def savgol_filter(values: np.ndarray) -> np.ndarray:
    """§5.4 Savitzky–Golay (window 11, order 5, interp edges) along axis 0 of (F, ...), F ≥ 11."""
    proj = savgol_projection()
    window, half = proj.shape[0], proj.shape[0] // 2
    frames = values.shape[0]
    if frames < window:
        raise ValueError(f"Savitzky–Golay needs at least {window} frames, got {frames}")
    values = values.astype(np.float64)
    index = np.arange(frames - window + 1)[:, None] + np.arange(window)  # sliding windows
    out = np.empty_like(values)
    out[half : frames - half] = np.einsum("w,fw...->f...", proj[half], values[index])
    out[:half] = np.einsum("ow,w...->o...", proj[:half], values[:window])
    out[frames - half :] = np.einsum("ow,w...->o...", proj[half + 1 :], values[-window:])
    return out


def decode(
    latent: Tensor, mean: Tensor, std: Tensor, grounding: Grounding, ground: bool = True
) -> DecodedMotion:
    """Latent (C, F, 201) of one job -> motion of its C candidates, grounded unless ``ground``
    is False (clips held to given poses keep the heights of those poses)."""
    x = denormalize(latent.detach().cpu(), mean.detach().cpu(), std.detach().cpu())
    transl = x[..., TRANSLATION].numpy()  # (C, F, 3) model translation
    quat = feature_rotations(x).numpy()  # (C, F, 22, 4)
    rotations, roots, joints = [], [], []
    for c in range(x.shape[0]):
        q = continuous(smooth_quaternions(quat[c]))
        root = savgol_filter(transl[c]) + REST_POSITIONS[0]  # pelvis = trans + rest pelvis
        world = forward_kinematics(BODY_SKELETON, q, root).astype(np.float64)
        floor = grounding.floor_height(q, root, world) if ground else 0.0
        root[:, 1] -= floor
        world[..., 1] -= floor
        rotations.append(q)
        roots.append(root)
        joints.append(world)
    return DecodedMotion(
        np.stack(rotations).astype(np.float32),
        np.stack(roots).astype(np.float32),
        np.stack(joints).astype(np.float32),
    )
