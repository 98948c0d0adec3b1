"""An artist's armature as plain arrays (no bpy): names, hierarchy and rest pose.

``blender_addon/rig_reader.py`` fills it from a Blender armature; tests build it directly.
Positions are in the armature object's *world-aligned* frame: the object's rotation and uniform
scale are applied (its location is not), so a rig imported at 0.01 scale or turned by 90° is
measured in metres and Blender's Z-up, like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class RigBones:
    names: tuple[str, ...]
    parents: np.ndarray  # (N,) int, -1 for roots; parents come before their children
    heads: np.ndarray  # (N, 3) float64, metres, world-aligned
    tails: np.ndarray  # (N, 3)
    #: Rest orientation of each bone (``Bone.matrix_local`` rotation), world-aligned.
    rest: np.ndarray  # (N, 3, 3)
    deform: np.ndarray  # (N,) bool, ``Bone.use_deform``
    #: Object rotation (3, 3) and uniform scale: armature space = object_rotation⁻¹ · world / scale.
    object_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    object_scale: float = 1.0
    #: ``Bone.use_local_location``: pose locations in the bone's own frame (else its parent's).
    local_location: np.ndarray | None = None
    #: (pole bone, middle bone of its chain) of each two-bone IK constraint on this rig with a
    #: pole target on this rig (Rigify's ``thigh_ik_target.L`` on ``MCH-shin_ik.L``).
    ik_poles: tuple[tuple[str, str], ...] = ()

    def location_frame(self, bone: int) -> np.ndarray:
        """(3, 3) world-aligned frame a pose location of ``bone`` is expressed in."""
        if self.local_location is None or self.local_location[bone]:
            return self.rest[bone]
        parent = int(self.parents[bone])
        return self.rest[parent] if parent >= 0 else self.object_rotation

    def __post_init__(self) -> None:
        count = len(self.names)
        for name, array, shape in (
            ("parents", self.parents, (count,)),
            ("heads", self.heads, (count, 3)),
            ("tails", self.tails, (count, 3)),
            ("rest", self.rest, (count, 3, 3)),
            ("deform", self.deform, (count,)),
        ):
            if array.shape != shape:
                raise ValueError(f"RigBones.{name} has shape {array.shape}, expected {shape}")
        if any(int(p) >= i for i, p in enumerate(self.parents)):
            raise ValueError("RigBones: every parent must come before its children")

    @property
    def count(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self._index[name]

    def get(self, name: str) -> int | None:
        return self._index.get(name)

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {n: i for i, n in enumerate(self.names)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def children(self, bone: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if int(p) == bone]

    def ancestors(self, bone: int) -> list[int]:
        """Parent, grandparent, ... up to the root."""
        out = []
        parent = int(self.parents[bone])
        while parent >= 0:
            out.append(parent)
            parent = int(self.parents[parent])
        return out

    def descendants(self, bone: int) -> list[int]:
        """Every bone below ``bone``, in order (parents first)."""
        inside = {bone}
        out = []
        for i in range(bone + 1, self.count):
            if int(self.parents[i]) in inside:
                inside.add(i)
                out.append(i)
        return out

    def lengths(self) -> np.ndarray:
        return np.linalg.norm(self.tails - self.heads, axis=-1)


def sorted_bones(
    names: list[str],
    parents: list[str | None],
    heads: np.ndarray,
    tails: np.ndarray,
    rest: np.ndarray,
    deform: np.ndarray,
    object_rotation: np.ndarray | None = None,
    object_scale: float = 1.0,
    local_location: np.ndarray | None = None,
) -> RigBones:
    """A :class:`RigBones` from bones in any order, parents given by name."""
    position = {n: i for i, n in enumerate(names)}
    order: list[int] = []
    placed: set[int] = set()

    def place(i: int) -> None:
        if i in placed:
            return
        parent = parents[i]
        if parent is not None:
            place(position[parent])
        placed.add(i)
        order.append(i)

    for i in range(len(names)):
        place(i)
    new_index = {old: new for new, old in enumerate(order)}

    def new_parent(i: int) -> int:
        parent = parents[i]
        return -1 if parent is None else new_index[position[parent]]

    parent_index = np.array([new_parent(i) for i in order], dtype=np.int64)
    return RigBones(
        names=tuple(names[i] for i in order),
        parents=parent_index,
        heads=np.asarray(heads, dtype=np.float64)[order],
        tails=np.asarray(tails, dtype=np.float64)[order],
        rest=np.asarray(rest, dtype=np.float64)[order],
        deform=np.asarray(deform, dtype=bool)[order],
        object_rotation=np.eye(3) if object_rotation is None else object_rotation,
        object_scale=object_scale,
        local_location=None if local_location is None else np.asarray(local_location, bool)[order],
    )
