"""The rig builders the tests use: ``tools/character_rigs.py`` (the demo's too), plus a skip
where this bpy build has no Rigify."""

from __future__ import annotations

from typing import Any

import pytest

from tools.character_rigs import *  # noqa: F403 (the tests' one name for the rig builders)
from tools.character_rigs import rigify_rigs as _rigify_rigs


def rigify_rigs(scene: Any) -> tuple[Any, Any]:
    """(metarig, generated rig) made by Blender's own Rigify, or a skip without Rigify."""
    rigs = _rigify_rigs(scene)
    if rigs is None:
        pytest.skip("this bpy build has no Rigify")
    return rigs
