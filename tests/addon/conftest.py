"""Fixtures for add-on tests: the real bpy module, isolated from the user's Blender settings."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Before bpy is imported: keep its config, extensions and scripts out of the real home.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hy_motion_blender_"))


@pytest.fixture
def scene() -> Iterator[object]:
    """An empty scene at 30 fps with the add-on registered (from the repository)."""
    import bpy

    import blender_addon
    from blender_addon import runtime

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "hy_motion"):
        blender_addon.register()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    yield scene
    runtime.shutdown()
