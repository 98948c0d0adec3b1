"""A copy of the artist's rig that plays a take of its own (bpy side), for side-by-side compare.

``Object.copy`` keeps the original's pose constraints and drivers, and those that point at the
rig itself (Rigify's IK/FK chains, Armature parent switches, property drivers) still point at
the original: the copy would follow the original's controls. Here they are pointed at the copy.
"""

from __future__ import annotations

from typing import Any

import bpy


def independent_copy(obj: bpy.types.Object, name: str) -> bpy.types.Object | None:
    """A copy of ``obj`` (sharing its armature) whose constraints and drivers read the copy,
    with no action or NLA tracks; None if Blender cannot copy it."""
    copy = obj.copy()
    if copy is None:
        return None
    copy.name = name
    owners: list[Any] = list(copy.constraints)
    if copy.pose is not None:
        owners += [c for bone in copy.pose.bones for c in bone.constraints]
    for constraint in owners:
        _point_at(constraint, obj, copy)
    anim = copy.animation_data
    if anim is not None:
        for curve in anim.drivers:
            if curve.driver is None:
                continue
            for variable in curve.driver.variables:
                for target in variable.targets:
                    if target.id == obj:
                        target.id = copy
        for track in list(anim.nla_tracks):
            anim.nla_tracks.remove(track)
        anim.action = None
    return copy


def _point_at(owner: Any, old: bpy.types.Object, new: bpy.types.Object) -> None:
    """Object pointers of a constraint (target, pole target, an Armature constraint's targets)
    that name ``old`` name ``new``."""
    for prop in owner.bl_rna.properties:
        if prop.type == "POINTER" and not prop.is_readonly:
            if getattr(owner, prop.identifier) == old:
                setattr(owner, prop.identifier, new)
        elif prop.type == "COLLECTION" and prop.identifier == "targets":
            for item in getattr(owner, prop.identifier):
                _point_at(item, old, new)
