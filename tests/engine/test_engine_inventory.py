"""state_dict inventory of both official configs, built on the meta device (spec §2.3)."""

from __future__ import annotations

import pytest

from daemon.engine.checkpoint import expected_shapes
from daemon.engine.mmdit import CONFIGS

PIPELINE_KEYS = {
    "null_vtxt_feat": (1, 1, 768),
    "null_ctxt_input": (1, 1, 4096),
    "special_game_vtxt_feat": (1, 1, 768),
    "special_game_ctxt_feat": (1, 1, 4096),
    "mean": (201,),
    "std": (201,),
}
# (name, tensors, values, D, double blocks, single blocks) from the spec
OFFICIAL = [
    ("standard", 428, 1_042_878_811, 1280, 9, 18),
    ("lite", 308, 460_851_803, 1024, 6, 12),
]


def _spec_table(dim: int, doubles: int, singles: int) -> dict[str, tuple[int, ...]]:
    """Every key and shape, written out from the spec's tables (not from our modules)."""
    d, hidden = 64, 4 * dim
    p = "motion_transformer."
    table: dict[str, tuple[int, ...]] = {
        f"{p}input_encoder.weight": (dim, 201),
        f"{p}input_encoder.bias": (dim,),
        f"{p}ctxt_encoder.weight": (dim, 4096),
        f"{p}ctxt_encoder.bias": (dim,),
        f"{p}vtxt_encoder.linears.0.weight": (dim, 768),
        f"{p}vtxt_encoder.linears.0.bias": (dim,),
        f"{p}vtxt_encoder.linears.2.weight": (dim, dim),
        f"{p}vtxt_encoder.linears.2.bias": (dim,),
        f"{p}final_layer.adaLN_modulation.linear.weight": (2 * dim, dim),
        f"{p}final_layer.adaLN_modulation.linear.bias": (2 * dim,),
        f"{p}final_layer.linear.weight": (201, dim),
        f"{p}final_layer.linear.bias": (201,),
    }
    for enc in ("timestep_encoder", "text_refiner.timestep_encoder"):
        for i in (0, 2):
            table[f"{p}{enc}.blocks.{i}.weight"] = (dim, dim)
            table[f"{p}{enc}.blocks.{i}.bias"] = (dim,)
    r = f"{p}text_refiner."
    table |= {
        f"{r}input_embedder.weight": (dim, dim),
        f"{r}input_embedder.bias": (dim,),
        f"{r}context_encoder.linears.0.weight": (dim, dim),
        f"{r}context_encoder.linears.0.bias": (dim,),
        f"{r}context_encoder.linears.2.weight": (dim, dim),
        f"{r}context_encoder.linears.2.bias": (dim,),
    }
    for b in range(2):
        q = f"{r}individual_token_refiner.blocks.{b}."
        table |= {
            f"{q}norm1.weight": (dim,),
            f"{q}norm1.bias": (dim,),
            f"{q}self_attn_qkv.weight": (3 * dim, dim),
            f"{q}self_attn_qkv.bias": (3 * dim,),
            f"{q}self_attn_q_norm.weight": (d,),
            f"{q}self_attn_q_norm.bias": (d,),
            f"{q}self_attn_k_norm.weight": (d,),
            f"{q}self_attn_k_norm.bias": (d,),
            f"{q}self_attn_proj.weight": (dim, dim),
            f"{q}self_attn_proj.bias": (dim,),
            f"{q}norm2.weight": (dim,),
            f"{q}norm2.bias": (dim,),
            f"{q}mlp.fc1.weight": (hidden, dim),
            f"{q}mlp.fc1.bias": (hidden,),
            f"{q}mlp.fc2.weight": (dim, hidden),
            f"{q}mlp.fc2.bias": (dim,),
            f"{q}adaLN_modulation.linear.weight": (2 * dim, dim),
            f"{q}adaLN_modulation.linear.bias": (2 * dim,),
        }
    for i in range(doubles):
        for s in ("motion", "text"):
            q = f"{p}double_blocks.{i}.{s}_"
            table |= {
                f"{q}mod.linear.weight": (6 * dim, dim),
                f"{q}mod.linear.bias": (6 * dim,),
                f"{q}qkv.weight": (3 * dim, dim),
                f"{q}qkv.bias": (3 * dim,),
                f"{q}q_norm.weight": (d,),
                f"{q}k_norm.weight": (d,),
                f"{q}out_proj.weight": (dim, dim),
                f"{q}out_proj.bias": (dim,),
                f"{q}mlp.fc1.weight": (hidden, dim),
                f"{q}mlp.fc1.bias": (hidden,),
                f"{q}mlp.fc2.weight": (dim, hidden),
                f"{q}mlp.fc2.bias": (dim,),
            }
    for j in range(singles):
        q = f"{p}single_blocks.{j}."
        table |= {
            f"{q}modulation.linear.weight": (3 * dim, dim),
            f"{q}modulation.linear.bias": (3 * dim,),
            f"{q}linear1.weight": (3 * dim + hidden, dim),
            f"{q}linear1.bias": (3 * dim + hidden,),
            f"{q}linear2.weight": (dim, dim + hidden),
            f"{q}linear2.bias": (dim,),
            f"{q}q_norm.weight": (d,),
            f"{q}k_norm.weight": (d,),
        }
    return table | PIPELINE_KEYS


@pytest.mark.parametrize(("size", "tensors", "values", "dim", "doubles", "singles"), OFFICIAL)
def test_official_state_dict_matches_the_spec(
    size: str, tensors: int, values: int, dim: int, doubles: int, singles: int
) -> None:
    shapes = expected_shapes(CONFIGS[size])  # built on the meta device: no memory
    assert len(shapes) == tensors
    total = 0
    for shape in shapes.values():
        count = 1
        for n in shape:
            count *= n
        total += count
    assert total == values
    assert shapes == _spec_table(dim, doubles, singles)
    assert sum(k.startswith("motion_transformer.") for k in shapes) == tensors - 6


def test_single_block_widths_from_the_spec_examples() -> None:
    shapes = expected_shapes(CONFIGS["standard"])
    assert shapes["motion_transformer.single_blocks.0.linear1.weight"] == (8960, 1280)
    assert shapes["motion_transformer.single_blocks.0.linear2.weight"] == (1280, 6400)
    lite = expected_shapes(CONFIGS["lite"])
    assert lite["motion_transformer.single_blocks.11.linear1.weight"] == (7168, 1024)
    assert lite["motion_transformer.single_blocks.11.linear2.weight"] == (1024, 5120)
