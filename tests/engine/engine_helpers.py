"""Helpers shared by the engine tests (imported as a plain module from tests/engine)."""

from __future__ import annotations

import torch

from daemon.engine.mmdit import HunyuanMotionMMDiT, MMDiTConfig

#: 2 double + 4 single blocks, D = 32, H = 2 (head width 16): every code path, in milliseconds.
SMALL = MMDiTConfig(
    input_dim=201,
    feat_dim=32,
    num_layers=6,
    num_heads=2,
    mlp_ratio=4.0,
    ctxt_input_dim=24,
    vtxt_input_dim=16,
    time_factor=1000.0,
    mask_mode="narrowband",
    train_frames=360,
)


def random_network(config: MMDiTConfig = SMALL, seed: int = 0) -> HunyuanMotionMMDiT:
    """Seeded weights large enough that every block changes its input noticeably."""
    gen = torch.Generator().manual_seed(seed)
    model = HunyuanMotionMMDiT(config).eval().requires_grad_(False)
    for param in model.parameters():
        param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return model
