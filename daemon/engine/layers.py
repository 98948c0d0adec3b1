"""Building blocks of the HY-Motion MMDiT (spec §2.1–2.8). Attribute names are checkpoint keys.

Each block has a reference ``forward`` that runs the concatenated motion+text sequence exactly as
the spec describes, and split methods (``text_*`` / ``motion_*``) used by the exact shortcut that
computes the text stream once per (prompt, velocity evaluation) and shares it across candidates
(§11.5b): text queries never attend to motion keys, so the text stream never depends on the
motion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from .math import apply_rope, attention, modulate, split_heads, timestep_embedding

LN_EPS = 1e-6


@dataclass(frozen=True)
class Rope:
    """RoPE tables for one token range: cos, sin (L, d)."""

    cos: Tensor
    sin: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        return apply_rope(x, self.cos, self.sin)


@dataclass(frozen=True)
class ModulationOut:
    shift: Tensor  # (B, 1, D)
    scale: Tensor
    gate: Tensor


@dataclass(frozen=True)
class KV:
    """Keys and values of text tokens for one block, (G, H, T_t, d), after norm and RoPE."""

    k: Tensor
    v: Tensor


def layer_norm(x: Tensor) -> Tensor:
    """Affine-free LayerNorm over the last axis (eps 1e-6)."""
    return nn.functional.layer_norm(x, x.shape[-1:], eps=LN_EPS)


class MLP(nn.Module):
    """fc1 -> activation -> fc2."""

    def __init__(self, dim: int, hidden: int, act: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MLPEncoder(nn.Module):
    """Linear(in→D), SiLU, Linear(D→D) as ``linears.0`` / ``linears.2``."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.linears = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.linears(x)


class TimestepEncoder(nn.Module):
    """§2.2: sinusoidal embedding of time_factor·t, then ``blocks`` = Linear, SiLU, Linear."""

    def __init__(self, dim: int, time_factor: float) -> None:
        super().__init__()
        self.time_factor = time_factor
        self.blocks = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        """t (B,) -> (B, 1, D)."""
        first = cast(nn.Linear, self.blocks[0])
        emb = timestep_embedding(t, first.in_features, self.time_factor)
        return self.blocks(emb.to(first.weight.dtype)).unsqueeze(1)


class ModulateDiT(nn.Module):
    """Linear_{D→kD}(SiLU(c)), split into k chunks of width D."""

    def __init__(self, dim: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.linear = nn.Linear(dim, factor * dim)

    def forward(self, c: Tensor) -> list[Tensor]:
        """c (B, 1, D) -> k tensors (B, 1, D)."""
        return list(self.linear(nn.functional.silu(c)).chunk(self.factor, dim=-1))


class RMSNorm(nn.Module):
    """q/k norm: computed in float32 (as upstream), cast back, then scaled by ``weight`` (d,)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + LN_EPS)
        return normed.to(x.dtype) * self.weight


# --- text refiner (§2.6) ---------------------------------------------------------------------


class RefinerBlock(nn.Module):
    """Gated self-attention + SiLU MLP over text tokens; no shift/scale, only gates."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        head_dim = dim // heads
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.self_attn_qkv = nn.Linear(dim, 3 * dim)
        self.self_attn_q_norm = nn.LayerNorm(head_dim, eps=LN_EPS)
        self.self_attn_k_norm = nn.LayerNorm(head_dim, eps=LN_EPS)
        self.self_attn_proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, int(dim * mlp_ratio), nn.SiLU())
        self.adaLN_modulation = ModulateDiT(dim, 2)

    def forward(self, x: Tensor, cond: Tensor, allowed: Tensor) -> Tensor:
        """x (G, T_t, D), cond (G, 1, D), allowed (G, 1, T_t, T_t) -> (G, T_t, D)."""
        gate_attn, gate_mlp = self.adaLN_modulation(cond)
        q, k, v = split_heads(self.self_attn_qkv(self.norm1(x)), self.heads)
        q, k = self.self_attn_q_norm(q).to(v.dtype), self.self_attn_k_norm(k).to(v.dtype)
        x = x + gate_attn * self.self_attn_proj(attention(q, k, v, allowed))
        return x + gate_mlp * self.mlp(self.norm2(x))


