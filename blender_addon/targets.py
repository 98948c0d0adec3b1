"""Where a take is applied. Only "New armature" exists now; retargeting onto the artist's own
rig is its own issue and plugs in here: add an item to ``TARGETS`` and a branch in
``target_object`` (the panel already shows the choice)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from . import build
from .core.errors import SceneError

if TYPE_CHECKING:  # props imports this module for TARGETS
    from .props import HYMOTION_PG_settings

TARGETS = [
    ("NEW_ARMATURE", "New armature", "Apply takes to an armature built from the daemon's skeleton"),
]
MAIN_OBJECT_NAME = "HY-Motion"


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
    if obj is None or obj.data != data or scene.objects.get(obj.name) is None:
        obj = build.new_armature_object(scene, data, MAIN_OBJECT_NAME)
        settings.armature = obj
    return obj
