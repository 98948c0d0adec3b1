"""The clean deform tree and the bake onto it, on small hand-made rigs (no bpy)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core import deform_tree
from blender_addon.core.errors import ExportError
from blender_addon.core.motion import rotations as rot


def rest_at(heads: list[tuple[float, float, float]]) -> np.ndarray:
    """Rest matrices pointing up (+Z) at ``heads``."""
    rest = np.tile(np.eye(4), (len(heads), 1, 1))
    rest[:, :3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # bone Y axis along world Z
    rest[:, :3, 3] = heads
    return rest


def test_a_clean_rig_is_left_to_blenders_exporter() -> None:
    # root -> pelvis -> thigh, every bone deforming: nothing to change.
    assert deform_tree.deform_tree([-1, 0, 1], [True] * 3, rest_at([(0, 0, 0)] * 3)) is None
    # A non-deforming IK bone beside them changes nothing either.
    rest = rest_at([(0, 0, 0), (0, 0, 1), (0, 0, 0.5), (0, 0, 2)])
    assert deform_tree.deform_tree([-1, 0, 1, 0], [True, True, True, False], rest) is None


def test_mechanism_parents_give_way_to_the_deforming_bones_they_stand_for() -> None:
    # 0 root (mechanism) -> 1 ORG-spine -> {2 DEF-spine, 3 ORG-thigh -> 4 DEF-thigh},
    # 1 -> 5 ORG-chest -> 6 DEF-arm; 7 DEF-chest stands for ORG-chest (same head and axis).
    names = ["root", "ORG-spine", "DEF-spine", "ORG-thigh", "DEF-thigh", "ORG-chest", "DEF-arm",
             "DEF-chest"]  # fmt: skip
    parents = [-1, 0, 1, 1, 3, 1, 5, 5]
    deform = [n.startswith("DEF") for n in names]
    heads = [(0, 0, 0), (0, 0, 1), (0, 0, 1), (0.1, 0, 1), (0.1, 0, 0.9), (0, 0, 1.4),
             (0.2, 0, 1.4), (0, 0, 1.4)]  # fmt: skip
    tree = deform_tree.deform_tree(parents, deform, rest_at(heads))
    assert tree is not None
    kept = [names[i] for i in tree.indices]
    parent_of = {kept[k]: kept[p] if p >= 0 else "" for k, p in enumerate(tree.parents)}
    assert parent_of == {"DEF-spine": "", "DEF-thigh": "DEF-spine", "DEF-chest": "DEF-spine",
                         "DEF-arm": "DEF-chest"}  # fmt: skip
    assert kept[0] == "DEF-spine"  # parents before children
    # The root-motion bone kept on top.
    with_root = deform_tree.deform_tree(parents, deform, rest_at(heads), root=0)
    assert with_root is not None and with_root.indices[0] == 0
    assert with_root.parents[with_root.indices.index(2)] == 0


def test_bones_with_no_deforming_ancestor_go_under_the_one_root() -> None:
    # Two deforming bones under separate mechanism bones that stand for nothing.
    rest = rest_at([(0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1)])
    tree = deform_tree.deform_tree([-1, -1, 0, 1], [False, False, True, True], rest)
    assert tree is not None and tree.indices == (2, 3) and tree.parents == (-1, 0)


def test_a_rig_without_deforming_bones_is_refused() -> None:
    with pytest.raises(ExportError) as caught:
        deform_tree.deform_tree([-1, 0], [False, False], rest_at([(0, 0, 0)] * 2))
    assert caught.value.field == "deform_only"


def rebuilt(tree: deform_tree.DeformTree, rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """The matrices Blender makes from the channels :func:`pose_bases` gives (full inherit)."""
    location, quaternion, scale = deform_tree.pose_bases(tree, rest, posed)
    frames = posed.shape[0]
    made = np.empty_like(posed)
    for k, parent in enumerate(tree.parents):
        offset = rest[k] if parent < 0 else np.linalg.inv(rest[parent]) @ rest[k]
        basis = np.tile(np.eye(4), (frames, 1, 1))
        basis[:, :3, :3] = rot.to_matrix(quaternion[:, k]) * scale[:, k, None, :]
        basis[:, :3, 3] = location[:, k]
        made[:, k] = (made[:, parent] if parent >= 0 else np.eye(4)) @ offset @ basis
    return made


@pytest.mark.parametrize("stretch", [1.0, 1.05])
def test_pose_bases_put_every_bone_where_it_was(stretch: float) -> None:
    """Posed matrices with turns and travel: the channels rebuild them through the new
    hierarchy. Stretched along the bone (Rigify's Stretch To), a child turned against its parent
    would need a shear no pose channel (nor FBX) holds: every head is still exact."""
    rng = np.random.default_rng(7)
    rest = rest_at([(0, 0, 1), (0, 0, 1.5), (0.1, 0, 2), (0.3, 0, 2)])
    tree = deform_tree.DeformTree(indices=(0, 1, 2, 3), parents=(-1, 0, 1, 2))
    frames = 5
    posed = np.tile(rest, (frames, 1, 1, 1))
    turns = rot.to_matrix(rot.normalize(rng.normal(size=(frames, 4, 4))))
    posed[..., :3, :3] = turns @ rest[None, :, :3, :3]
    posed[..., :3, 1] *= stretch
    posed[..., :3, 3] += rng.normal(scale=0.1, size=(frames, 4, 3))
    made = rebuilt(tree, rest, posed)
    np.testing.assert_allclose(made[..., :3, 3], posed[..., :3, 3], atol=1e-9)
    if stretch == 1.0:
        np.testing.assert_allclose(made, posed, atol=1e-9)
