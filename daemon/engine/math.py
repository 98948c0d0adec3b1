"""Stateless tensor functions of the network and the decoder (spec §2 and §5.3).

Notation: B batch, L tokens, D width, H heads, d = D / H head width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ROPE_THETA = 10000.0


def timestep_embedding(t: Tensor, dim: int, time_factor: float) -> Tensor:
    """§2.2 sinusoidal embedding of flow times t (B,) -> (B, dim) float32, cosine half first."""
    half = dim // 2
    # ω_i = exp(−ln(10000)·i/half), i = 0 … half−1
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = (t.float() * time_factor)[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rope_tables(positions: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
    """§2.4 cos/sin tables (L, d) for integer positions (L,), each frequency repeated twice."""
    # θ_k = 10000^(−2k/d), k = 0 … d/2−1; channels 2k and 2k+1 share θ_k
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device)
    freqs = 1.0 / (ROPE_THETA ** (exponents / head_dim))  # (d/2,)
    angles = positions.float()[:, None] * freqs[None]  # (L, d/2)
    angles = angles.repeat_interleave(2, dim=-1)  # (L, d)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved channel pairs of x (B, H, L, d) by the tables (L, d), in float32."""
    xf = x.float()
    pairs = xf.unflatten(-1, (-1, 2))  # (B, H, L, d/2, 2)
    # y_{2k} = x_{2k}cosφ − x_{2k+1}sinφ ; y_{2k+1} = x_{2k+1}cosφ + x_{2k}sinφ
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)  # (B, H, L, d)
    return (xf * cos + rotated * sin).to(x.dtype)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x ⊙ (1 + scale) + shift, with shift/scale (B, 1, D) broadcast over tokens."""
    return x * (1 + scale) + shift


def split_heads(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Fused projection (B, L, 3D) laid out [q | k | v], head-major -> three (B, H, L, d)."""
    q, k, v = qkv.unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, d)
    return q, k, v


def attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor) -> Tensor:
    """softmax(QKᵀ/√d + A)·V with A = 0 where ``allowed`` else −∞; (B, H, Lq, d) -> (B, Lq, D).

    ``allowed`` is a bool mask broadcastable to (B, 1, Lq, Lk).
    """
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, H, Lq, d)
    return out.transpose(1, 2).flatten(2)  # (B, Lq, H·d)


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """§5.3 (..., 6) stored (R00, R01, R10, R11, R20, R21) -> (..., 3, 3) by Gram–Schmidt."""
    cols = rot6d.unflatten(-1, (3, 2))  # (..., 3, 2): column 1 = [..., 0], column 2 = [..., 1]
    b1 = F.normalize(cols[..., 0], dim=-1)
    b2 = F.normalize(cols[..., 1] - (b1 * cols[..., 1]).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)  # columns


def matrix_to_rot6d(matrix: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, row-interleaved."""
    return matrix[..., :, :2].flatten(-2)


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z) with w ≥ 0.

    Picks the best-conditioned of the four candidate formulas (the pytorch3d method the
    official decoder uses, §5.4 step 1).
    """
    m00, m01, m02 = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    m10, m11, m12 = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    m20, m21, m22 = matrix[..., 2, 0], matrix[..., 2, 1], matrix[..., 2, 2]
    q_abs = (
        torch.stack(
            [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
        )
        .clamp_min(0)
        .sqrt()
    )  # (..., 4): 2|w|, 2|x|, 2|y|, 2|z|
    candidates = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4)
    # the floor keeps the division finite; the chosen (largest) candidate is far above it
    candidates = candidates / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)[..., None, None].expand(*q_abs.shape[:-1], 1, 4)
    quat = candidates.gather(-2, best).squeeze(-2)  # (..., 4)
    return torch.where(quat[..., :1] < 0, -quat, quat)
