"""Map an unknown humanoid rig from its hierarchy and rest geometry (no bpy).

Used when no naming convention explains the rig. Legs are the two chains to the lowest leaves
on either side, their branch point is the pelvis; the spine climbs to the highest leaf; arms
are the chains to the leaves farthest out to each side. Within a chain, joints are picked by
rest geometry (the thigh is the first bone pointing down, the knee sits half-way to the ankle,
the foot is the first level bone), so twist, helper and "pelvis.L"-style bones are skipped.
Left and right come from the feet's facing, not from names.
"""

from __future__ import annotations

import numpy as np

from .rig_bones import RigBones

UP = np.array([0.0, 0.0, 1.0])


def guess_joints(rig: RigBones) -> dict[str, str]:
    """Model joint -> bone for every joint found; empty if there are no two legs."""
    legs = _leg_leaves(rig)
    if legs is None:
        return {}
    hips = _common_ancestor(rig, *legs)
    if hips is None:
        return {}
    pelvis = _body_root(rig, hips)
    chains = [_path(rig, hips, leaf) for leaf in legs]
    joints_by_leg = [_leg_joints(rig, chain) for chain in chains]
    forward = _forward(rig, joints_by_leg)
    left = np.cross(UP, forward)
    out = {"Pelvis": rig.names[pelvis]}
    for joints in joints_by_leg:
        if "Hip" not in joints:
            continue
        side = "L_" if float((rig.heads[joints["Hip"]] - rig.heads[hips]) @ left) > 0 else "R_"
        for part, bone in joints.items():
            out[side + part] = rig.names[bone]
    leg_bones = {b for chain in chains for b in [chain[0], *rig.descendants(chain[0])]}
    _upper_body(rig, pelvis, leg_bones, left, out)
    return out


def _is_thigh(rig: RigBones, bone: int) -> bool:
    return float(_direction(rig, bone) @ UP) < -0.85


def _leg_leaves(rig: RigBones) -> tuple[int, int] | None:
    """The lowest leaf on either side below a bone pointing down (not floor-level IK helpers)."""
    leaves = [
        i for i in range(rig.count)
        if not rig.children(i) and any(_is_thigh(rig, a) for a in [i, *rig.ancestors(i)])
    ]  # fmt: skip
    if len(leaves) < 2:
        return None
    low = np.minimum(rig.heads[:, 2], rig.tails[:, 2])
    by_height = sorted(leaves, key=lambda i: float(low[i]))
    first = by_height[0]
    height = float(np.max(rig.tails[:, 2]) - np.min(low))
    for other in by_height[1:]:
        if float(low[other] - low[first]) > 0.25 * height:
            return None  # only one leaf near the floor: no second leg
        apart = np.linalg.norm(rig.heads[other, :2] - rig.heads[first, :2])
        if apart > 0.05 * height and _common_ancestor(rig, first, other) is not None:
            return first, other
    return None


def _body_root(rig: RigBones, hips: int) -> int:
    """``hips`` or the ancestor the spine grows from (Character Creator's hip above its pelvis)."""
    height = float(np.max(rig.tails[:, 2]) - np.min(rig.heads[:, 2]))
    for bone in [hips, *rig.ancestors(hips)]:
        if any(float(rig.tails[d, 2] - rig.heads[bone, 2]) > 0.3 * height
               for d in rig.descendants(bone)):  # fmt: skip
            return bone
    return hips


def _common_ancestor(rig: RigBones, a: int, b: int) -> int | None:
    above_a = [a, *rig.ancestors(a)]
    above_b = set([b, *rig.ancestors(b)])
    return next((i for i in above_a if i in above_b), None)


def _path(rig: RigBones, top: int, leaf: int) -> list[int]:
    """Bones from just below ``top`` down to ``leaf``."""
    chain = [leaf]
    for bone in rig.ancestors(leaf):
        if bone == top:
            break
        chain.append(bone)
    return chain[::-1]


