"""Decoding against hand-computed cases (spec §5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daemon.engine.decode import (
    decode,
    denormalize,
    gaussian_kernel,
    savgol_filter,
    smooth_quaternions,
)
from daemon.engine.grounding import SOLE_MARGIN_M, JointGrounding
from daemon.engine.skeleton import BODY_SKELETON, REST_POSITIONS
from shared_protocol import MotionTakes

IDENTITY6 = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]


class NoGrounding:
    """Leaves heights alone, so FK results can be compared with hand-computed positions."""

    exact = True
    label = "none"

    def floor_height(self, rotations, root_positions, joint_positions) -> float:
        return 0.0


def _latent(frames: int, transl=(0.0, 0.0, 0.0), rot6d: dict[int, list[float]] | None = None):
    """A de-normalised latent (mean = the motion, std = 1, latent = 0) -> (latent, mean, std)."""
    mean = torch.zeros(201)
    mean[0:3] = torch.tensor(transl)
    for joint in range(22):
        values = (rot6d or {}).get(joint, IDENTITY6)
        mean[3 + 6 * joint : 9 + 6 * joint] = torch.tensor(values)
    return torch.zeros(1, frames, 201), mean, torch.ones(201)


def test_gaussian_kernel_is_the_spec_kernel() -> None:
    expected = [1.338306e-4, 4.431862e-3, 5.399113e-2, 2.419714e-1, 3.989435e-1]
    np.testing.assert_allclose(gaussian_kernel(1.0)[:5], expected, rtol=1e-5)
    assert len(gaussian_kernel(1.0)) == 9


def test_savgol_interior_kernel_is_the_spec_kernel() -> None:
    impulse = np.zeros(31)
    impulse[15] = 1.0
    kernel = savgol_filter(impulse)[10:21]  # response of the symmetric filter
    expected = [0.04195804, -0.1048951, -0.02331002, 0.13986014, 0.27972028, 0.33333333]
    np.testing.assert_allclose(kernel[:6], expected, atol=1e-8)
    np.testing.assert_allclose(kernel[5:], expected[::-1], atol=1e-8)


def test_savgol_equals_a_direct_least_squares_fit_including_the_edges() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 3))
    out = savgol_filter(values)
    for f in range(40):
        lo = min(max(f - 5, 0), 40 - 11)  # mode "interp": edges reuse the first/last window
        x = np.arange(lo, lo + 11)
        for axis in range(3):
            fit = np.polyfit(x, values[lo : lo + 11, axis], 5)
            assert out[f, axis] == pytest.approx(np.polyval(fit, f), abs=1e-9)


def test_savgol_keeps_degree_5_polynomials() -> None:
    t = np.linspace(-1, 1, 25)
    poly = 1 + t - 2 * t**3 + 0.5 * t**5
    np.testing.assert_allclose(savgol_filter(poly), poly, atol=1e-10)


def test_quaternion_smoothing_is_sign_invariant_and_keeps_constant_tracks() -> None:
    q = np.array([0.9, 0.1, -0.3, 0.2])
    q /= np.linalg.norm(q)
    track = np.tile(q, (12, 2, 1))
    track[::3] *= -1  # the same rotations with flipped signs
    out = smooth_quaternions(track)
    np.testing.assert_allclose(np.abs(out @ q), 1.0, atol=1e-12)


def test_quaternion_smoothing_averages_a_jitter() -> None:
    angles = np.zeros(21)
    angles[10] = 0.2  # one frame twisted about z
    track = np.stack([np.cos(angles / 2), 0 * angles, 0 * angles, np.sin(angles / 2)], -1)
    out = smooth_quaternions(track[:, None])[:, 0]
    out *= np.sign(out[:, :1])
    smoothed = 2 * np.arctan2(out[:, 3], out[:, 0])
    assert smoothed[10] == pytest.approx(0.2 * 0.3989435, abs=2e-3)  # centre tap weight
    assert smoothed[9] == pytest.approx(0.2 * 0.2419714, abs=2e-3)


def test_denormalize_ignores_near_zero_std() -> None:
    latent = torch.ones(1, 2, 3)
    out = denormalize(latent, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 5e-4, 0.0]))
    assert out[0, 0].tolist() == [3.0, 2.0, 3.0]


def test_identity_rotations_give_the_rest_skeleton() -> None:
    latent, mean, std = _latent(20, transl=(0.5, 1.0, -2.0))
    motion = decode(latent, mean, std, NoGrounding())
    assert motion.rotations.shape == (1, 20, 22, 4)
    np.testing.assert_allclose(motion.rotations[..., 0], 1.0)
    root = np.array([0.5, 1.0, -2.0]) + REST_POSITIONS[0]
    np.testing.assert_allclose(motion.root_positions[0], np.tile(root, (20, 1)), atol=1e-6)
    expected = REST_POSITIONS[:22] + np.array([0.5, 1.0, -2.0])
    np.testing.assert_allclose(motion.joint_positions[0, 7], expected, atol=1e-6)
    MotionTakes(motion.rotations, motion.root_positions, motion.joint_positions).validate(
        BODY_SKELETON, 1, 20
    )


def test_known_rotations_give_known_joint_positions() -> None:
    # root turned 90° about +Y (x -> −z, z -> x), left knee bent 90° about +X (y -> z, z -> −y)
    rot_y = [
        0.0,
        0.0,
        0.0,
        1.0,
        -1.0,
        0.0,
    ]  # columns (0,0,−1) and (0,1,0): R = [[0,0,1],[0,1,0],[−1,0,0]]
    rot_x = [
        1.0,
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ]  # columns (1,0,0) and (0,0,1): R = [[1,0,0],[0,0,−1],[0,1,0]]
    latent, mean, std = _latent(20, rot6d={0: rot_y, 4: rot_x})
    motion = decode(latent, mean, std, NoGrounding())
    joints = motion.joint_positions[0, 10]
    pelvis = REST_POSITIONS[0]
    np.testing.assert_allclose(joints[0], pelvis, atol=1e-6)

    def turn(v):  # R_y(90°) applied to an offset
        return np.array([v[2], v[1], -v[0]])

    hip = pelvis + turn([0.082372, -0.089938, -0.003102])  # L_Hip offset from the spec
    knee = hip + turn([0.019260, -0.377317, -0.010454])
    # the knee's local bend, then the root turn: ankle offset (x, y, z) -> (x, −z, y) -> turn
    ankle = knee + turn([0.001238, 0.052122, -0.398138])
    np.testing.assert_allclose(joints[1], hip, atol=1e-5)
    np.testing.assert_allclose(joints[4], knee, atol=1e-5)
    np.testing.assert_allclose(joints[7], ankle, atol=1e-5)
    w, x, y, z = motion.rotations[0, 10, 0]
    assert (w, y) == pytest.approx((np.sqrt(0.5), np.sqrt(0.5)), abs=1e-6) and abs(x) + abs(
        z
    ) < 1e-6


def test_joint_grounding_puts_the_rest_sole_on_the_floor() -> None:
    latent, mean, std = _latent(20, transl=(0.0, 3.0, 0.0))
    motion = decode(latent, mean, std, JointGrounding())
    # the rest pose's lowest estimate is the right ankle (y −1.056317) minus its 0.105 m margin
    assert motion.joint_positions[0, :, 8, 1].min() == pytest.approx(0.105, abs=1e-6)
    assert motion.root_positions[0, 0, 1] == pytest.approx(0.105 + 1.056317 - 0.190827, abs=1e-6)
    # in the rest pose the estimate is within 0.5 mm of the mesh minimum (−1.161 m, spec §6.1)
    estimate = (REST_POSITIONS[:22, 1] - SOLE_MARGIN_M).min()
    assert estimate == pytest.approx(-1.161, abs=5e-4)


def test_output_quaternions_are_sign_continuous_with_positive_first_w() -> None:
    gen = torch.Generator().manual_seed(0)
    latent, mean, std = _latent(60)
    latent = torch.randn(2, 60, 201, generator=gen) * 0.3
    motion = decode(latent, mean, std, JointGrounding())
    q = motion.rotations
    assert (q[:, 0, :, 0] >= 0).all()
    assert ((q[:, 1:] * q[:, :-1]).sum(-1) >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-5)
