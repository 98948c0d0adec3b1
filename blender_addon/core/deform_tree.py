"""A clean deform hierarchy for game engines, and the bake that moves a rig's motion onto it
(no bpy).

Many rigs hang their deforming bones under mechanism bones (Rigify: ``DEF-thigh.L`` under
``ORG-spine``). Blender's FBX exporter keeps those parents even with "deform bones only", so an
engine gets them all. The clean tree holds the deforming bones (plus, when asked, the bone that
carries root motion, as the top), each under its *nearest deform ancestor*: walking up from a
bone, the first ancestor that deforms, or that a deforming bone stands for (a mechanism bone
with the same rest head and direction as a deforming bone, as Rigify's ``ORG-spine`` for
``DEF-spine``). A bone left without one goes under the tree's root, so there is one root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ExportError
from .motion import rotations as rot

#: Rest heads this close (metres) and bone directions this close (cosine) are the same bone.
_SAME_HEAD_M = 1e-5
_SAME_DIRECTION = 1.0 - 1e-6  # about 0.08 degrees


@dataclass(frozen=True)
class DeformTree:
    """The bones an engine gets, parents before children (``indices`` into the rig's bones)."""

    indices: tuple[int, ...]
    #: Per kept bone, its parent's position in ``indices`` (-1 for the root).
    parents: tuple[int, ...]


def deform_tree(
    parents: Sequence[int],
    deform: Sequence[bool],
    rest: np.ndarray,
    root: int = -1,
) -> DeformTree | None:
    """The clean tree of a rig with bone ``parents`` (-1: none), ``deform`` flags and rest
    matrices ``rest`` (B, 4, 4, armature space); ``root``: a bone to keep on top (the root-motion
    bone), -1 for none. None when Blender's own export is already clean: no bone that does not
    deform sits above one that does, and no root to add."""
    count = len(parents)
    deforming = [i for i in range(count) if deform[i]]
    if not deforming:
        raise ExportError("the rig has no deforming bones to export", field="deform_only")
    above_deform = {a for i in deforming for a in _ancestors(parents, i)}
    if root < 0 and all(deform[a] for a in above_deform) and _roots(parents, deforming) == 1:
        return None
    stand_in = _stand_ins(deform, rest)
    new_parent: dict[int, int] = {}
    for i in deforming:
        below = set(_descendants(parents, i))
        new_parent[i] = next(
            (
                deform_of
                for a in _ancestors(parents, i)
                if (deform_of := a if deform[a] or a == root else stand_in.get(a, -1)) >= 0
                and deform_of != i
                and deform_of not in below
            ),
            -1,
        )
    if root >= 0:
        new_parent[root] = -1
    top = root if root >= 0 else next(i for i in deforming if new_parent[i] < 0)
    for i, parent in new_parent.items():
        if parent < 0 and i != top:
            new_parent[i] = top
    return _ordered(new_parent, top)


def _ancestors(parents: Sequence[int], bone: int) -> list[int]:
    out = []
    parent = parents[bone]
    while parent >= 0:
        out.append(parent)
        parent = parents[parent]
    return out


def _descendants(parents: Sequence[int], bone: int) -> list[int]:
    return [i for i in range(len(parents)) if bone in _ancestors(parents, i)]


def _roots(parents: Sequence[int], bones: Sequence[int]) -> int:
    kept = set(bones)
    return sum(1 for i in bones if not any(a in kept for a in _ancestors(parents, i)))


def _stand_ins(deform: Sequence[bool], rest: np.ndarray) -> dict[int, int]:
    """Non-deforming bone -> the deforming bone with its rest head and direction."""
    rest = np.asarray(rest, dtype=np.float64)  # Blender's float32 matrices
    heads, axes = rest[:, :3, 3], rest[:, :3, 1]
    deforming = np.flatnonzero(np.asarray(deform, dtype=bool))
    out = {}
    for i in np.flatnonzero(~np.asarray(deform, dtype=bool)):
        near = np.linalg.norm(heads[deforming] - heads[i], axis=1) <= _SAME_HEAD_M
        aligned = axes[deforming] @ axes[i] >= _SAME_DIRECTION
        match = deforming[near & aligned]
        if match.size:
            out[int(i)] = int(match[0])
    return out


def _ordered(new_parent: dict[int, int], top: int) -> DeformTree:
    """Parents before children; a loop (two bones standing for each other's parents) is an
    error naming nothing the artist can act on, so it names the bones' indices."""
    children: dict[int, list[int]] = {}
    for bone, parent in new_parent.items():
        if bone != top:
            children.setdefault(parent, []).append(bone)
    order, stack = [], [top]
    while stack:
        bone = stack.pop()
        order.append(bone)
        stack.extend(sorted(children.get(bone, ()), reverse=True))
    if len(order) != len(new_parent):
        lost = sorted(set(new_parent) - set(order))
        raise ExportError(f"the deforming bones {lost} form a parent loop", field="deform_only")
    position = {bone: k for k, bone in enumerate(order)}
    return DeformTree(
        indices=tuple(order),
        parents=tuple(position[new_parent[b]] if b != top else -1 for b in order),
    )


def pose_bases(
    tree: DeformTree, rest: np.ndarray, posed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blender pose channels (location (F, K, 3), quaternion (F, K, 4) w first, scale (F, K, 3))
    that put the tree's bones, with rest matrices ``rest`` (K, 4, 4), at the armature-space
    matrices ``posed`` (F, K, 4, 4). Parents are solved first and each child from the parent as
    its channels make it, so a parent's stretch cannot add up down the chain."""
    frames, count = posed.shape[:2]
    location = np.empty((frames, count, 3))
    quaternion = np.empty((frames, count, 4))
    scale = np.empty((frames, count, 3))
    made = np.empty_like(posed)  # each bone's matrix as its channels make it
    for k, parent in enumerate(tree.parents):
        offset = rest[k] if parent < 0 else np.linalg.inv(rest[parent]) @ rest[k]
        above = made[:, parent] if parent >= 0 else np.eye(4)
        basis = np.linalg.inv(above @ offset) @ posed[:, k]
        size = np.linalg.norm(basis[:, :3, :3], axis=1)  # column lengths
        turn = rot.from_matrix(basis[:, :3, :3] / size[:, None, :])
        location[:, k], quaternion[:, k], scale[:, k] = basis[:, :3, 3], turn, size
        trs = np.zeros_like(basis)
        trs[:, :3, :3] = rot.to_matrix(turn) * size[:, None, :]
        trs[:, :3, 3], trs[:, 3, 3] = basis[:, :3, 3], 1.0
        made[:, k] = above @ offset @ trs
    return location, rot.make_continuous(quaternion), scale