def _direction(rig: RigBones, bone: int) -> np.ndarray:
    vector = rig.tails[bone] - rig.heads[bone]
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _leg_joints(rig: RigBones, chain: list[int]) -> dict[str, int]:
    thigh = next((b for b in chain if _is_thigh(rig, b)), None)
    if thigh is None:
        return {}
    below = chain[chain.index(thigh) + 1 :]
    level = [b for b in below if abs(float(_direction(rig, b) @ UP)) < 0.75]
    out = {"Hip": thigh}
    if level:
        ankle = level[0]
        # The toe is the ankle's child furthest along the foot (not a heel helper).
        forward = _horizontal(_direction(rig, ankle))
        ahead = [(float((rig.heads[c] - rig.heads[ankle]) @ forward), c)
                 for c in rig.children(ankle)]  # fmt: skip
        ahead = [item for item in ahead if item[0] > 0.02]
        if ahead:
            out["Foot"] = max(ahead)[1]
    else:
        floor = float(np.min(rig.tails[chain, 2]))
        target = floor + 0.1 * (float(rig.heads[thigh, 2]) - floor)
        if not below:
            return {}
        ankle = min(below, key=lambda b: abs(float(rig.heads[b, 2]) - target))
    out["Ankle"] = ankle
    between = below[: below.index(ankle)]
    if not between:
        return {}
    middle = 0.5 * (rig.heads[thigh] + rig.heads[ankle])
    out["Knee"] = min(between, key=lambda b: float(np.linalg.norm(rig.heads[b] - middle)))
    return out


def _horizontal(vector: np.ndarray) -> np.ndarray:
    flat = np.array([vector[0], vector[1], 0.0])
    norm = float(np.linalg.norm(flat))
    return flat / norm if norm > 1e-6 else np.array([0.0, -1.0, 0.0])


def _forward(rig: RigBones, legs: list[dict[str, int]]) -> np.ndarray:
    """The character's front, horizontal: where the feet point (Blender's -Y if unclear)."""
    total = sum((_horizontal(_direction(rig, j["Ankle"])) for j in legs if "Ankle" in j),
                np.zeros(3))  # fmt: skip
    return _horizontal(total)


def _upper_body(
    rig: RigBones, pelvis: int, leg_bones: set[int], left: np.ndarray, out: dict[str, str]
) -> None:
    upper = [b for b in rig.descendants(pelvis) if b not in leg_bones]
    leaves = [b for b in upper if not rig.children(b)]
    if not leaves:
        return
    top = max(leaves, key=lambda b: float(rig.tails[b, 2]))
    side = {b: float((rig.tails[b] - rig.heads[pelvis]) @ left) for b in leaves}
    hands = {"L_": max(leaves, key=side.__getitem__), "R_": min(leaves, key=side.__getitem__)}
    spine_path = _path(rig, pelvis, top)
    chests = [_common_ancestor(rig, hands[s], top) for s in hands]
    if any(c is None or c not in spine_path for c in chests):
        return
    chest = min((int(c) for c in chests if c is not None), key=spine_path.index)
    below_chest = spine_path[: spine_path.index(chest) + 1]
    out["Spine3"] = rig.names[chest]
    if len(below_chest) >= 2:
        out["Spine1"] = rig.names[below_chest[0]]
    if len(below_chest) >= 3:
        out["Spine2"] = rig.names[below_chest[len(below_chest) // 2]]
    neck_head = spine_path[spine_path.index(chest) + 1 :]
    lengths = rig.lengths()
    if len(neck_head) >= 2 and lengths[neck_head[-1]] < 0.4 * lengths[neck_head[-2]]:
        neck_head = neck_head[:-1]  # an end bone on top of the head
    if neck_head:
        out["Head"] = rig.names[neck_head[-1]]
        if len(neck_head) >= 2:
            out["Neck"] = rig.names[neck_head[0]]
    for prefix, leaf in hands.items():
        _arm(rig, _path(rig, chest, leaf), prefix, left, out)


def _arm(
    rig: RigBones, chain: list[int], prefix: str, left: np.ndarray, out: dict[str, str]
) -> None:
    # The hand is where the fingers branch: the last bone of the chain with 3+ children.
    hand = next((b for b in reversed(chain) if len(rig.children(b)) >= 3), chain[-1])
    before = chain[: chain.index(hand)]
    if len(before) < 2:
        return
    out[prefix + "Wrist"] = rig.names[hand]
    # A collar starts near the body's midline; an upper arm starts well out to the side.
    midline = rig.heads[rig.ancestors(before[0])[-1]] if rig.ancestors(before[0]) else 0.0
    lateral = [abs(float((rig.heads[b] - midline) @ left)) for b in before[:2]]
    has_collar = len(before) >= 3 and lateral[0] < 0.5 * lateral[1]
    if has_collar:
        out[prefix + "Collar"] = rig.names[before[0]]
    upper = before[1] if has_collar else before[0]
    out[prefix + "Shoulder"] = rig.names[upper]
    between = before[before.index(upper) + 1 :]
    if between:
        middle = 0.5 * (rig.heads[upper] + rig.heads[hand])
        elbow = min(between, key=lambda b: float(np.linalg.norm(rig.heads[b] - middle)))
        out[prefix + "Elbow"] = rig.names[elbow]
