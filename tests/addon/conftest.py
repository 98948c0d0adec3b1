"""Fixtures for add-on tests: the real bpy module, isolated from the user's Blender settings."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Before bpy is imported: keep its config, extensions and scripts out of the real home.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hy_motion_blender_"))


@pytest.fixture(scope="session")
def addon() -> Iterator[None]:
    """The add-on registered from the repository for the whole session, and unregistered at the
    end: bpy 4.2 crashes and 4.5 hangs at interpreter exit with Python classes registered."""
    import blender_addon

    blender_addon.register()
    yield
    blender_addon.unregister()


@pytest.fixture
def scene(addon: None) -> Iterator[object]:
    """An empty scene at 30 fps with the add-on registered."""
    import bpy

    from blender_addon import runtime

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    yield scene
    runtime.shutdown()
