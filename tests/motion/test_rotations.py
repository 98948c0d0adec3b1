"""Quaternion math of the motion core against matrices and known rotations."""

from __future__ import annotations

import numpy as np

from blender_addon.core.motion import rotations as rot


def _random_quats(count: int, seed: int = 0) -> np.ndarray:
    return rot.normalize(np.random.default_rng(seed).normal(size=(count, 4)))


def test_multiply_matches_matrix_product_and_inverse_undoes() -> None:
    a, b = _random_quats(50, 1), _random_quats(50, 2)
    product = rot.to_matrix(rot.multiply(a, b))
    np.testing.assert_allclose(product, rot.to_matrix(a) @ rot.to_matrix(b), atol=1e-12)
    identity = rot.multiply(a, rot.inverse(a))
    np.testing.assert_allclose(np.abs(identity[:, 0]), 1.0, atol=1e-12)


def test_rotate_matches_matrix_and_from_matrix_round_trips() -> None:
    q = _random_quats(200, 3)
    v = np.random.default_rng(4).normal(size=(200, 3))
    np.testing.assert_allclose(rot.rotate(q, v), np.einsum("nij,nj->ni", rot.to_matrix(q), v),
                               atol=1e-12)  # fmt: skip
    back = rot.from_matrix(rot.to_matrix(q))
    np.testing.assert_allclose(rot.angle_between(back, q), 0.0, atol=1e-6)
    assert (back[:, 0] >= 0).all()


def test_euler_orders_compose_like_bvh() -> None:
    angles = np.radians([30.0, -50.0, 80.0])

    def axis_matrix(axis: str, angle: float) -> np.ndarray:
        c, s = np.cos(angle), np.sin(angle)
        return {
            "X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
        }[axis]

    for order in ("ZYX", "ZXY", "XYZ", "YXZ"):
        expected = np.eye(3)
        for axis, angle in zip(order, angles, strict=True):
            expected = expected @ axis_matrix(axis, angle)
        np.testing.assert_allclose(rot.to_matrix(rot.from_euler(angles, order)), expected,
                                   atol=1e-12)  # fmt: skip


def test_slerp_ends_midpoint_and_shorter_arc() -> None:
    q0 = rot.from_axis_angle(np.array([0.0, 1.0, 0.0]), 0.0)
    q1 = rot.from_axis_angle(np.array([0.0, 1.0, 0.0]), np.radians(90))
    np.testing.assert_allclose(rot.slerp(q0, q1, 0.0), q0, atol=1e-12)
    np.testing.assert_allclose(rot.slerp(q0, q1, 1.0), q1, atol=1e-12)
    mid = rot.slerp(q0, -q1, 0.5)  # the sign of q1 must not matter
    np.testing.assert_allclose(np.degrees(rot.angle_between(mid, q0)), 45.0, atol=1e-9)


def test_make_continuous_removes_sign_flips() -> None:
    q = np.repeat(_random_quats(1, 5)[None], 10, axis=0)
    q[3::2] *= -1
    smooth = rot.make_continuous(q)
    assert (np.sum(smooth[1:] * smooth[:-1], -1) > 0).all()
    np.testing.assert_allclose(rot.angle_between(smooth, q), 0.0, atol=1e-6)


def test_between_maps_directions_including_opposite() -> None:
    rng = np.random.default_rng(6)
    u, v = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    v[0] = -u[0]
    moved = rot.rotate(rot.between(u, v), u)
    unit = v / np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(moved / np.linalg.norm(moved, axis=-1, keepdims=True), unit,
                               atol=1e-9)  # fmt: skip


def test_swing_twist_recomposes_and_twist_is_about_the_axis() -> None:
    q = _random_quats(100, 7)
    axis = np.array([0.0, 1.0, 0.0])
    swing, twist = rot.swing_twist(q, axis)
    np.testing.assert_allclose(rot.angle_between(rot.multiply(swing, twist), q), 0.0, atol=1e-6)
    np.testing.assert_allclose(twist[:, [1, 3]], 0.0, atol=1e-12)
    # the swing moves the axis but has no component about it
    np.testing.assert_allclose(np.sum(swing[:, 1:] * axis, -1), 0.0, atol=1e-9)


def test_heading_and_yaw_only() -> None:
    turn = rot.yaw(np.radians(40.0))
    # +Z (forward) turns towards +X (the character's left) for a positive heading
    assert rot.rotate(turn, np.array([0.0, 0.0, 1.0]))[0] > 0
    tilt = rot.from_axis_angle(np.array([1.0, 0.0, 0.0]), np.radians(20))
    q = rot.multiply(turn, tilt)
    np.testing.assert_allclose(np.degrees(rot.heading(q)), 40.0, atol=1e-9)
    np.testing.assert_allclose(rot.angle_between(rot.yaw_only(q), turn), 0.0, atol=1e-7)
