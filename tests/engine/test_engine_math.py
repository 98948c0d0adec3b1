"""Pure functions: timestep embedding, RoPE, rot6d / matrix / quaternion round trips."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.engine.math import (
    apply_rope,
    matrix_to_quaternion,
    matrix_to_rot6d,
    rope_tables,
    rot6d_to_matrix,
    split_heads,
    timestep_embedding,
)
from shared_protocol.motion import quaternion_to_matrix

unit = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: sum(x * x for x in v) > 0.01
)


def _quat(values: list[float]) -> np.ndarray:
    q = np.asarray(values, dtype=np.float64)
    return q / np.linalg.norm(q)


def test_timestep_embedding_is_cosine_then_sine_with_the_spec_frequencies() -> None:
    t = torch.tensor([0.25])
    emb = timestep_embedding(t, 8, time_factor=1000.0)
    freqs = [10000 ** (-i / 4) for i in range(4)]
    expected = [math.cos(250 * f) for f in freqs] + [math.sin(250 * f) for f in freqs]
    assert torch.allclose(emb[0], torch.tensor(expected), atol=1e-4)


def test_rope_rotates_interleaved_pairs_by_position_times_theta() -> None:
    positions = torch.tensor([0, 1, 360])
    cos, sin = rope_tables(positions, 4)  # θ_0 = 1, θ_1 = 10000^(−1/2)
    x = torch.tensor([1.0, 0.0, 0.0, 1.0]).expand(1, 1, 3, 4)
    y = apply_rope(x, cos, sin)[0, 0]
    assert torch.allclose(y[0], x[0, 0, 0])  # position 0: identity
    theta1 = 10000**-0.5
    for row, p in ((1, 1), (2, 360)):
        expected = [math.cos(p), math.sin(p), -math.sin(p * theta1), math.cos(p * theta1)]
        assert torch.allclose(y[row], torch.tensor(expected), atol=1e-4)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1)[0, 0])  # a rotation keeps norms


def test_split_heads_is_q_k_v_then_head_major() -> None:
    qkv = torch.arange(12.0).view(1, 1, 12)  # D = 4, H = 2, d = 2
    q, k, v = split_heads(qkv, 2)
    assert q.flatten().tolist() == [0, 1, 2, 3]
    assert k[0, 1, 0].tolist() == [6, 7]  # second head of k
    assert v[0, 0, 0].tolist() == [8, 9]


def test_rot6d_uses_the_first_two_columns_row_interleaved() -> None:
    assert torch.equal(rot6d_to_matrix(torch.tensor([1.0, 0, 0, 1, 0, 0])), torch.eye(3))
    rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # 90° about z
    assert torch.equal(matrix_to_rot6d(rz), torch.tensor([0.0, -1, 1, 0, 0, 0]))
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(rz)), rz)


def test_rot6d_gram_schmidt_orthonormalises_columns() -> None:
    m = rot6d_to_matrix(torch.tensor([2.0, 1.0, 0.0, 3.0, 0.0, 0.0]))
    assert torch.allclose(m[:, 0], torch.tensor([1.0, 0, 0]))  # first column only normalised
    assert torch.allclose(m.T @ m, torch.eye(3), atol=1e-6)
    assert torch.isclose(torch.linalg.det(m), torch.tensor(1.0))


@settings(max_examples=200, deadline=None)
@given(unit)
def test_quaternion_matrix_round_trip(values: list[float]) -> None:
    q = _quat(values)
    q = q if q[0] >= 0 else -q
    matrix = quaternion_to_matrix(q)
    back = matrix_to_quaternion(torch.from_numpy(matrix)).numpy()
    assert back[0] >= 0
    if abs(q[0]) > 1e-6:  # w = 0 leaves the sign free
        np.testing.assert_allclose(back, q, atol=1e-9)
    np.testing.assert_allclose(quaternion_to_matrix(back), matrix, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(unit)
def test_rot6d_matrix_round_trip(values: list[float]) -> None:
    matrix = torch.from_numpy(quaternion_to_matrix(_quat(values)))
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(matrix)), matrix, atol=1e-9)


def test_half_turns_are_stable() -> None:
    for axis in np.eye(3):
        q = np.concatenate([[0.0], axis])
        back = matrix_to_quaternion(torch.from_numpy(quaternion_to_matrix(q))).numpy()
        np.testing.assert_allclose(np.abs(back), np.abs(q), atol=1e-12)
