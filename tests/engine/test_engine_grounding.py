"""Exact mesh grounding on a synthetic wooden-style mesh, against brute-force skinning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.engine.errors import CheckpointError
from daemon.engine.grounding import MeshGrounding, rest_mesh_floor
from daemon.engine.skeleton import PARENTS, REST_POSITIONS
from shared_protocol.motion import quaternion_to_matrix


def _mesh(vertices: int = 400, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, 52, vertices)
    verts = REST_POSITIONS[owner] + rng.normal(scale=0.05, size=(vertices, 3))
    indices = np.stack([owner, *rng.integers(0, 52, (3, vertices))], axis=1).astype(np.uint16)
    weights = rng.random((vertices, 4)) ** 2
    weights /= weights.sum(1, keepdims=True)
    return verts.astype(np.float32), weights.astype(np.float32), indices


def _brute_force_floor(verts, weights, indices, quats, trans) -> float:
    """Full linear blend skinning with 4×4 transforms, every posed vertex of every frame."""
    lowest = np.inf
    joints = REST_POSITIONS.astype(np.float64)
    for q, t in zip(quats, trans, strict=True):
        local = np.tile(np.eye(4), (52, 1, 1))
        local[:22, :3, :3] = quaternion_to_matrix(q)
        world = np.empty((52, 4, 4))
        for j in range(52):
            local[j, :3, 3] = joints[j] - (joints[PARENTS[j]] if j else 0.0)
            world[j] = world[PARENTS[j]] @ local[j] if j else local[j]
        unbind = np.tile(np.eye(4), (52, 1, 1))
        unbind[:, :3, 3] = -joints
        skin = world @ unbind  # (52, 4, 4)
        blended = np.einsum("vk,vkab->vab", weights, skin[indices.astype(int)])
        posed = np.einsum("vab,vb->va", blended, np.c_[verts, np.ones(len(verts))])[:, :3]
        lowest = min(lowest, float((posed[:, 1] + t[1]).min()))
    return lowest


def test_exact_floor_equals_brute_force_skinning() -> None:
    verts, weights, indices = _mesh()
    mesh = MeshGrounding.from_arrays(
        verts.astype(np.float64), weights.astype(np.float64), indices, REST_POSITIONS.astype(float)
    )
    rng = np.random.default_rng(1)
    quats = rng.normal(size=(70, 22, 4))  # 70 frames: more than one chunk of 64
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    trans = rng.normal(scale=0.3, size=(70, 3))
    roots = trans + REST_POSITIONS[0]
    expected = _brute_force_floor(verts, weights, indices, quats, trans)
    got = mesh.floor_height(quats, roots, np.zeros((70, 22, 3)))
    assert got == pytest.approx(expected, abs=1e-6)


def test_rest_floor_is_the_lowest_template_vertex() -> None:
    verts, weights, indices = _mesh(seed=3)
    mesh = MeshGrounding.from_arrays(
        verts.astype(np.float64), weights.astype(np.float64), indices, REST_POSITIONS.astype(float)
    )
    assert rest_mesh_floor(mesh) == pytest.approx(float(verts[:, 1].min()), abs=1e-6)


def _write(directory: Path, verts, weights, indices) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "v_template.bin").write_bytes(verts.astype("<f4").tobytes())
    (directory / "skinWeights.bin").write_bytes(weights.astype("<f4").tobytes())
    (directory / "skinIndice.bin").write_bytes(indices.astype("<u2").tobytes())
    (directory / "j_template.bin").write_bytes(REST_POSITIONS.astype("<f4").tobytes())


def test_files_that_are_not_the_official_assets_are_refused(tmp_path: Path) -> None:
    verts, weights, indices = _mesh()
    _write(tmp_path, verts, weights, indices)
    with pytest.raises(CheckpointError, match=r"v_template\.bin.*not the official file.*sha256"):
        MeshGrounding.load(tmp_path)
    loaded = MeshGrounding.load(tmp_path, verify=False)  # the reader itself works
    direct = MeshGrounding.from_arrays(
        verts.astype(float), weights.astype(float), indices, REST_POSITIONS.astype(float)
    )
    np.testing.assert_allclose(loaded.basis, direct.basis, atol=1e-6)


def test_missing_and_inconsistent_mesh_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"v_template\.bin"):
        MeshGrounding.load(tmp_path)
    verts, weights, indices = _mesh()
    _write(tmp_path, verts, weights[:-1], indices)
    with pytest.raises(CheckpointError, match="vertex count"):
        MeshGrounding.load(tmp_path, verify=False)
