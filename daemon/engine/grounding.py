"""Ground alignment (spec §5.5): the clip's lowest point is moved to y = 0.

Officially the lowest point is the minimum over all frames of the posed wooden-mesh vertices'
y. With the mesh files (not distributed with the weights, never committed) ``MeshGrounding``
computes exactly that minimum without posing whole vertices: a vertex's posed height is linear
in the joints' world rotation y-rows and world heights,

    y(f, v) = Σ_j R_j(f)[1, :] · W_vj (v − J_j) + Σ_j W_vj p_j,y(f)

(W_vj = summed skin weight of joint j on vertex v), i.e. one (F × 208) @ (208 × V) product.
Without the mesh, ``JointGrounding`` approximates it from the joints (margins documented below).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from shared_protocol import compose_world_rotations, forward_kinematics, quaternion_to_matrix

from .errors import CheckpointError
from .skeleton import BODY_JOINTS, PARENTS, REST_POSITIONS, make_skeleton

ALL_JOINTS = 52
INFLUENCES = 4
#: name -> (bytes, sha256) from spec Appendix C (official git-LFS oids).
MESH_FILES: dict[str, tuple[int, str]] = {
    "v_template.bin": (291072, "b9fbe1f34bfe8a07442d11166e169318022a18da8bc62ce0a9930dfdb3171050"),
    "skinWeights.bin": (388096, "343eac2902627ee6b45b547eb7d9f1526562eca7ba178d1dc71f9e466f307a77"),
    "skinIndice.bin": (194048, "846794fb90ea01e069435ad242caefb3d5c2f913fef3255c247f48836ddc1bda"),
    "j_template.bin": (624, "4f488cc9d0b650a816f5a8eda49eda7bc796f490e9130a6e0dec5be137d7b929"),
}
#: Approximate grounding: how far the mesh reaches below a joint. Ankles 0.105 m and feet (toe
#: joints) 0.033 m are the rest-pose distances from those joints (y −1.056 / −1.128) to the
#: sole (mesh minimum y −1.161, spec §6.1); 0.05 m for every other joint is a rough limb
#: half-thickness (unmeasured) for kneeling or lying poses.
SOLE_MARGIN_M = np.full(BODY_JOINTS, 0.05)
SOLE_MARGIN_M[[7, 8]] = 0.105
SOLE_MARGIN_M[[10, 11]] = 0.033
FRAME_CHUNK = 64


class Grounding(Protocol):
    exact: bool
    label: str

    def floor_height(
        self, rotations: np.ndarray, root_positions: np.ndarray, joint_positions: np.ndarray
    ) -> float:
        """Lowest y of the clip: rotations (F, 22, 4), root (F, 3), joints (F, 22, 3)."""
        ...


class JointGrounding:
    """Lowest joint minus its sole margin, over all frames (no mesh available)."""

    exact = False
    label = "grounding approximated from joints"

    def floor_height(
        self, rotations: np.ndarray, root_positions: np.ndarray, joint_positions: np.ndarray
    ) -> float:
        return float((joint_positions[..., 1] - SOLE_MARGIN_M).min())


@dataclass(frozen=True, eq=False)
class MeshGrounding:
    """Exact official grounding from the wooden mesh's template, skin weights and joints."""

    rest_joints: np.ndarray  # (52, 3) float64
    basis: np.ndarray  # (52·3 + 52, V) float64: W_vj (v − J_j) per axis, then W_vj
    exact = True
    label = "grounded on the official mesh"

    @classmethod
    def from_arrays(
        cls, vertices: np.ndarray, weights: np.ndarray, indices: np.ndarray, joints: np.ndarray
    ) -> MeshGrounding:
        """vertices (V, 3), weights (V, 4), indices (V, 4) into 52 joints, joints (52, 3)."""
        count = vertices.shape[0]
        dense = np.zeros((count, ALL_JOINTS))  # W_vj, influences of one joint summed
        np.add.at(dense, (np.arange(count)[:, None], indices.astype(np.int64)), weights)
        offsets = vertices[:, None, :] - joints[None, :, :]  # (V, 52, 3)
        lever = dense[..., None] * offsets  # (V, 52, 3)
        basis = np.concatenate([lever.reshape(count, -1).T, dense.T], axis=0)
        return cls(joints.astype(np.float64), basis)

    @classmethod
    def load(cls, directory: Path, verify: bool = True) -> MeshGrounding:
        """Read the four .bin files (little endian, no header); check their sha256 if asked."""
        raw = {}
        for name, (size, digest) in MESH_FILES.items():
            path = directory / name
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CheckpointError(
                    path,
                    f"cannot read mesh file: {exc.strerror}",
                    "the dump_wooden assets of the official repository",
                ) from exc
            if verify and (len(data) != size or hashlib.sha256(data).hexdigest() != digest):
                raise CheckpointError(
                    path, "is not the official file", f"{size} bytes with sha256 {digest}"
                )
            raw[name] = data
        vertices = np.frombuffer(raw["v_template.bin"], "<f4").reshape(-1, 3)
        count = vertices.shape[0]
        weights = np.frombuffer(raw["skinWeights.bin"], "<f4")
        indices = np.frombuffer(raw["skinIndice.bin"], "<u2")
        joints = np.frombuffer(raw["j_template.bin"], "<f4")
        if weights.size != count * 4 or indices.size != count * 4 or joints.size != 52 * 3:
            raise CheckpointError(
                directory,
                "mesh files disagree on the vertex count",
                "V×3 vertices, V×4 weights, V×4 indices, 52×3 joints",
            )
        if indices.max() >= ALL_JOINTS:
            raise CheckpointError(directory / "skinIndice.bin", "joint index out of range", "< 52")
        return cls.from_arrays(
            vertices.astype(np.float64),
            weights.reshape(count, 4).astype(np.float64),
            indices.reshape(count, 4),
            joints.reshape(52, 3).astype(np.float64),
        )

    def floor_height(
        self, rotations: np.ndarray, root_positions: np.ndarray, joint_positions: np.ndarray
    ) -> float:
        frames = rotations.shape[0]
        # flat hands: the 30 finger joints keep identity rotations
        full = np.zeros((frames, ALL_JOINTS, 4))
        full[..., 0] = 1.0
        full[:, :BODY_JOINTS] = rotations
        skeleton = make_skeleton(ALL_JOINTS, self.rest_joints)
        heights = forward_kinematics(skeleton, full, root_positions)[..., 1].astype(np.float64)
        rows = compose_world_rotations(quaternion_to_matrix(full), PARENTS)[
            :, :, 1, :
        ]  # (F, 52, 3)
        coeffs = np.concatenate([rows.reshape(frames, -1), heights], axis=1)  # (F, 208)
        lowest = np.inf
        for start in range(0, frames, FRAME_CHUNK):  # bounded memory: FRAME_CHUNK × V
            lowest = min(lowest, float((coeffs[start : start + FRAME_CHUNK] @ self.basis).min()))
        return lowest


def rest_mesh_floor(grounding: MeshGrounding) -> float:
    """Lowest vertex of the rest pose (−1.161 m for the official mesh); used by tests/checks."""
    identity = np.zeros((1, BODY_JOINTS, 4))
    identity[..., 0] = 1.0
    root = grounding.rest_joints[None, 0]
    return grounding.floor_height(identity, root, REST_POSITIONS[None, :BODY_JOINTS])