class TokenRefinerStack(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RefinerBlock(dim, heads, mlp_ratio) for _ in range(depth))


class SingleTokenRefiner(nn.Module):
    """§2.6: refines the projected Qwen tokens, conditioned on raw t and their masked mean."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, depth: int = 2) -> None:
        super().__init__()
        self.input_embedder = nn.Linear(dim, dim)
        self.context_encoder = MLPEncoder(dim, dim)
        self.timestep_encoder = TimestepEncoder(dim, time_factor=1.0)
        self.individual_token_refiner = TokenRefinerStack(dim, heads, mlp_ratio, depth)

    def forward(self, x: Tensor, t: Tensor, valid: Tensor) -> Tensor:
        """x (G, T_t, D), t (G,), valid (G, T_t) bool -> (G, T_t, D)."""
        weights = valid.to(x.dtype).unsqueeze(-1)  # (G, T_t, 1)
        pooled = (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1e-6)
        cond = self.timestep_encoder(t) + self.context_encoder(pooled)  # (G, 1, D)
        x = self.input_embedder(x)
        allowed = valid[:, None, :, None] & valid[:, None, None, :]  # (G, 1, T_t, T_t)
        # a padded query with no allowed key attends to itself only
        eye = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
        allowed = allowed | (eye & ~allowed.any(-1, keepdim=True))
        for block in self.individual_token_refiner.blocks:
            x = block(x, cond, allowed)
        return x


# --- double- and single-stream blocks (§2.7, §2.8) -------------------------------------------


class MMDoubleStreamBlock(nn.Module):
    """Separate weights for the motion and text streams, joint attention over both."""

    STREAMS = ("motion", "text")

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        for s in self.STREAMS:
            self.add_module(f"{s}_mod", ModulateDiT(dim, 6))
            self.add_module(f"{s}_qkv", nn.Linear(dim, 3 * dim))
            self.add_module(f"{s}_q_norm", RMSNorm(head_dim))
            self.add_module(f"{s}_k_norm", RMSNorm(head_dim))
            self.add_module(f"{s}_out_proj", nn.Linear(dim, dim))
            self.add_module(f"{s}_mlp", MLP(dim, int(dim * mlp_ratio), nn.GELU("tanh")))

    def _mods(self, s: str, c: Tensor) -> tuple[ModulationOut, ModulationOut]:
        # order: shift1, scale1, gate1, shift2, scale2, gate2
        chunks = getattr(self, f"{s}_mod")(c)
        return ModulationOut(*chunks[:3]), ModulationOut(*chunks[3:])

    def _qkv(self, s: str, x: Tensor, mod: ModulationOut) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised q, k (before RoPE) and v, each (B, H, L, d)."""
        h = modulate(layer_norm(x), mod.shift, mod.scale)
        q, k, v = split_heads(getattr(self, f"{s}_qkv")(h), self.heads)
        q = getattr(self, f"{s}_q_norm")(q).to(v.dtype)
        k = getattr(self, f"{s}_k_norm")(k).to(v.dtype)
        return q, k, v

    def _finish(
        self, s: str, x: Tensor, out: Tensor, mod1: ModulationOut, mod2: ModulationOut
    ) -> Tensor:
        x = x + mod1.gate * getattr(self, f"{s}_out_proj")(out)
        return x + mod2.gate * getattr(self, f"{s}_mlp")(
            modulate(layer_norm(x), mod2.shift, mod2.scale)
        )

    def forward(
        self, xm: Tensor, xt: Tensor, c: Tensor, rope: Rope, allowed: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Reference: xm (B, T_m, D), xt (B, T_t, D), c (B, 1, D), rope over T_m + T_t,
        allowed (B, 1, T, T) -> updated (xm, xt)."""
        m1, m2 = self._mods("motion", c)
        t1, t2 = self._mods("text", c)
        qm, km, vm = self._qkv("motion", xm, m1)
        qt, kt, vt = self._qkv("text", xt, t1)
        q = rope(torch.cat([qm, qt], dim=2))  # (B, H, T, d), motion first
        k = rope(torch.cat([km, kt], dim=2))
        out = attention(q, k, torch.cat([vm, vt], dim=2), allowed)  # (B, T, D)
        split = xm.shape[1]
        return (
            self._finish("motion", xm, out[:, :split], m1, m2),
            self._finish("text", xt, out[:, split:], t1, t2),
        )

    def text_forward(self, xt: Tensor, c: Tensor, rope: Rope, allowed: Tensor) -> tuple[Tensor, KV]:
        """Text stream alone: xt (G, T_t, D), allowed (G, 1, 1, T_t) -> (xt, its keys/values)."""
        t1, t2 = self._mods("text", c)
        qt, kt, vt = self._qkv("text", xt, t1)
        qt, kt = rope(qt), rope(kt)
        out = attention(qt, kt, vt, allowed)
        return self._finish("text", xt, out, t1, t2), KV(kt, vt)

    def motion_forward(
        self, xm: Tensor, c: Tensor, rope: Rope, text: KV, allowed: Tensor
    ) -> Tensor:
        """Motion stream with precomputed text keys/values (B, H, T_t, d) -> xm (B, L, D)."""
        m1, m2 = self._mods("motion", c)
        qm, km, vm = self._qkv("motion", xm, m1)
        qm, km = rope(qm), rope(km)
        out = attention(qm, torch.cat([km, text.k], 2), torch.cat([vm, text.v], 2), allowed)
        return self._finish("motion", xm, out, m1, m2)


class MMSingleStreamBlock(nn.Module):
    """One set of weights over the concatenated sequence; parallel attention and MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.dim = dim
        head_dim = dim // heads
        self.modulation = ModulateDiT(dim, 3)
        self.linear1 = nn.Linear(dim, 3 * dim + int(dim * mlp_ratio))
        self.linear2 = nn.Linear(dim + int(dim * mlp_ratio), dim)
        self.q_norm = RMSNorm(head_dim)
        self.k_norm = RMSNorm(head_dim)
        self.mlp_act = nn.GELU("tanh")

    def _qkv(self, x: Tensor, mod: ModulationOut) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """q, k (before RoPE), v (B, H, L, d) and the MLP branch u (B, L, 4D)."""
        h = modulate(layer_norm(x), mod.shift, mod.scale)
        qkv, u = self.linear1(h).split([3 * self.dim, self.linear1.out_features - 3 * self.dim], -1)
        q, k, v = split_heads(qkv, self.heads)
        return self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype), v, u

    def _finish(self, x: Tensor, out: Tensor, u: Tensor, mod: ModulationOut) -> Tensor:
        return x + mod.gate * self.linear2(torch.cat([out, self.mlp_act(u)], dim=-1))

    def forward(self, x: Tensor, c: Tensor, rope: Rope, allowed: Tensor) -> Tensor:
        """Reference: x (B, T, D) = [motion; text] -> (B, T, D)."""
        mod = ModulationOut(*self.modulation(c))
        q, k, v, u = self._qkv(x, mod)
        return self._finish(x, attention(rope(q), rope(k), v, allowed), u, mod)

    def text_forward(
        self, xt: Tensor, c: Tensor, rope: Rope, allowed: Tensor, update: bool = True
    ) -> tuple[Tensor, KV]:
        """Text tokens alone (they attend only to text); ``update=False`` skips the output."""
        mod = ModulationOut(*self.modulation(c))
        q, k, v, u = self._qkv(xt, mod)
        k = rope(k)
        if not update:  # the last block's text outputs are cropped away anyway
            return xt, KV(k, v)
        return self._finish(xt, attention(rope(q), k, v, allowed), u, mod), KV(k, v)

    def motion_forward(
        self, xm: Tensor, c: Tensor, rope: Rope, text: KV, allowed: Tensor
    ) -> Tensor:
        """Motion tokens with precomputed text keys/values -> xm (B, L, D)."""
        mod = ModulationOut(*self.modulation(c))
        q, k, v, u = self._qkv(xm, mod)
        out = attention(
            rope(q), torch.cat([rope(k), text.k], 2), torch.cat([v, text.v], 2), allowed
        )
        return self._finish(xm, out, u, mod)


class FinalLayer(nn.Module):
    """(shift, scale) from the adapter, then the projection to the 201-dim velocity."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.adaLN_modulation = ModulateDiT(dim, 2)
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c)
        return self.linear(modulate(layer_norm(x), shift, scale))
