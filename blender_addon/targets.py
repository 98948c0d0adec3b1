"""Where a take is applied: "New armature" (built from the daemon's skeleton) or "Selected
armature" (the artist's own rig, retargeted: ``rig_history``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from . import build
from .core.errors import SceneError

if TYPE_CHECKING:  # props imports this module for TARGETS
    from .props import HYMOTION_PG_settings

TARGETS = [
    ("NEW_ARMATURE", "New armature", "Apply takes to an armature built from the daemon's skeleton"),
    ("SELECTED_ARMATURE", "Selected armature",
     "Retarget takes onto your own character's armature (Mixamo, Rigify, UE, VRM, CC, ARP, ...)"),
]  # fmt: skip
RIG_TARGET = "SELECTED_ARMATURE"
MAIN_OBJECT_NAME = "HY-Motion"


def _variants(have: object, want: bpy.types.Armature) -> bool:
    """Armature data of the same skeleton (one with a root bone, the other without)."""
    if not isinstance(have, bpy.types.Armature):
        return False
    # The 4.2 stubs type ID.get as returning None; it returns the custom property.
    text = have.get(build.SKELETON_KEY)  # type: ignore[func-returns-value]
    return text is not None and text == want.get(build.SKELETON_KEY)  # type: ignore[func-returns-value]


def target_object(
    scene: bpy.types.Scene, settings: HYMOTION_PG_settings, data: bpy.types.Armature
) -> bpy.types.Object:
    """The object a take with armature ``data`` plays on (``settings.target``), created if
    needed and remembered in ``settings.armature``."""
    if settings.target != "NEW_ARMATURE":
        raise SceneError(
            f"target {settings.target!r} is not available in this version", field="target"
        )
    obj = settings.armature
    if obj is not None and obj.data != data and _variants(obj.data, data):
        obj.data = data  # the same skeleton with or without a root bone (finishing)
    if obj is None or obj.data != data or scene.objects.get(obj.name) is None:
        obj = build.new_armature_object(scene, data, MAIN_OBJECT_NAME)
        settings.armature = obj
    return obj
