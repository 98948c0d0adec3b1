"""The HunyuanMotionMMDiT network and the pipeline's learned tensors (spec §2, §1.2, §3.3)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import torch
from torch import Tensor, nn

from .layers import (
    KV,
    FinalLayer,
    MLPEncoder,
    MMDoubleStreamBlock,
    MMSingleStreamBlock,
    Rope,
    SingleTokenRefiner,
    TimestepEncoder,
)
from .math import rope_tables

MASK_MODES = ("narrowband", "none", "causal")


@dataclass(frozen=True)
class MMDiTConfig:
    """Constructor arguments of the network (config.yml ``network_module_args``)."""

    input_dim: int
    feat_dim: int  # D
    num_layers: int  # N_d = num_layers / 3 double blocks, the rest single blocks
    num_heads: int  # H
    mlp_ratio: float
    ctxt_input_dim: int  # Qwen3 hidden size (4096)
    vtxt_input_dim: int  # CLIP text width (768)
    time_factor: float
    mask_mode: str
    #: Motion token slots of the training window: text RoPE positions start here (§2.4).
    train_frames: int
    narrowband_length: float = 2.0  # seconds; the window is round(2.0 · 30) = 60 frames

    def __post_init__(self) -> None:
        if self.feat_dim % self.num_heads:
            raise ValueError(
                f"feat_dim {self.feat_dim} is not divisible by num_heads {self.num_heads}"
            )
        if (self.feat_dim // self.num_heads) % 2:
            raise ValueError(f"head width {self.feat_dim // self.num_heads} must be even (RoPE)")
        if self.num_layers % 3 or self.num_layers < 3:
            raise ValueError(f"num_layers {self.num_layers} must be a positive multiple of 3")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode {self.mask_mode!r} is not one of {MASK_MODES}")

    @property
    def head_dim(self) -> int:
        return self.feat_dim // self.num_heads

    @property
    def double_blocks(self) -> int:
        return self.num_layers // 3

    @property
    def single_blocks(self) -> int:
        return self.num_layers - self.num_layers // 3

    @property
    def band(self) -> int | None:
        # hard-coded 30 upstream, independent of the output fps
        return round(self.narrowband_length * 30) if self.mask_mode == "narrowband" else None


_LITE = MMDiTConfig(
    input_dim=201,
    feat_dim=1024,
    num_layers=18,
    num_heads=16,
    mlp_ratio=4.0,
    ctxt_input_dim=4096,
    vtxt_input_dim=768,
    time_factor=1000.0,
    mask_mode="narrowband",
    train_frames=360,
)
#: The two official configs (spec §1.3): they differ only in width, depth and heads.
CONFIGS: dict[str, MMDiTConfig] = {
    "standard": replace(_LITE, feat_dim=1280, num_layers=27, num_heads=20),
    "lite": _LITE,
}


@dataclass(frozen=True)
class TextStream:
    """The text side of one velocity evaluation, computed once per (prompt branch, t)."""

    adapter: Tensor  # (G, 1, D): timestep + pooled-CLIP conditioning, drives every modulation
    double_kv: list[KV]  # per double block, (G, H, T_t, d)
    single_kv: list[KV]  # per single block
    valid: Tensor  # (G, T_t) bool


class HunyuanMotionMMDiT(nn.Module):
    """Predicts the flow velocity of the 201-dim motion latent (spec §2.9)."""

    def __init__(self, cfg: MMDiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim, heads = cfg.feat_dim, cfg.num_heads
        self.input_encoder = nn.Linear(cfg.input_dim, dim)
        self.ctxt_encoder = nn.Linear(cfg.ctxt_input_dim, dim)
        self.vtxt_encoder = MLPEncoder(cfg.vtxt_input_dim, dim)
        self.timestep_encoder = TimestepEncoder(dim, cfg.time_factor)
        self.text_refiner = SingleTokenRefiner(dim, heads, cfg.mlp_ratio)
        self.double_blocks = nn.ModuleList(
            MMDoubleStreamBlock(dim, heads, cfg.mlp_ratio) for _ in range(cfg.double_blocks)
        )
        self.single_blocks = nn.ModuleList(
            MMSingleStreamBlock(dim, heads, cfg.mlp_ratio) for _ in range(cfg.single_blocks)
        )
        self.final_layer = FinalLayer(dim, cfg.input_dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.input_encoder.weight.dtype

    @property
    def doubles(self) -> list[MMDoubleStreamBlock]:
        return cast(list[MMDoubleStreamBlock], list(self.double_blocks))

    @property
    def singles(self) -> list[MMSingleStreamBlock]:
        return cast(list[MMSingleStreamBlock], list(self.single_blocks))

    # --- shared pieces ------------------------------------------------------------------------

    def _rope(self, positions: Tensor) -> Rope:
        return Rope(*rope_tables(positions, self.cfg.head_dim))

    def _text_positions(self, count: int, device: torch.device) -> Tensor:
        # §2.4: text tokens sit after all train_frames motion slots, whatever the clip length
        return self.cfg.train_frames + torch.arange(count, device=device)

    def _adapter(self, t: Tensor, vtxt: Tensor) -> Tensor:
        """c = TimestepEmb(1000·t) + vtxt_encoder(vtxt): (B,), (B, 1, V) -> (B, 1, D)."""
        return self.timestep_encoder(t) + self.vtxt_encoder(vtxt.to(self.dtype))

    def _text_tokens(self, t: Tensor, ctxt: Tensor, ctxt_valid: Tensor) -> Tensor:
        """Projected and refined Qwen tokens (B, T_t, C) -> (B, T_t, D)."""
        return self.text_refiner(self.ctxt_encoder(ctxt.to(self.dtype)), t, ctxt_valid)

    def motion_allowed(self, x_valid: Tensor) -> Tensor:
        """Motion-query x motion-key mask (B, 1, L, L): narrowband window and valid keys."""
        length = x_valid.shape[1]
        idx = torch.arange(length, device=x_valid.device)
        offset = idx[None, :] - idx[:, None]  # key − query
        if self.cfg.mask_mode == "narrowband":
            band = offset.abs() <= (self.cfg.band or 0)
        elif self.cfg.mask_mode == "causal":
            band = offset <= 0
        else:
            band = torch.ones_like(offset, dtype=torch.bool)
        return band[None, None] & x_valid[:, None, None, :]

    # --- reference forward (§2.9, literally) ---------------------------------------------------

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        ctxt: Tensor,
        vtxt: Tensor,
        x_valid: Tensor,
        ctxt_valid: Tensor,
    ) -> Tensor:
        """Velocity for the concatenated sequence, as the official network computes it.

        x (B, T_m, 201), t (B,) in [0, 1], ctxt (B, T_t, C), vtxt (B, 1, V), x_valid (B, T_m)
        bool, ctxt_valid (B, T_t) bool -> (B, T_m, 201) in the model dtype.
        """
        batch, frames = x_valid.shape
        texts = ctxt_valid.shape[1]
        device = x.device
        xm = self.input_encoder(x.to(self.dtype))  # (B, T_m, D)
        c = self._adapter(t, vtxt)  # (B, 1, D)
        xt = self._text_tokens(t, ctxt, ctxt_valid)  # (B, T_t, D)
        positions = torch.cat(
            [torch.arange(frames, device=device), self._text_positions(texts, device)]
        )
        rope = self._rope(positions)
        # §2.5 full mask (B, 1, T, T): motion queries see band-limited valid motion keys and
        # valid text keys; text queries see valid text keys only
        allowed = torch.zeros(
            batch, 1, frames + texts, frames + texts, dtype=torch.bool, device=device
        )
        allowed[..., :frames, :frames] = self.motion_allowed(x_valid)
        allowed[..., :, frames:] = ctxt_valid[:, None, None, :]
        for double in self.doubles:
            xm, xt = double(xm, xt, c, rope, allowed)
        seq = torch.cat([xm, xt], dim=1)  # (B, T, D)
        for single in self.singles:
            seq = single(seq, c, rope, allowed)
        return self.final_layer(seq[:, :frames], c)

    # --- exact shortcut: text stream once per (prompt branch, evaluation) ---------------------

    def encode_text_stream(
        self, t: Tensor, ctxt: Tensor, vtxt: Tensor, ctxt_valid: Tensor
    ) -> TextStream:
        """Everything motion tokens need from the text side: t (G,), ctxt (G, T_t, C),
        vtxt (G, 1, V), ctxt_valid (G, T_t) -> TextStream."""
        c = self._adapter(t, vtxt)
        xt = self._text_tokens(t, ctxt, ctxt_valid)
        rope = self._rope(self._text_positions(ctxt_valid.shape[1], ctxt.device))
        allowed = ctxt_valid[:, None, None, :]  # (G, 1, 1, T_t)
        double_kv, single_kv = [], []
        for double in self.doubles:
            xt, kv = double.text_forward(xt, c, rope, allowed)
            double_kv.append(kv)
        last = len(self.singles) - 1
        for i, single in enumerate(self.singles):
            xt, kv = single.text_forward(xt, c, rope, allowed, update=i < last)
            single_kv.append(kv)
        return TextStream(c, double_kv, single_kv, ctxt_valid)

    def forward_motion(self, x: Tensor, x_valid: Tensor, text: TextStream, group: Tensor) -> Tensor:
        """Velocity of motion tokens that use text stream ``group[b]`` (B,) long.

        x (B, L, 201) with L ≤ T_m (only the frames that are kept; positions stay 0 … L−1),
        x_valid (B, L) -> (B, L, 201). Equal to ``forward`` on the valid frames.
        """
        xm = self.input_encoder(x.to(self.dtype))
        c = text.adapter[group]  # (B, 1, D)
        rope = self._rope(torch.arange(x.shape[1], device=x.device))
        allowed = torch.cat(
            [
                self.motion_allowed(x_valid),
                text.valid[group][:, None, None, :].expand(-1, 1, x.shape[1], -1),
            ],
            dim=-1,
        )  # (B, 1, L, L + T_t)
        for double, kv in zip(self.doubles, text.double_kv, strict=True):
            xm = double.motion_forward(xm, c, rope, KV(kv.k[group], kv.v[group]), allowed)
        for single, kv in zip(self.singles, text.single_kv, strict=True):
            xm = single.motion_forward(xm, c, rope, KV(kv.k[group], kv.v[group]), allowed)
        return self.final_layer(xm, c)


class HYMotionWeights(nn.Module):
    """Every tensor of ``model_state_dict``: the DiT plus the pipeline's learned null features
    and the latent mean/std (428 tensors Standard, 308 Lite)."""

    mean: Tensor  # (201,) buffers, float32 whatever the network's dtype
    std: Tensor

    def __init__(self, cfg: MMDiTConfig) -> None:
        super().__init__()
        self.motion_transformer = HunyuanMotionMMDiT(cfg)
        self.null_vtxt_feat = nn.Parameter(torch.zeros(1, 1, cfg.vtxt_input_dim))
        self.null_ctxt_input = nn.Parameter(torch.zeros(1, 1, cfg.ctxt_input_dim))
        self.special_game_vtxt_feat = nn.Parameter(torch.zeros(1, 1, cfg.vtxt_input_dim))
        self.special_game_ctxt_feat = nn.Parameter(torch.zeros(1, 1, cfg.ctxt_input_dim))
        self.register_buffer("mean", torch.zeros(cfg.input_dim))
        self.register_buffer("std", torch.ones(cfg.input_dim))
